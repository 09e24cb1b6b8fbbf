-- Registration refreshes as HOT updates.
--
-- A refresh rewrites a binding's expires_at (and call_id, cseq, updated_at). With expires_at in an
-- index, PostgreSQL cannot update the row in place (heap-only tuple): every refresh inserted into
-- every index of the table and left a dead entry behind. Nothing needs that index: bindings are
-- always read per user, and (tenant_id, user_id, contact) — the unique key — serves those reads
-- (at most max_bindings rows per user, filtered on expires_at); the sweep of expired bindings
-- runs every few seconds per tenant and reads the tenant's rows, not an expiry range.
-- The remaining indexes cover columns a plain refresh does not change (contact, node_id,
-- connection_id), so a refresh is HOT when its page has room: fillfactor 70 keeps that room.
drop index sip_registrations_user_idx;
alter table sip_registrations set (fillfactor = 70);
