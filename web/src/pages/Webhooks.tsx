import { useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { api, type Schemas } from '../api/client';
import { ApiError } from '../api/problem';
import { Dialog } from '../components/Dialog';
import { OneTimeSecret } from '../components/OneTimeSecret';
import { Badge, Button, CheckboxField, EmptyState, ErrorState, FormError, PageHeader, Pager, Spinner, TextField, focusFirstError } from '../components/ui';
import { formatDateTime, formatRelative } from '../lib/format';
import { trailFor } from '../lib/nav';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { endpointBody, groupEventTypes, mapEndpointErrors, validateEndpoint, type EndpointForm } from '../lib/webhooks';

export type Endpoint = Schemas['EndpointOut'];

export function WebhooksPage() {
  const pages = useCursorPages('endpoints');
  const list = useApi(
    (signal) => api.get('/api/v1/webhooks/endpoints', { query: { cursor: pages.cursor, limit: 50 }, signal }),
    pages.cursor ?? '',
  );
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<Schemas['EndpointWithSecretOut'] | null>(null);

  return (
    <>
      <PageHeader
        title="Webhooks"
        trail={trailFor('/settings/developer/webhooks')}
        description={
          <>
            SIVO posts each event to your endpoints, signed with <code>X-Sivo-Signature: sha256=…</code> (HMAC-SHA256 of the raw body
            with the endpoint’s secret). Failed deliveries are retried for about 7 hours, then kept in a dead-letter queue.
          </>
        }
        actions={
          <Button variant="primary" onClick={() => setCreating(true)}>
            Add endpoint
          </Button>
        }
      />
      {created && (
        <OneTimeSecret title={`Copy the signing secret for ${created.url}`} secret={created.webhook_secret} testId="webhook-secret" onDismiss={() => setCreated(null)}>
          Use the whole string as the HMAC-SHA256 key to verify <code>X-Sivo-Signature</code>. It is shown only now; you can rotate it
          later.
        </OneTimeSecret>
      )}
      <div className="panel">
        {list.error ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading endpoints…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title="No webhook endpoints yet" action={<Button onClick={() => setCreating(true)}>Add endpoint</Button>}>
            Add an HTTPS endpoint to receive call, queue, agent and transcript events as they happen.
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Endpoint</th>
                  <th scope="col">Events</th>
                  <th scope="col">Status</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((e) => (
                  <tr key={e.id}>
                    <td data-label="Endpoint">
                      <div className="cell-clip">
                        <span className="cell-primary mono">{e.url}</span>
                        {e.description && <span className="cell-secondary">{e.description}</span>}
                      </div>
                    </td>
                    <td data-label="Events">{e.event_types.length === 0 ? 'All events' : `${e.event_types.length} selected`}</td>
                    <td data-label="Status">
                      <EndpointStatus endpoint={e} />
                    </td>
                    <td data-label="Created">
                      <time dateTime={e.created_at} title={formatDateTime(e.created_at)}>
                        {formatRelative(e.created_at)}
                      </time>
                    </td>
                    <td className="cell-actions">
                      <Link className="btn btn-secondary btn-sm" to={e.id} aria-label={`Open ${e.url}`}>
                        Open
                      </Link>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <Pager
          label="Endpoint pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </div>
      {creating && (
        <EndpointDialog
          onClose={() => setCreating(false)}
          onSaved={(e) => {
            setCreating(false);
            if ('webhook_secret' in e) setCreated(e as Schemas['EndpointWithSecretOut']);
            list.reload();
          }}
        />
      )}
    </>
  );
}

export function EndpointStatus({ endpoint }: { endpoint: Endpoint }) {
  if (endpoint.disabled_reason) {
    return (
      <span title={endpoint.disabled_reason}>
        <Badge tone="danger">Disabled by SIVO</Badge>
      </span>
    );
  }
  return endpoint.enabled ? <Badge tone="success">Enabled</Badge> : <Badge tone="neutral">Paused</Badge>;
}

/** Create (no `endpoint`) or edit an endpoint. */
export function EndpointDialog({
  endpoint,
  onClose,
  onSaved,
}: {
  endpoint?: Endpoint;
  onClose: () => void;
  onSaved: (e: Endpoint | Schemas['EndpointWithSecretOut']) => void;
}) {
  const types = useApi((signal) => api.get('/api/v1/webhooks/event-types', { signal }), 'types');
  const [form, setForm] = useState<EndpointForm>({
    url: endpoint?.url ?? '',
    description: endpoint?.description ?? '',
    allEvents: !endpoint || endpoint.event_types.length === 0,
    eventTypes: endpoint?.event_types ?? [],
    enabled: endpoint?.enabled ?? true,
  });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validateEndpoint(form);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    setBusy(true);
    try {
      const body = endpointBody(form);
      const saved = endpoint
        ? await api.patch('/api/v1/webhooks/endpoints/{id}', { path: { id: endpoint.id }, body })
        : await api.post('/api/v1/webhooks/endpoints', { body });
      onSaved(saved);
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        const mapped = mapEndpointErrors(err.fieldErrors);
        setErrors(mapped);
        focusFirstError(formRef.current, mapped);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  const toggle = (t: string, on: boolean) =>
    setForm((f) => ({ ...f, eventTypes: on ? [...f.eventTypes, t] : f.eventTypes.filter((x) => x !== t) }));

  return (
    <Dialog open size="wide" title={endpoint ? 'Edit endpoint' : 'Add endpoint'} onClose={onClose}>
      <form ref={formRef} onSubmit={submit} noValidate className="form" aria-label={endpoint ? 'Edit endpoint' : 'Add endpoint'}>
        <FormError error={formError} />
        <TextField
          label="URL"
          name="url"
          type="url"
          placeholder="https://example.com/sivo-webhooks"
          value={form.url}
          onChange={(e) => setForm((f) => ({ ...f, url: e.target.value }))}
          error={errors.url}
          hint="HTTPS only. Private, loopback and link-local addresses are refused; redirects are not followed."
        />
        <TextField
          label="Description"
          name="description"
          optional
          value={form.description}
          onChange={(e) => setForm((f) => ({ ...f, description: e.target.value }))}
          error={errors.description}
        />
        <fieldset className={`fieldset${errors.event_types ? ' field-invalid' : ''}`} aria-describedby={errors.event_types ? 'event-types-error' : undefined}>
          <legend className="field-label">Events</legend>
          <label className="radio">
            <input type="radio" name="events-mode" checked={form.allEvents} onChange={() => setForm((f) => ({ ...f, allEvents: true }))} />
            All events, including ones added later
          </label>
          <label className="radio">
            <input type="radio" name="events-mode" checked={!form.allEvents} onChange={() => setForm((f) => ({ ...f, allEvents: false }))} />
            Only the events I choose
          </label>
          {!form.allEvents &&
            (types.error ? (
              <ErrorState error={types.error} onRetry={types.reload} />
            ) : !types.data ? (
              <Spinner label="Loading event types…" />
            ) : (
              <div className="event-groups">
                {groupEventTypes(types.data).map(([group, list]) => (
                  <div key={group} className="event-group">
                    <p className="event-group-label">{group}</p>
                    {list.map((t) => (
                      <label key={t} className="check">
                        <input type="checkbox" name="event_types" value={t} checked={form.eventTypes.includes(t)} onChange={(e) => toggle(t, e.target.checked)} />
                        <code>{t}</code>
                      </label>
                    ))}
                  </div>
                ))}
              </div>
            ))}
          {errors.event_types && (
            <p id="event-types-error" className="field-error">
              {errors.event_types}
            </p>
          )}
        </fieldset>
        <CheckboxField
          label="Enabled"
          name="enabled"
          checked={form.enabled}
          onChange={(e) => setForm((f) => ({ ...f, enabled: e.target.checked }))}
          hint="A paused endpoint receives nothing; events are not queued for it."
        />
        <footer className="dialog-footer">
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="primary" busy={busy}>
            {endpoint ? 'Save changes' : 'Add endpoint'}
          </Button>
        </footer>
      </form>
    </Dialog>
  );
}

export function useBack() {
  const navigate = useNavigate();
  return () => navigate('/settings/developer/webhooks');
}
