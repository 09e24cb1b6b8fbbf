-- Outbound calls: which trunk an agent's call to an external number leaves through, and the
-- caller id it presents. Both optional: without them the tenant's first trunk (one whose
-- keepalive is OK first) and the first DID on it are used.
alter table tenant_settings
    add column outbound_trunk_id uuid references sip_trunks (id) on delete set null,
    add column outbound_caller_id text check (outbound_caller_id ~ '^\+?[0-9]{3,20}$');

-- The called party of an outbound call can hang up too.
alter table calls drop constraint calls_hangup_side_check;
alter table calls add constraint calls_hangup_side_check
    check (hangup_side in ('caller', 'agent', 'callee', 'system'));
