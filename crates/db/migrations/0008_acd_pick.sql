-- ACD call set-up without a queue-wide lock (issue #5).
--
-- An agent being rung (offered a call) is reserved in their state row: `offer_call_id` is the
-- call, `offer_until` when the reservation lapses if the node that made it dies (the ring
-- timeout plus a margin). Picking an agent claims that row with `for update skip locked` and a
-- conditional update, so pickers on any node never get the same agent and never wait for each
-- other; answering or ending the call clears it.
alter table agent_states
    add column offer_call_id uuid,
    add column offer_until timestamptz,
    add check ((offer_call_id is null) = (offer_until is null));

-- Longest-idle routing walks a tenant's available agents in routing order and stops at the
-- first few who qualify, instead of listing and sorting every member of the queue.
create index agent_states_idle_idx on agent_states (tenant_id, idle_since asc nulls first, changed_at, user_id)
    where status = 'available';

-- Ending a call frees the agent it was ringing.
create index agent_states_offer_idx on agent_states (offer_call_id) where offer_call_id is not null;
