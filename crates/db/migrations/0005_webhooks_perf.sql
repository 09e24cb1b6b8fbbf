-- Wake workers only for work they can claim, and tell them where it is.
--
-- Deliveries that a worker queues already leased to itself (the fan-out hands them straight to
-- its sender) need no notification. When every job a statement queued is an outbox fan-out, the
-- payload is `fanout:` and the tenants' ids, so a worker can claim and fan those events out in
-- one tenant transaction without a platform claim first; otherwise (or if the list is long) the
-- payload is empty and workers claim as usual.
create or replace function sivo_notify_work() returns trigger
language plpgsql as $$
declare
    tenants text;
    others boolean;
begin
    select string_agg(distinct tenant_id::text, ','), bool_or(kind <> 'outbox_fanout')
      into tenants, others
      from inserted where lock_token is null;
    if tenants is not null then
        perform pg_notify('sivo_work',
            case when not others and length(tenants) <= 7000 then 'fanout:' || tenants else '' end);
    end if;
    return null;
end
$$;

drop trigger work_queue_notify on work_queue;
create trigger work_queue_notify after insert on work_queue
    referencing new table as inserted
    for each statement execute function sivo_notify_work();

-- A tenant's due fan-out jobs, for that claim.
create index work_queue_fanout_idx on work_queue (tenant_id, due_at) where kind = 'outbox_fanout';
