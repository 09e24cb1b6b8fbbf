import { Fragment, useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router';
import { api, type Schemas } from '../api/client';
import { describeError } from '../api/problem';
import { ConfirmDialog } from '../components/Dialog';
import { OneTimeSecret } from '../components/OneTimeSecret';
import { Badge, Button, EmptyState, ErrorState, FormError, PageHeader, Pager, SelectField, Spinner } from '../components/ui';
import { formatDateTime } from '../lib/format';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { describeAttempt } from '../lib/webhooks';
import { EndpointDialog, EndpointStatus, useBack } from './Webhooks';

type Attempt = Schemas['AttemptOut'];

export function WebhookEndpointPage() {
  const { id = '' } = useParams();
  const back = useBack();
  const endpoint = useApi((signal) => api.get('/api/v1/webhooks/endpoints/{id}', { path: { id }, signal }), id);
  const [editing, setEditing] = useState(false);
  const [confirm, setConfirm] = useState<'rotate' | 'delete' | null>(null);
  const [confirmError, setConfirmError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [secret, setSecret] = useState<string | null>(null);
  const [flash, setFlash] = useState<string | null>(null);
  const [deliveriesKey, setDeliveriesKey] = useState(0);

  const runConfirm = async () => {
    setBusy(true);
    setConfirmError(null);
    try {
      if (confirm === 'delete') {
        await api.delete('/api/v1/webhooks/endpoints/{id}', { path: { id } });
        back();
        return;
      }
      const out = await api.post('/api/v1/webhooks/endpoints/{id}/rotate-secret', { path: { id } });
      setSecret(out.webhook_secret);
      setConfirm(null);
    } catch (err) {
      setConfirmError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  if (endpoint.error) {
    return (
      <>
        <PageHeader title="Webhook endpoint" trail={['Settings', 'Developer', 'Webhooks', 'Endpoint']} />
        <ErrorState error={endpoint.error} onRetry={endpoint.reload} />
        <p className="back-link">
          <Link to="/settings/developer/webhooks">← All endpoints</Link>
        </p>
      </>
    );
  }
  if (!endpoint.data) return <Spinner label="Loading the endpoint…" />;
  const e = endpoint.data;

  return (
    <>
      <p className="back-link">
        <Link to="/settings/developer/webhooks">← All endpoints</Link>
      </p>
      <PageHeader
        title={e.description || new URL(e.url).host}
        trail={['Settings', 'Developer', 'Webhooks', 'Endpoint']}
        description={<span className="mono">{e.url}</span>}
        actions={
          <div className="button-row">
            <Button onClick={() => setEditing(true)}>Edit</Button>
            <Button variant="danger" onClick={() => setConfirm('delete')}>
              Delete
            </Button>
          </div>
        }
      />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      {secret && (
        <OneTimeSecret title="Copy the new signing secret" secret={secret} testId="webhook-secret" onDismiss={() => setSecret(null)}>
          Deliveries from the next attempt on are signed with it. Update your receiver now.
        </OneTimeSecret>
      )}
      <div className="grid-2">
        <section className="panel" aria-labelledby="ep-settings">
          <h2 id="ep-settings" className="section-title">
            Settings
          </h2>
          <dl className="details-grid">
            <dt>Status</dt>
            <dd>
              <EndpointStatus endpoint={e} />
              {e.disabled_reason && <span className="muted"> {e.disabled_reason}</span>}
            </dd>
            <dt>Events</dt>
            <dd>
              {e.event_types.length === 0 ? (
                'All events'
              ) : (
                <span className="chip-list">
                  {e.event_types.map((t) => (
                    <code key={t} className="code-chip">
                      {t}
                    </code>
                  ))}
                </span>
              )}
            </dd>
            <dt>Created</dt>
            <dd>{formatDateTime(e.created_at)}</dd>
            <dt>Signing secret</dt>
            <dd>
              <Button size="sm" onClick={() => setConfirm('rotate')}>
                Rotate secret
              </Button>
            </dd>
          </dl>
        </section>
        <TestEvent endpointId={id} onSent={() => setDeliveriesKey((k) => k + 1)} />
      </div>
      <Deliveries endpointId={id} refreshKey={deliveriesKey} />
      <DeadLetters endpointId={id} onRetried={(n) => setFlash(`${n} ${n === 1 ? 'delivery was' : 'deliveries were'} put back in line.`)} />
      {editing && (
        <EndpointDialog
          endpoint={e}
          onClose={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            setFlash('The endpoint was updated.');
            endpoint.reload();
          }}
        />
      )}
      <ConfirmDialog
        open={confirm !== null}
        title={confirm === 'delete' ? 'Delete this endpoint?' : 'Rotate the signing secret?'}
        confirmLabel={confirm === 'delete' ? 'Delete endpoint' : 'Rotate secret'}
        tone={confirm === 'delete' ? 'danger' : 'primary'}
        busy={busy}
        error={confirmError}
        onConfirm={() => void runConfirm()}
        onClose={() => {
          setConfirm(null);
          setConfirmError(null);
        }}
      >
        {confirm === 'delete' ? (
          <p>Events stop at once, and its delivery log and dead-letter queue are deleted too.</p>
        ) : (
          <p>The current secret stops working from the next delivery attempt. Your receiver must switch to the new one.</p>
        )}
      </ConfirmDialog>
    </>
  );
}

function TestEvent({ endpointId, onSent }: { endpointId: string; onSent: () => void }) {
  const types = useApi((signal) => api.get('/api/v1/webhooks/event-types', { signal }), 'types');
  const [type, setType] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Schemas['TestEventOut'] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const chosen = type || types.data?.[0] || '';

  const send = async (ev: FormEvent) => {
    ev.preventDefault();
    if (!chosen) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await api.post('/api/v1/webhooks/endpoints/{id}/test', { path: { id: endpointId }, body: { event_type: chosen } }));
      onSent();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="ep-test">
      <h2 id="ep-test" className="section-title">
        Send a test event
      </h2>
      <p className="muted">A synthetic event goes through the real delivery path, signature and all.</p>
      {types.error ? (
        <ErrorState error={types.error} onRetry={types.reload} />
      ) : (
        <form className="form form-row" onSubmit={send}>
          <SelectField label="Event type" name="event_type" value={chosen} onChange={(e) => setType(e.target.value)} disabled={!types.data}>
            {(types.data ?? []).map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </SelectField>
          <Button type="submit" variant="primary" busy={busy} disabled={!chosen}>
            Send test
          </Button>
        </form>
      )}
      <FormError error={error} />
      <div role="status" aria-live="polite" data-testid="test-result">
        {busy && <span className="muted">Sending… (up to 12 seconds)</span>}
        {result &&
          (result.attempt ? (
            <div className={`attempt-result ${result.attempt.succeeded ? 'ok' : 'fail'}`}>
              <strong>{describeAttempt(result.attempt)}</strong>
              {result.attempt.response_excerpt && <pre className="excerpt">{result.attempt.response_excerpt}</pre>}
            </div>
          ) : (
            <div className="attempt-result pending">
              <strong>Still trying.</strong> The first attempt had not finished after 12 seconds; it will show up in the deliveries below.
            </div>
          ))}
      </div>
    </section>
  );
}

function Deliveries({ endpointId, refreshKey }: { endpointId: string; refreshKey: number }) {
  const list = useApi((signal) => api.get('/api/v1/webhooks/endpoints/{id}/deliveries', { path: { id: endpointId }, signal }), `${endpointId}|${refreshKey}`);
  const [open, setOpen] = useState<string | null>(null);
  const key = (a: Attempt) => `${a.delivery_id}:${a.attempt}`;
  return (
    <section className="panel" aria-labelledby="ep-deliveries">
      <div className="section-head">
        <h2 id="ep-deliveries" className="section-title">
          Recent deliveries
        </h2>
        <Button size="sm" variant="ghost" onClick={list.reload} busy={list.loading && Boolean(list.data)}>
          Refresh
        </Button>
      </div>
      {list.error ? (
        <ErrorState error={list.error} onRetry={list.reload} />
      ) : !list.data ? (
        <Spinner label="Loading deliveries…" />
      ) : list.data.length === 0 ? (
        <EmptyState title="No deliveries yet">The last 100 attempts will appear here, with status and latency.</EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Recent deliveries">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">Attempt</th>
                <th scope="col">Result</th>
                <th scope="col">Latency</th>
                <th scope="col">
                  <span className="sr-only">Details</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((a) => (
                <Fragment key={key(a)}>
                  <tr>
                    <td data-label="Time">{formatDateTime(a.started_at, { seconds: true })}</td>
                    <td data-label="Event">
                      <code className="code-chip">{a.event_type}</code>
                    </td>
                    <td data-label="Attempt">{a.attempt} of 7</td>
                    <td data-label="Result">
                      {a.succeeded ? (
                        <Badge tone="success">HTTP {a.http_status}</Badge>
                      ) : (
                        <Badge tone="danger">{a.http_status ? `HTTP ${a.http_status}` : 'Failed'}</Badge>
                      )}
                    </td>
                    <td data-label="Latency">{a.latency_ms} ms</td>
                    <td className="cell-actions">
                      <Button size="sm" variant="ghost" aria-expanded={open === key(a)} onClick={() => setOpen((o) => (o === key(a) ? null : key(a)))}>
                        {open === key(a) ? 'Hide' : 'Details'}
                      </Button>
                    </td>
                  </tr>
                  {open === key(a) && (
                    <tr className="row-details">
                      <td colSpan={6}>
                        <dl className="details-grid">
                          <dt>Event id</dt>
                          <dd className="mono">{a.event_id}</dd>
                          <dt>Delivery id</dt>
                          <dd className="mono">{a.delivery_id}</dd>
                          {a.error && (
                            <>
                              <dt>Error</dt>
                              <dd>{a.error}</dd>
                            </>
                          )}
                        </dl>
                        {a.response_excerpt && <pre className="excerpt">{a.response_excerpt}</pre>}
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function DeadLetters({ endpointId, onRetried }: { endpointId: string; onRetried: (n: number) => void }) {
  const pages = useCursorPages(endpointId);
  const list = useApi(
    (signal) => api.get('/api/v1/webhooks/endpoints/{id}/dead-letters', { path: { id: endpointId }, query: { cursor: pages.cursor, limit: 50 }, signal }),
    `${endpointId}|${pages.cursor}`,
  );
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);

  const retry = async (ids?: string[]) => {
    setBusy(ids?.[0] ?? 'all');
    setError(null);
    try {
      const out = await api.post('/api/v1/webhooks/endpoints/{id}/dead-letters/retry', { path: { id: endpointId }, body: ids ? { delivery_ids: ids } : {} });
      onRetried(out.retried.length);
      list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };

  const download = async () => {
    setBusy('export');
    setError(null);
    try {
      const all = await api.get('/api/v1/webhooks/endpoints/{id}/dead-letters/export', { path: { id: endpointId } });
      const url = URL.createObjectURL(new Blob([JSON.stringify(all, null, 2)], { type: 'application/json' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `sivo-dead-letters-${endpointId}.json`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };

  const items = list.data?.items ?? [];
  return (
    <section className="panel" aria-labelledby="ep-dead">
      <div className="section-head">
        <div>
          <h2 id="ep-dead" className="section-title">
            Dead-letter queue
          </h2>
          <p className="muted">Events that failed every retry (5 s, 30 s, 2 min, 10 min, 1 h, 6 h) or were refused.</p>
        </div>
        {items.length > 0 && (
          <div className="button-row">
            <Button size="sm" onClick={() => void download()} busy={busy === 'export'}>
              Download JSON
            </Button>
            <Button size="sm" variant="primary" onClick={() => void retry()} busy={busy === 'all'}>
              Retry all
            </Button>
          </div>
        )}
      </div>
      <FormError error={error} />
      {list.error ? (
        <ErrorState error={list.error} onRetry={list.reload} />
      ) : !list.data ? (
        <Spinner label="Loading the dead-letter queue…" />
      ) : items.length === 0 ? (
        <EmptyState title="Nothing in the dead-letter queue">Every event so far was delivered or is still being retried.</EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Dead letters">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last result</th>
                <th scope="col">Given up</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <tr key={d.delivery_id}>
                  <td data-label="Event">
                    <div>
                      <code className="code-chip">{d.event_type}</code>
                      <span className="cell-secondary mono">{d.event_id}</span>
                    </div>
                  </td>
                  <td data-label="Attempts">{d.attempts}</td>
                  <td data-label="Last result">{d.reason ?? (d.last_status ? `HTTP ${d.last_status}` : '—')}</td>
                  <td data-label="Given up">{formatDateTime(d.dead_at)}</td>
                  <td className="cell-actions">
                    <Button size="sm" onClick={() => void retry([d.delivery_id])} busy={busy === d.delivery_id}>
                      Retry
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager
        label="Dead-letter pages"
        page={pages.page}
        hasPrev={pages.page > 1}
        hasNext={Boolean(list.data?.next_cursor)}
        busy={list.loading}
        onPrev={pages.prev}
        onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
      />
    </section>
  );
}
