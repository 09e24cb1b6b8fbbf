import { useRef, useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { api } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { ConfirmDialog, Dialog } from '../components/Dialog';
import { RegistrationIndicator } from '../components/telephony';
import {
  Badge,
  Button,
  EmptyState,
  ErrorState,
  FormError,
  PageHeader,
  Pager,
  SelectField,
  Spinner,
  TextField,
  focusFirstError,
} from '../components/ui';
import { agentName, type Agent } from '../lib/agents';
import { DESTINATION_LABELS, didBody, didPatch, didToForm, normalizeNumber, validateDid, type Did, type DidForm, type DestinationType } from '../lib/dids';
import { formatDateTime, formatRelative } from '../lib/format';
import { listAll } from '../lib/listAll';
import { trailFor } from '../lib/nav';
import type { Queue } from '../lib/queues';
import { formatCarrier, trunkStatusView, type Trunk } from '../lib/trunks';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';

const PAGE_SIZE = 50;

interface Lookups {
  trunks: Trunk[];
  agents: Agent[];
  queues: Queue[];
}

export function NumbersPage() {
  const pages = useCursorPages('dids');
  const list = useApi((signal) => api.get('/api/v1/dids', { query: { cursor: pages.cursor, limit: PAGE_SIZE }, signal }), pages.cursor ?? '');
  const lookups = useApi<Lookups>(
    async (signal) => {
      const [trunks, agents, queues] = await Promise.all([
        listAll((cursor) => api.get('/api/v1/trunks', { query: { cursor, limit: 200 }, signal })),
        listAll((cursor) => api.get('/api/v1/agents', { query: { cursor, limit: 200 }, signal })),
        listAll((cursor) => api.get('/api/v1/queues', { query: { cursor, limit: 200 }, signal })),
      ]);
      return { trunks, agents, queues };
    },
    'lookups',
  );
  const [dialog, setDialog] = useState<{ mode: 'create' } | { mode: 'edit'; did: Did } | null>(null);
  const [flash, setFlash] = useState<string | null>(null);

  const trunkById = new Map(lookups.data?.trunks.map((t) => [t.id, t]));
  const agentById = new Map(lookups.data?.agents.map((a) => [a.id, a]));
  const queueById = new Map(lookups.data?.queues.map((q) => [q.id, q]));
  const noTrunks = lookups.data && lookups.data.trunks.length === 0;

  const done = (message: string) => {
    setFlash(message);
    setDialog(null);
    list.reload();
  };

  const addButton = (
    <Button variant="primary" onClick={() => setDialog({ mode: 'create' })} disabled={!lookups.data || noTrunks}>
      <svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" strokeWidth="2.2" aria-hidden="true">
        <path d="M12 5v14M5 12h14" />
      </svg>
      Add number
    </Button>
  );

  return (
    <>
      <PageHeader
        title="Numbers (DIDs)"
        trail={trailFor('/settings/numbers')}
        description="The phone numbers your organisation owns: which trunk each arrives on, and who answers it."
        actions={addButton}
      />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      {noTrunks && (
        <div className="alert alert-info notice-gap" role="status">
          <strong className="alert-title">Add a SIP trunk first</strong>
          <span>
            Numbers arrive through a carrier trunk. <Link to="/settings/sip-trunks">Add one under Settings → SIP trunks</Link>, then come back.
          </span>
        </div>
      )}
      {lookups.error ? <ErrorState error={lookups.error} onRetry={lookups.reload} /> : null}
      <div className="panel">
        {list.error ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading numbers…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title="No numbers yet" action={noTrunks ? undefined : <Button onClick={() => setDialog({ mode: 'create' })}>Add number</Button>}>
            Add the numbers your carrier routes to you, in international format, and choose who answers them.
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <caption className="sr-only">Numbers</caption>
              <thead>
                <tr>
                  <th scope="col">Number</th>
                  <th scope="col">Trunk</th>
                  <th scope="col">Destination</th>
                  <th scope="col">Updated</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((d) => {
                  const trunk = trunkById.get(d.trunk_id);
                  return (
                    <tr key={d.id}>
                      <td data-label="Number">
                        <span className="cell-primary mono number">{d.number}</span>
                      </td>
                      <td data-label="Trunk">
                        {trunk ? <TrunkCell trunk={trunk} /> : <span className="muted">{lookups.data ? 'Unknown trunk' : '…'}</span>}
                      </td>
                      <td data-label="Destination">
                        <Destination
                          did={d}
                          agent={d.destination_id ? agentById.get(d.destination_id) : undefined}
                          queue={d.destination_id ? queueById.get(d.destination_id) : undefined}
                        />
                      </td>
                      <td data-label="Updated">
                        <time dateTime={d.updated_at} title={formatDateTime(d.updated_at)}>
                          {formatRelative(d.updated_at)}
                        </time>
                      </td>
                      <td className="cell-actions">
                        <Button size="sm" onClick={() => setDialog({ mode: 'edit', did: d })} aria-label={`Edit ${d.number}`} disabled={!lookups.data}>
                          Edit
                        </Button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        <Pager
          label="Number pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </div>
      {dialog && lookups.data && (
        <NumberDialog did={dialog.mode === 'edit' ? dialog.did : undefined} lookups={lookups.data} onClose={() => setDialog(null)} onDone={done} />
      )}
    </>
  );
}

function TrunkCell({ trunk }: { trunk: Trunk }) {
  const v = trunkStatusView(trunk);
  return (
    <span>
      <span className="cell-primary">
        {trunk.name}{' '}
        <Badge tone={v.tone}>
          <span className="sr-only">status </span>
          {v.label}
        </Badge>
      </span>
      <span className="cell-secondary mono">{formatCarrier(trunk)}</span>
    </span>
  );
}

function Destination({ did, agent, queue }: { did: Did; agent?: Agent; queue?: Queue }) {
  if (did.destination_type === 'none') return <span className="muted">Not routed</span>;
  if (did.destination_type === 'agent') {
    return (
      <span>
        <span className="cell-primary">
          {agent ? agentName(agent) : 'Unknown agent'}
          {agent?.extension && <span className="muted"> · ext. {agent.extension}</span>}
        </span>
        {agent ? <RegistrationIndicator registration={agent.registration} detail={false} /> : null}
      </span>
    );
  }
  if (did.destination_type === 'queue') {
    return (
      <span>
        <span className="cell-primary">{queue ? <Link to={`/settings/queues/${queue.id}`}>{queue.name}</Link> : 'Unknown queue'}</span>
        <span className="cell-secondary">Queue</span>
      </span>
    );
  }
  return (
    <span>
      <span className="cell-primary">{DESTINATION_LABELS[did.destination_type]}</span>
      <span className="cell-secondary mono">{did.destination_id}</span>
    </span>
  );
}

function NumberDialog({ did, lookups, onClose, onDone }: { did?: Did; lookups: Lookups; onClose: () => void; onDone: (message: string) => void }) {
  const [form, setForm] = useState<DidForm>(() =>
    did ? didToForm(did) : { number: '', trunk_id: lookups.trunks.length === 1 ? lookups.trunks[0]!.id : '', destination_type: 'none', destination_id: '' },
  );
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const formRef = useRef<HTMLFormElement>(null);

  const set = <K extends keyof DidForm>(k: K, v: DidForm[K]) => {
    setForm((f) => ({ ...f, [k]: v }));
    // An edited field's old message goes; the next submit checks it again.
    setErrors((e) => (k in e ? Object.fromEntries(Object.entries(e).filter(([f]) => f !== k)) : e));
  };
  const normalized = normalizeNumber(form.number);
  // Flows become destinations when IVR ships; an existing one stays editable.
  const available = (t: DestinationType) => t !== 'flow' || did?.destination_type === 'flow';

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validateDid(form);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    setBusy(true);
    try {
      if (did) {
        const patch = didPatch(form, did);
        if (Object.keys(patch).length === 0) return onClose();
        const saved = await api.patch('/api/v1/dids/{id}', { path: { id: did.id }, body: patch });
        onDone(`${saved.number} was updated.`);
      } else {
        const saved = await api.post('/api/v1/dids', { body: didBody(form) });
        onDone(`${saved.number} was added.`);
      }
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        setErrors(err.fieldErrors);
        focusFirstError(formRef.current, err.fieldErrors);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  const runDelete = async () => {
    if (!did) return;
    setBusy(true);
    setDeleteError(null);
    try {
      await api.delete('/api/v1/dids/{id}', { path: { id: did.id } });
      setConfirmDelete(false);
      onDone(`${did.number} was deleted.`);
    } catch (err) {
      setDeleteError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const title = did ? `Edit ${did.number}` : 'Add number';
  const agents = [...lookups.agents].filter((a) => !a.disabled || a.id === form.destination_id).sort((a, b) => agentName(a).localeCompare(agentName(b)));

  return (
    <>
      <Dialog open title={title} onClose={onClose}>
        <form ref={formRef} onSubmit={submit} noValidate className="form" aria-label={title}>
          <FormError error={formError} />
          <TextField
            label="Number"
            name="number"
            className="input mono"
            inputMode="tel"
            autoComplete="off"
            placeholder="+49 30 1234567"
            value={form.number}
            onChange={(e) => set('number', e.target.value)}
            error={errors.number}
            hint={
              form.number.trim() && normalized !== form.number.trim()
                ? `Saved as ${normalized}.`
                : 'International format (E.164): + and the country code. Spaces and dashes are fine.'
            }
          />
          <SelectField label="Trunk" name="trunk_id" value={form.trunk_id} onChange={(e) => set('trunk_id', e.target.value)} error={errors.trunk_id} hint="The carrier that delivers calls to this number.">
            <option value="">Choose a trunk…</option>
            {lookups.trunks.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name} — {formatCarrier(t)}
                {t.status === 'FAIL' ? ' (FAIL)' : ''}
              </option>
            ))}
          </SelectField>
          <SelectField
            label="Destination"
            name="destination_type"
            value={form.destination_type}
            onChange={(e) => setForm((f) => ({ ...f, destination_type: e.target.value as DestinationType, destination_id: '' }))}
            error={errors.destination_type}
            hint={form.destination_type === 'none' ? 'Calls to this number are refused until it is routed.' : undefined}
          >
            <option value="none">Not routed</option>
            <option value="agent">An agent</option>
            <option value="queue">A queue</option>
            <option value="flow" disabled={!available('flow')}>
              A flow{available('flow') ? '' : ' (coming soon)'}
            </option>
          </SelectField>
          {form.destination_type === 'agent' && (
            <SelectField
              label="Agent"
              name="destination_id"
              value={form.destination_id}
              onChange={(e) => set('destination_id', e.target.value)}
              error={errors.destination_id}
              hint={agents.length === 0 ? 'No agents yet: add users with the agent role under Settings → Users & roles.' : 'Calls ring this agent’s registered devices.'}
            >
              <option value="">Choose an agent…</option>
              {agents.map((a) => (
                <option key={a.id} value={a.id}>
                  {agentName(a)}
                  {a.extension ? ` · ext. ${a.extension}` : ''}
                  {a.registration.state === 'green' ? ' · registered' : ' · not registered'}
                </option>
              ))}
            </SelectField>
          )}
          {form.destination_type === 'queue' && (
            <SelectField
              label="Queue"
              name="destination_id"
              value={form.destination_id}
              onChange={(e) => set('destination_id', e.target.value)}
              error={errors.destination_id}
              hint={lookups.queues.length === 0 ? 'No queues yet: add one under Settings → Queues.' : 'Callers wait in this queue for its members.'}
            >
              <option value="">Choose a queue…</option>
              {lookups.queues.map((q) => (
                <option key={q.id} value={q.id}>
                  {q.name}
                </option>
              ))}
            </SelectField>
          )}
          {form.destination_type === 'flow' && (
            <TextField label="Flow id" name="destination_id" className="input mono" value={form.destination_id} readOnly error={errors.destination_id} />
          )}
          <footer className="dialog-footer">
            <Button onClick={onClose} disabled={busy}>
              Cancel
            </Button>
            <Button type="submit" variant="primary" busy={busy}>
              {did ? 'Save changes' : 'Add number'}
            </Button>
          </footer>
          {did && (
            <section className="danger-zone" aria-label="Danger zone">
              <div>
                <p className="danger-title">Delete number</p>
                <p className="muted">Calls to it are refused at once.</p>
              </div>
              <Button size="sm" variant="danger" onClick={() => setConfirmDelete(true)}>
                Delete
              </Button>
            </section>
          )}
        </form>
      </Dialog>
      {did && (
        <ConfirmDialog
          open={confirmDelete}
          title="Delete this number?"
          confirmLabel="Delete number"
          busy={busy}
          error={deleteError}
          onConfirm={() => void runDelete()}
          onClose={() => {
            setConfirmDelete(false);
            setDeleteError(null);
          }}
        >
          <p>
            Calls to <strong className="mono">{did.number}</strong> will be refused. You can add it again later.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}
