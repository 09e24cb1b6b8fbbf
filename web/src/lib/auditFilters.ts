import type { FieldErrors } from '../api/problem';

export interface AuditFilters {
  user: string;
  resource: string;
  event: string;
  /** RFC 3339 */
  from: string;
  /** RFC 3339 */
  to: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function validateAuditFilters(f: AuditFilters): FieldErrors {
  const errors: FieldErrors = {};
  if (f.user && !UUID.test(f.user)) errors.user = 'A user id looks like 0190f3c2-…: 36 characters.';
  if (f.resource && !/^[a-z_]+(:\S+)?$/.test(f.resource)) errors.resource = 'Use a type like user, or type:id like user:0190f3c2-….';
  if (f.event && /\s/.test(f.event)) errors.event = 'Event names have no spaces, e.g. login or user.created.';
  if (f.from && f.to && new Date(f.from) >= new Date(f.to)) errors.to = 'Must be after “From”.';
  return errors;
}
