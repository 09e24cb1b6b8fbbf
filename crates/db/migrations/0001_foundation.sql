-- Foundation schema: tenants, users, sessions, API keys, audit log, outbox.
--
-- Tenancy rule: every table with a tenant_id column has row-level security ENABLED and FORCED,
-- with one policy per command. The tenant comes from the transaction-local setting
-- app.tenant_id (set_config(..., true)); a missing or malformed value makes
-- sivo_current_tenant() NULL, and `tenant_id = NULL` matches no row (a malformed one is an error).
--
-- "Platform" mode (app.platform = 'on') exists only for identity tables the operator and the
-- login path must search across tenants (tenants, users, sessions, api_keys, audit_log). Tenant
-- business tables never honour it.
--
-- Migrations run as the owner role (sivo_owner); the application connects as sivo_app,
-- which owns nothing and cannot bypass RLS. The roles are created before migrations
-- (see db::roles), so this file only grants.

-- Unset or empty: NULL, so tenant policies match no row. Malformed (only a bug could set one; the
-- application formats typed UUIDs): the cast fails and so does the statement, never all rows.
-- A single expression so the planner inlines it; a validating regex here cost ~12% of a point
-- query's throughput (scripts/bench.sh api).
create function sivo_current_tenant() returns uuid
language sql stable parallel safe as $$
    select nullif(current_setting('app.tenant_id', true), '')::uuid
$$;

create function sivo_is_platform() returns boolean
language sql stable parallel safe as $$
    select coalesce(current_setting('app.platform', true), '') = 'on'
$$;

create table tenants (
    id          uuid primary key,
    slug        text not null unique,
    name        text not null,
    plan        text not null default 'free' check (plan in ('free', 'pro', 'enterprise')),
    created_at  timestamptz not null,
    updated_at  timestamptz not null
);

create table users (
    id                  uuid primary key,
    -- NULL only for superadmins, who belong to no tenant.
    tenant_id           uuid references tenants (id) on delete cascade,
    email               text not null,
    display_name        text not null,
    role                text not null check (role in ('agent', 'supervisor', 'admin', 'superadmin')),
    password_hash       text not null,
    totp_secret_enc     text,
    totp_enabled        boolean not null default false,
    -- Highest TOTP time step accepted so far: a code is usable once only.
    totp_last_step      bigint not null default 0,
    locked_until        timestamptz,
    disabled            boolean not null default false,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    constraint superadmin_has_no_tenant check ((role = 'superadmin') = (tenant_id is null))
);
-- E-mail is the login name, so it is unique across the whole platform.
create unique index users_email_key on users (lower(email));
create index users_tenant_idx on users (tenant_id, created_at, id);

create table mfa_recovery_codes (
    id          uuid primary key,
    tenant_id   uuid references tenants (id) on delete cascade,
    user_id     uuid not null references users (id) on delete cascade,
    code_hash   bytea not null,
    used_at     timestamptz
);
create index mfa_recovery_codes_user_idx on mfa_recovery_codes (user_id);

create table login_failures (
    id          bigint generated always as identity primary key,
    tenant_id   uuid references tenants (id) on delete cascade,
    user_id     uuid not null references users (id) on delete cascade,
    at          timestamptz not null,
    reason      text not null
);
create index login_failures_user_idx on login_failures (user_id, at);

create table sessions (
    id              uuid primary key,
    tenant_id       uuid references tenants (id) on delete cascade,
    user_id         uuid not null references users (id) on delete cascade,
    -- SHA-256 of the bearer token; the token itself is never stored.
    token_hash      bytea not null unique,
    -- 'full', or 'mfa_enrollment' (may only enrol a second factor).
    kind            text not null check (kind in ('full', 'mfa_enrollment')),
    created_at      timestamptz not null,
    last_seen_at    timestamptz not null,
    idle_timeout_s  integer not null,
    expires_at      timestamptz not null,
    revoked_at      timestamptz,
    source_ip       text,
    user_agent      text
);
create index sessions_user_idx on sessions (user_id);

create table api_keys (
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    name            text not null,
    -- The public prefix identifies the key; only the SHA-256 of the whole key is kept.
    prefix          text not null unique,
    key_hash        bytea not null,
    created_by      uuid references users (id) on delete set null,
    created_at      timestamptz not null,
    last_used_at    timestamptz,
    revoked_at      timestamptz
);
create index api_keys_tenant_idx on api_keys (tenant_id, created_at, id);

create table audit_log (
    id              uuid primary key,
    -- NULL for platform-level entries (superadmin logins, tenant creation is logged in the tenant).
    tenant_id       uuid references tenants (id) on delete cascade,
    at              timestamptz not null,
    actor_kind      text not null check (actor_kind in ('user', 'api_key', 'system', 'cli', 'anonymous')),
    actor_id        uuid,
    actor_label     text,
    action          text not null,
    resource_type   text not null,
    resource_id     text,
    before          jsonb,
    after           jsonb,
    source_ip       text,
    request_id      text
);
create index audit_log_tenant_at_idx on audit_log (tenant_id, at desc, id desc);

create table outbox (
    -- The event id: identical on every delivery attempt (X-Sivo-Event-Id).
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    event_type      text not null,
    payload         jsonb not null,
    created_at      timestamptz not null,
    call_id         uuid,
    call_sequence   bigint
);
create index outbox_tenant_created_idx on outbox (tenant_id, created_at, id);

-- Row-level security. Identity tables accept platform mode; outbox does not.
alter table tenants enable row level security;
alter table tenants force row level security;
create policy tenants_select on tenants for select using (id = sivo_current_tenant() or sivo_is_platform());
create policy tenants_insert on tenants for insert with check (sivo_is_platform());
create policy tenants_update on tenants for update using (id = sivo_current_tenant() or sivo_is_platform())
    with check (id = sivo_current_tenant() or sivo_is_platform());
create policy tenants_delete on tenants for delete using (sivo_is_platform());

do $$
declare
    t text;
begin
    foreach t in array array['users', 'mfa_recovery_codes', 'login_failures', 'sessions', 'api_keys', 'audit_log'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy %I on %I for select using (tenant_id = sivo_current_tenant() or sivo_is_platform())', t || '_select', t);
        execute format('create policy %I on %I for insert with check (tenant_id = sivo_current_tenant() or sivo_is_platform())', t || '_insert', t);
        execute format('create policy %I on %I for update using (tenant_id = sivo_current_tenant() or sivo_is_platform()) with check (tenant_id = sivo_current_tenant() or sivo_is_platform())', t || '_update', t);
        execute format('create policy %I on %I for delete using (tenant_id = sivo_current_tenant() or sivo_is_platform())', t || '_delete', t);
    end loop;
end $$;

alter table outbox enable row level security;
alter table outbox force row level security;
create policy outbox_select on outbox for select using (tenant_id = sivo_current_tenant());
create policy outbox_insert on outbox for insert with check (tenant_id = sivo_current_tenant());
create policy outbox_update on outbox for update using (tenant_id = sivo_current_tenant())
    with check (tenant_id = sivo_current_tenant());
create policy outbox_delete on outbox for delete using (tenant_id = sivo_current_tenant());

-- The application role may read and write rows (through the policies) and nothing else.
grant usage on schema public to sivo_app;
grant select, insert, update, delete on all tables in schema public to sivo_app;
grant usage on all sequences in schema public to sivo_app;
grant execute on function sivo_current_tenant(), sivo_is_platform() to sivo_app;
-- Tables added by later migrations are readable by the application without repeating grants.
alter default privileges in schema public grant select, insert, update, delete on tables to sivo_app;
alter default privileges in schema public grant usage on sequences to sivo_app;
-- Migration bookkeeping is the owner's business only.
revoke all on _sqlx_migrations from sivo_app;
