import { Fragment, useEffect, useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import { api, type AuditEntry } from '../api/client';
import { useMe } from '../auth/session';
import { Button, EmptyState, ErrorState, FormError, PageHeader, Pager, SelectField, Spinner, TextField, focusFirstError } from '../components/ui';
import { diffValues, formatValue } from '../lib/diff';
import { formatDateTime, localInputToRfc3339, rfc3339ToLocalInput } from '../lib/format';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { validateAuditFilters, type AuditFilters } from '../lib/auditFilters';

const PAGE_SIZE = 50;

function readFilters(params: URLSearchParams): AuditFilters {
  return {
    user: params.get('user') ?? '',
    resource: params.get('resource') ?? '',
    event: params.get('event') ?? '',
    from: params.get('from') ?? '',
    to: params.get('to') ?? '',
  };
}

export function AuditPage() {
  const me = useMe();
  const [params, setParams] = useSearchParams();
  const applied = readFilters(params);
  const key = JSON.stringify(applied);
  const pages = useCursorPages(key);
  const list = useApi(
    (signal) =>
      api.get('/api/v1/audit', {
        query: {
          user: applied.user || undefined,
          resource: applied.resource || undefined,
          event: applied.event || undefined,
          from: applied.from || undefined,
          to: applied.to || undefined,
          cursor: pages.cursor,
          limit: PAGE_SIZE,
        },
        signal,
      }),
    `${key}|${pages.cursor}`,
  );
  // Admins pick the acting user from their users; superadmins (platform-wide) paste an id.
  const users = useApi(
    (signal) =>
      me.role === 'admin' ? api.get('/api/v1/users', { query: { limit: 200 }, signal }).then((p) => p.items) : Promise.resolve([]),
    me.role,
  );
  const [draft, setDraft] = useState(() => ({
    ...applied,
    from: rfc3339ToLocalInput(applied.from),
    to: rfc3339ToLocalInput(applied.to),
  }));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [open, setOpen] = useState<string | null>(null);

  // Back/forward between filter sets: the form follows the address.
  useEffect(() => {
    const f = JSON.parse(key) as AuditFilters;
    setDraft({ ...f, from: rfc3339ToLocalInput(f.from), to: rfc3339ToLocalInput(f.to) });
  }, [key]);

  const apply = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const filters: AuditFilters = {
      user: draft.user.trim(),
      resource: draft.resource.trim(),
      event: draft.event.trim(),
      from: localInputToRfc3339(draft.from) ?? '',
      to: localInputToRfc3339(draft.to) ?? '',
    };
    const fieldErrors = validateAuditFilters(filters);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(e.currentTarget, fieldErrors);
    const next = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) next.set(k, v);
    setParams(next);
  };

  const clear = () => {
    setDraft({ user: '', resource: '', event: '', from: '', to: '' });
    setErrors({});
    setParams(new URLSearchParams());
  };

  const filterBy = (patch: Partial<AuditFilters>) => {
    const next = { ...applied, ...patch };
    setDraft({ ...next, from: rfc3339ToLocalInput(next.from), to: rfc3339ToLocalInput(next.to) });
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(next)) if (v) search.set(k, v);
    setParams(search);
  };

  const active = Object.values(applied).some(Boolean);
  const userOptions = users.data ?? [];
  const userLabel = (id: string | null | undefined) => userOptions.find((u) => u.id === id)?.email;

  return (
    <>
      <PageHeader
        title="Audit log"
        description={
          me.role === 'superadmin'
            ? 'Everything that happened on the platform, newest first.'
            : 'Everything that happened in this organisation, newest first: sign-ins, changes to users and keys, and what changed.'
        }
      />
      <section className="panel" aria-label="Filters">
        <form className="filters" onSubmit={apply} noValidate>
          {me.role === 'admin' ? (
            <SelectField label="User" name="user" value={draft.user} onChange={(e) => setDraft((d) => ({ ...d, user: e.target.value }))} error={errors.user}>
              <option value="">Anyone</option>
              {draft.user && !userOptions.some((u) => u.id === draft.user) && <option value={draft.user}>{draft.user}</option>}
              {userOptions.map((u) => (
                <option key={u.id} value={u.id}>
                  {u.display_name && u.display_name !== u.email ? `${u.display_name} (${u.email})` : u.email}
                </option>
              ))}
            </SelectField>
          ) : (
            <TextField
              label="User id"
              name="user"
              placeholder="UUID"
              value={draft.user}
              onChange={(e) => setDraft((d) => ({ ...d, user: e.target.value }))}
              error={errors.user}
            />
          )}
          <TextField
            label="Resource"
            name="resource"
            placeholder="user or user:<id>"
            value={draft.resource}
            onChange={(e) => setDraft((d) => ({ ...d, resource: e.target.value }))}
            error={errors.resource}
          />
          <TextField
            label="Event"
            name="event"
            placeholder="e.g. login, user.created"
            value={draft.event}
            onChange={(e) => setDraft((d) => ({ ...d, event: e.target.value }))}
            error={errors.event}
          />
          <TextField
            label="From"
            name="from"
            type="datetime-local"
            value={draft.from}
            onChange={(e) => setDraft((d) => ({ ...d, from: e.target.value }))}
            error={errors.from}
          />
          <TextField
            label="To"
            name="to"
            type="datetime-local"
            value={draft.to}
            onChange={(e) => setDraft((d) => ({ ...d, to: e.target.value }))}
            error={errors.to}
          />
          <div className="filters-actions">
            <Button type="submit" variant="primary">
              Apply filters
            </Button>
            {active && (
              <Button variant="ghost" onClick={clear}>
                Clear
              </Button>
            )}
          </div>
        </form>
        {users.error ? <FormError>Could not load the list of users for the filter; you can still filter by the other fields.</FormError> : null}
      </section>
      <section className="panel" aria-label="Entries">
        {list.error ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading the audit log…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title={active ? 'No entries match these filters' : 'Nothing recorded yet'}>
            {active ? 'Widen the time range or clear a filter.' : 'Sign-ins and changes will appear here.'}
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table table-audit">
              <caption className="sr-only">Audit log entries, newest first</caption>
              <colgroup>
                <col className="col-time" />
                <col className="col-event" />
                <col />
                <col />
                <col className="col-ip" />
                <col className="col-actions" />
              </colgroup>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Event</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Resource</th>
                  <th scope="col">Source IP</th>
                  <th scope="col">
                    <span className="sr-only">Details</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((entry) => (
                  <Fragment key={entry.id}>
                    <tr className={open === entry.id ? 'row-open' : undefined}>
                      <td data-label="Time">
                        <time dateTime={entry.at}>{formatDateTime(entry.at, { seconds: true })}</time>
                      </td>
                      <td data-label="Event">
                        <code className={`code-chip event-${eventTone(entry.event)}`}>{breakable(entry.event)}</code>
                      </td>
                      <td data-label="Actor">
                        <ActorCell entry={entry} fallback={userLabel(entry.actor_id)} />
                      </td>
                      <td data-label="Resource">
                        <div>
                          <span className="cell-primary">{entry.resource_type.replace('_', ' ')}</span>
                          {entry.resource_id && (
                            <span className="cell-secondary mono" title={`${userLabel(entry.resource_id) ?? ''} ${entry.resource_id}`.trim()}>
                              {userLabel(entry.resource_id) ?? shortId(entry.resource_id)}
                            </span>
                          )}
                        </div>
                      </td>
                      <td data-label="Source IP" className="mono">
                        {entry.source_ip ?? '—'}
                      </td>
                      <td className="cell-actions">
                        <Button
                          size="sm"
                          variant="ghost"
                          aria-expanded={open === entry.id}
                          aria-controls={`audit-${entry.id}`}
                          onClick={() => setOpen((o) => (o === entry.id ? null : entry.id))}
                        >
                          {open === entry.id ? 'Hide' : 'Details'}
                        </Button>
                      </td>
                    </tr>
                    {open === entry.id && (
                      <tr className="row-details" id={`audit-${entry.id}`}>
                        <td colSpan={6}>
                          <AuditDetails entry={entry} onFilter={filterBy} />
                        </td>
                      </tr>
                    )}
                  </Fragment>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <Pager
          label="Audit log pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </section>
    </>
  );
}

const ACTOR_KINDS: Record<string, string> = {
  user: 'User',
  api_key: 'API key',
  system: 'System',
  cli: 'Command line',
  anonymous: 'Anonymous',
};

function ActorCell({ entry, fallback }: { entry: AuditEntry; fallback?: string }) {
  const kind = ACTOR_KINDS[entry.actor_kind] ?? entry.actor_kind;
  const primary = entry.actor_label ?? fallback ?? kind;
  return (
    <div>
      <span className="cell-primary" title={primary}>
        {primary}
      </span>
      {primary !== kind && <span className="cell-secondary">{kind}</span>}
    </div>
  );
}

/** Lets long dotted names wrap after `.` and `_` rather than mid-word. */
function breakable(text: string) {
  return text.split(/(?<=[._])/).map((part, i) => (
    <Fragment key={i}>
      {i > 0 && <wbr />}
      {part}
    </Fragment>
  ));
}

function shortId(id: string): string {
  return id.length > 13 ? `${id.slice(0, 8)}…` : id;
}

function eventTone(event: string): string {
  if (/failed|refused|lockout|deleted|revoked|disabled/.test(event)) return 'danger';
  if (/created|succeeded|enabled/.test(event)) return 'success';
  return 'neutral';
}

function AuditDetails({ entry, onFilter }: { entry: AuditEntry; onFilter: (f: Partial<AuditFilters>) => void }) {
  const all = diffValues(entry.before, entry.after);
  const [showAll, setShowAll] = useState(false);
  const changedCount = all.filter((r) => r.kind !== 'unchanged').length;
  // Edits show what changed; the unchanged fields are one click away.
  const rows = showAll || changedCount === 0 ? all : all.filter((r) => r.kind !== 'unchanged');
  const hidden = all.length - rows.length;
  return (
    <div className="audit-details">
      <dl className="details-grid">
        <dt>Entry</dt>
        <dd className="mono">{entry.id}</dd>
        {entry.request_id && (
          <>
            <dt>Request id</dt>
            <dd className="mono">{entry.request_id}</dd>
          </>
        )}
        {entry.actor_id && (
          <>
            <dt>Actor id</dt>
            <dd className="mono">
              {entry.actor_id}{' '}
              {entry.actor_kind === 'user' && (
                <button type="button" className="link-btn" onClick={() => onFilter({ user: entry.actor_id ?? '' })}>
                  Only this actor
                </button>
              )}
            </dd>
          </>
        )}
        {entry.resource_id && (
          <>
            <dt>Resource</dt>
            <dd className="mono">
              {entry.resource_type}:{entry.resource_id}{' '}
              <button type="button" className="link-btn" onClick={() => onFilter({ resource: `${entry.resource_type}:${entry.resource_id}` })}>
                Only this resource
              </button>
            </dd>
          </>
        )}
      </dl>
      {rows.length === 0 ? (
        <p className="muted">No before/after data for this event.</p>
      ) : (
        <table className="diff" aria-label="Changes">
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Before</th>
              <th scope="col">After</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.key} className={`diff-${r.kind}`}>
                <th scope="row">
                  {r.key}
                  {r.kind !== 'unchanged' && <span className="sr-only"> ({r.kind})</span>}
                </th>
                <td className="diff-before">{r.kind === 'added' ? '' : formatValue(r.before)}</td>
                <td className="diff-after">{r.kind === 'removed' ? '' : formatValue(r.after)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(hidden > 0 || (showAll && changedCount > 0 && changedCount < all.length)) && (
        <button type="button" className="link-btn diff-toggle" onClick={() => setShowAll((v) => !v)}>
          {showAll ? 'Show only what changed' : `Show ${hidden} unchanged field${hidden === 1 ? '' : 's'}`}
        </button>
      )}
    </div>
  );
}
