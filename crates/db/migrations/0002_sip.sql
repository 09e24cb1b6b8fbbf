-- SIP: agents' SIP accounts, registration bindings, trunks and DIDs.
--
-- Every table is a tenant business table: RLS enabled and forced, one policy per command on
-- tenant_id = sivo_current_tenant(), no platform mode. The SIP service finds the tenant first
-- (a REGISTER's domain names the tenant's slug in the `tenants` identity table; an INVITE's
-- source address is matched against an in-memory index of trunks loaded tenant by tenant) and
-- then works in a tenant transaction.

-- One SIP account per agent (users with role agent or supervisor).
create table sip_accounts (
    user_id         uuid primary key references users (id) on delete cascade,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    extension       text not null,
    -- The SIP password, encrypted with the master key (context "sip-password:<user id>").
    password_enc    text not null,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    unique (tenant_id, extension)
);

-- Registration bindings (RFC 3261 §10): one row per contact of an extension.
create table sip_registrations (
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    user_id         uuid not null references users (id) on delete cascade,
    contact         text not null,
    expires_at      timestamptz not null,
    call_id         text not null,
    cseq            bigint not null,
    q               real,
    -- How the binding was made: transport, source address, the connection that carries it
    -- and the node holding that connection (RFC 5626 style flow), so any node can reach it.
    transport       text not null,
    source          text not null,
    node_id         text not null,
    connection_id   bigint,
    user_agent      text,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    unique (tenant_id, user_id, contact)
);
create index sip_registrations_user_idx on sip_registrations (tenant_id, user_id, expires_at);
create index sip_registrations_node_idx on sip_registrations (node_id, connection_id);

create table sip_trunks (
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    name            text not null,
    host            text not null,
    port            integer not null check (port between 1 and 65535),
    transport       text not null check (transport in ('udp', 'tcp', 'tls')),
    -- Inbound INVITEs are accepted only from these networks (normalised CIDR text).
    allowed_cidrs   text[] not null default '{}',
    -- Optional outbound credentials; the password is encrypted ("sip-trunk-password:<id>").
    username        text,
    password_enc    text,
    register        boolean not null default false,
    keepalive       boolean not null default true,
    status          text not null default 'unknown' check (status in ('unknown', 'ok', 'fail')),
    status_reason   text,
    status_changed_at timestamptz,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    unique (tenant_id, name)
);
create index sip_trunks_tenant_idx on sip_trunks (tenant_id, created_at, id);

create table dids (
    id              uuid primary key,
    tenant_id       uuid not null references tenants (id) on delete cascade,
    -- E.164 with the leading '+'.
    number          text not null,
    trunk_id        uuid not null references sip_trunks (id) on delete restrict,
    destination_type text not null default 'none' check (destination_type in ('none', 'queue', 'agent', 'flow')),
    destination_id  uuid,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    unique (tenant_id, number)
);
create index dids_tenant_idx on dids (tenant_id, created_at, id);

do $$
declare
    t text;
begin
    foreach t in array array['sip_accounts', 'sip_registrations', 'sip_trunks', 'dids'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy %I on %I for select using (tenant_id = sivo_current_tenant())', t || '_select', t);
        execute format('create policy %I on %I for insert with check (tenant_id = sivo_current_tenant())', t || '_insert', t);
        execute format('create policy %I on %I for update using (tenant_id = sivo_current_tenant()) with check (tenant_id = sivo_current_tenant())', t || '_update', t);
        execute format('create policy %I on %I for delete using (tenant_id = sivo_current_tenant())', t || '_delete', t);
    end loop;
end $$;
