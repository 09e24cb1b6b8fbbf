-- Webhooks: endpoints, one delivery job per (event, endpoint), the log of attempts, and the work
-- queue that lets workers find due jobs across tenants.

-- Test events ("send test event") go to one endpoint only.
alter table outbox add column target_endpoint_id uuid;
alter table outbox add column dispatched_at timestamptz;

create table webhook_endpoints (
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    url             text not null,
    description     text not null default '',
    enabled         boolean not null default true,
    -- Subscribed event types; empty means all of them.
    event_types     text[] not null default '{}',
    -- The HMAC key, encrypted with the master key (context "webhook-secret:<id>").
    secret_enc      text not null,
    -- Why the endpoint was disabled automatically (410 Gone), if it was.
    disabled_reason text,
    created_at      timestamptz not null,
    updated_at      timestamptz not null
);
create index webhook_endpoints_tenant_idx on webhook_endpoints (tenant_id, created_at, id);

create table webhook_deliveries (
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    endpoint_id     uuid not null references webhook_endpoints (id) on delete cascade,
    event_id        uuid not null,
    event_type      text not null,
    -- The exact bytes sent (and signed) on every attempt.
    body            bytea not null,
    status          text not null check (status in ('pending', 'succeeded', 'dead')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    dead_reason     text,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    succeeded_at    timestamptz,
    dead_at         timestamptz,
    unique (endpoint_id, event_id)
);
create index webhook_deliveries_dead_idx on webhook_deliveries (endpoint_id, dead_at desc) where status = 'dead';

create table webhook_attempts (
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    endpoint_id     uuid not null references webhook_endpoints (id) on delete cascade,
    delivery_id     uuid not null references webhook_deliveries (id) on delete cascade,
    event_id        uuid not null,
    event_type      text not null,
    attempt         integer not null,
    started_at      timestamptz not null,
    latency_ms      integer not null,
    http_status     integer,
    error           text,
    response_excerpt text,
    succeeded       boolean not null
);
create index webhook_attempts_endpoint_idx on webhook_attempts (endpoint_id, started_at desc, id desc);

-- Due jobs of every tenant. Holds only ids and times, so it is the one business-side table that
-- platform mode may read: a worker claims due jobs here, then does the work in a tenant transaction.
create table work_queue (
    job_id          uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    kind            text not null check (kind in ('outbox_fanout', 'webhook_delivery')),
    -- Jobs sharing a key (an endpoint) are capped together, so one slow endpoint cannot starve others.
    group_key       uuid,
    due_at          timestamptz not null,
    locked_until    timestamptz,
    lock_token      uuid
);
create index work_queue_due_idx on work_queue (due_at);

create function sivo_notify_work() returns trigger
language plpgsql as $$
begin
    perform pg_notify('sivo_work', '');
    return null;
end
$$;
create trigger work_queue_notify after insert on work_queue for each statement execute function sivo_notify_work();

do $$
declare
    t text;
begin
    foreach t in array array['webhook_endpoints', 'webhook_deliveries', 'webhook_attempts'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy %I on %I for select using (tenant_id = sivo_current_tenant())', t || '_select', t);
        execute format('create policy %I on %I for insert with check (tenant_id = sivo_current_tenant())', t || '_insert', t);
        execute format('create policy %I on %I for update using (tenant_id = sivo_current_tenant()) with check (tenant_id = sivo_current_tenant())', t || '_update', t);
        execute format('create policy %I on %I for delete using (tenant_id = sivo_current_tenant())', t || '_delete', t);
    end loop;
end $$;

alter table work_queue enable row level security;
alter table work_queue force row level security;
create policy work_queue_select on work_queue for select using (tenant_id = sivo_current_tenant() or sivo_is_platform());
create policy work_queue_insert on work_queue for insert with check (tenant_id = sivo_current_tenant() or sivo_is_platform());
create policy work_queue_update on work_queue for update using (tenant_id = sivo_current_tenant() or sivo_is_platform())
    with check (tenant_id = sivo_current_tenant() or sivo_is_platform());
create policy work_queue_delete on work_queue for delete using (tenant_id = sivo_current_tenant() or sivo_is_platform());
