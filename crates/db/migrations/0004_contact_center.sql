-- Contact center: queues and their members, agents' availability, calls (which are the CDRs once
-- ended) and per-tenant settings.
--
-- Every table is a tenant business table: RLS enabled and forced, one policy per command on
-- tenant_id = sivo_current_tenant(), no platform mode.
--
-- The per-tenant recording switch lives in `tenant_settings`, not in `tenants`: `tenants` is an
-- identity table that honours platform mode (login, operators), and business settings should
-- not be visible or writable there.

create table tenant_settings (
    tenant_id       uuid primary key references tenants (id) on delete cascade,
    -- Record every call of the tenant (queues can also turn recording on for their calls).
    record_calls    boolean not null default false,
    updated_at      timestamptz not null
);

create table queues (
    id                  uuid primary key,
    tenant_id           uuid not null references tenants (id) on delete cascade,
    name                text not null,
    -- How long one agent rings before the next one is tried.
    ring_timeout_secs   integer not null default 20 check (ring_timeout_secs between 5 and 300),
    -- How long a caller waits before the overflow applies.
    max_wait_secs       integer not null default 300 check (max_wait_secs between 10 and 86400),
    overflow_type       text not null default 'none' check (overflow_type in ('none', 'queue', 'agent', 'hangup')),
    -- A queue or an agent (user) of the tenant, per overflow_type. Not a foreign key because it
    -- names one of two tables; the API checks it.
    overflow_id         uuid,
    -- Path of an 8 kHz mono WAV file on the server; NULL plays a generated tone.
    music_on_hold       text,
    record_calls        boolean not null default false,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    unique (tenant_id, name),
    check ((overflow_type in ('queue', 'agent')) = (overflow_id is not null))
);
create index queues_tenant_idx on queues (tenant_id, created_at, id);

create table queue_members (
    tenant_id   uuid not null references tenants (id) on delete cascade,
    queue_id    uuid not null references queues (id) on delete cascade,
    user_id     uuid not null references users (id) on delete cascade,
    created_at  timestamptz not null,
    primary key (queue_id, user_id)
);
create index queue_members_user_idx on queue_members (user_id);

-- One row per agent who ever changed status; no row means logged out.
create table agent_states (
    user_id         uuid primary key references users (id) on delete cascade,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    status          text not null check (status in ('available', 'on_call', 'on_break', 'logged_out')),
    pause_reason    text,
    changed_at      timestamptz not null,
    -- When the agent last became free (a call ended, or they became available): longest-idle
    -- routing orders by it.
    idle_since      timestamptz,
    check ((status = 'on_break') = (pause_reason is not null))
);
create index agent_states_tenant_idx on agent_states (tenant_id, status);

-- One row per call; once ended it is the CDR. Queue, agent, trunk and DID ids are not foreign
-- keys on purpose: the record outlives the things it mentions.
create table calls (
    -- The "SIP channel UUID" used in events, CDRs and integrations.
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    direction       text not null check (direction in ('inbound', 'outbound')),
    from_number     text not null,
    to_number       text not null,
    did             text,
    did_id          uuid,
    trunk_id        uuid,
    queue_id        uuid,
    agent_id        uuid,
    state           text not null default 'ringing' check (state in ('ringing', 'queued', 'answered', 'ended')),
    created_at      timestamptz not null,
    -- First queue entry; last_queued_at is the latest (a transfer can queue a call again).
    queued_at       timestamptz,
    last_queued_at  timestamptz,
    -- First answer.
    answered_at     timestamptz,
    ended_at        timestamptz,
    hangup_cause    text,
    hangup_side     text check (hangup_side in ('caller', 'agent', 'system')),
    -- The sequence number the call's next event gets (data.sequence).
    next_sequence   bigint not null default 1,
    legs            jsonb not null default '[]',
    transfers       jsonb not null default '[]',
    timeline        jsonb not null default '[]',
    recording       jsonb,
    check ((state = 'ended') = (ended_at is not null))
);
-- CDR listing, newest first.
create index calls_tenant_created_idx on calls (tenant_id, created_at desc, id desc);
-- Calls in progress (few rows: a partial index).
create index calls_open_idx on calls (tenant_id, created_at) where ended_at is null;
-- Queue positions and "is this agent on a call".
create index calls_queued_idx on calls (queue_id, last_queued_at) where state = 'queued';
create index calls_open_agent_idx on calls (agent_id) where ended_at is null;
create index calls_agent_idx on calls (tenant_id, agent_id, created_at desc);
create index calls_queue_idx on calls (tenant_id, queue_id, created_at desc);

do $$
declare
    t text;
begin
    foreach t in array array['tenant_settings', 'queues', 'queue_members', 'agent_states', 'calls'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy %I on %I for select using (tenant_id = sivo_current_tenant())', t || '_select', t);
        execute format('create policy %I on %I for insert with check (tenant_id = sivo_current_tenant())', t || '_insert', t);
        execute format('create policy %I on %I for update using (tenant_id = sivo_current_tenant()) with check (tenant_id = sivo_current_tenant())', t || '_update', t);
        execute format('create policy %I on %I for delete using (tenant_id = sivo_current_tenant())', t || '_delete', t);
    end loop;
end $$;
