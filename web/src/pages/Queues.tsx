import { useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { ConfirmDialog, Dialog } from '../components/Dialog';
import { AgentStatusBadge, RegistrationIndicator } from '../components/telephony';
import {
  Badge,
  Button,
  CheckboxField,
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
import { canTakeCalls } from '../lib/agentStatus';
import { formatDateTime, formatRelative } from '../lib/format';
import { listAll } from '../lib/listAll';
import { trailFor } from '../lib/nav';
import {
  MAX_WAIT,
  OVERFLOW_LABELS,
  RING_TIMEOUT,
  describeOverflow,
  emptyQueueForm,
  formatSeconds,
  queueBody,
  queuePatch,
  queueToForm,
  validateQueue,
  type OverflowType,
  type Queue,
  type QueueForm,
} from '../lib/queues';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { agentInterest } from '../realtime/liveReload';
import { useLiveReload } from '../realtime/useLiveReload';

const PAGE_SIZE = 50;

interface Lookups {
  queues: Queue[];
  agents: Agent[];
}

/** Queue pages re-read agents on any agent's registration hint or status event. */
const ANY_AGENT = agentInterest();

function useLookups() {
  return useApi<Lookups>(async (signal) => {
    const [queues, agents] = await Promise.all([
      listAll((cursor) => api.get('/api/v1/queues', { query: { cursor, limit: 200 }, signal })),
      listAll((cursor) => api.get('/api/v1/agents', { query: { cursor, limit: 200 }, signal })),
    ]);
    return { queues, agents };
  }, 'queue-lookups');
}

function namesFrom(l: Lookups | undefined) {
  const names = new Map<string, string>();
  for (const q of l?.queues ?? []) names.set(q.id, q.name);
  for (const a of l?.agents ?? []) names.set(a.id, agentName(a));
  return (id: string) => names.get(id);
}

export function QueuesPage() {
  const pages = useCursorPages('queues');
  const list = useApi((signal) => api.get('/api/v1/queues', { query: { cursor: pages.cursor, limit: PAGE_SIZE }, signal }), pages.cursor ?? '');
  const lookups = useLookups();
  const [dialog, setDialog] = useState<{ mode: 'create' } | { mode: 'edit'; queue: Queue } | null>(null);
  // "Ready" counts follow agents' status and registration live, except under an open dialog.
  useLiveReload(lookups.reload, ANY_AGENT, { paused: dialog !== null });
  const [flash, setFlash] = useState<string | null>(null);
  const names = namesFrom(lookups.data);
  // Members come with the agents (queue_ids), so one list answers "who is in each queue".
  const membersOf = (id: string) => lookups.data?.agents.filter((a) => a.queue_ids.includes(id)) ?? [];

  const done = (message: string) => {
    setFlash(message);
    setDialog(null);
    list.reload();
    lookups.reload();
  };

  return (
    <>
      <PageHeader
        title="Queues"
        trail={trailFor('/settings/queues')}
        description="Callers wait in a queue until a member who is Available with a registered phone answers. The longest-idle member rings first."
        actions={
          <Button variant="primary" onClick={() => setDialog({ mode: 'create' })} disabled={!lookups.data}>
            <svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" strokeWidth="2.2" aria-hidden="true">
              <path d="M12 5v14M5 12h14" />
            </svg>
            Add queue
          </Button>
        }
      />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      {lookups.error ? <ErrorState error={lookups.error} onRetry={lookups.reload} /> : null}
      <div className="panel">
        {list.error ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading queues…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title="No queues yet" action={<Button onClick={() => setDialog({ mode: 'create' })}>Add queue</Button>}>
            Create a queue such as Support or Sales, add its agents, then point a number at it under Settings → Numbers.
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <caption className="sr-only">Queues</caption>
              <thead>
                <tr>
                  <th scope="col">Queue</th>
                  <th scope="col">Members</th>
                  <th scope="col">Ring timeout</th>
                  <th scope="col">Max wait and overflow</th>
                  <th scope="col">Recording</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((q) => {
                  const members = membersOf(q.id);
                  const ready = members.filter(canTakeCalls).length;
                  return (
                    <tr key={q.id}>
                      <td data-label="Queue">
                        <Link to={q.id} className="cell-primary">
                          {q.name}
                        </Link>
                        <span className="cell-secondary">Updated {formatRelative(q.updated_at)}</span>
                      </td>
                      <td data-label="Members">
                        {!lookups.data ? (
                          '…'
                        ) : members.length === 0 ? (
                          <span className="muted">No members</span>
                        ) : (
                          <span>
                            <span className="cell-primary">{members.length === 1 ? '1 member' : `${members.length} members`}</span>
                            <span className="cell-secondary">{ready} ready to take calls</span>
                          </span>
                        )}
                      </td>
                      <td data-label="Ring timeout">{formatSeconds(q.ring_timeout_secs)} per agent</td>
                      <td data-label="Max wait and overflow">{describeOverflow(q, names)}</td>
                      <td data-label="Recording">{q.record_calls ? <Badge tone="accent">Recorded</Badge> : <span className="muted">Off</span>}</td>
                      <td className="cell-actions">
                        <div className="button-row button-row-tight">
                          <Link className="btn btn-secondary btn-sm" to={q.id} aria-label={`Members of ${q.name}`}>
                            Members
                          </Link>
                          <Button size="sm" onClick={() => setDialog({ mode: 'edit', queue: q })} aria-label={`Edit ${q.name}`} disabled={!lookups.data}>
                            Edit
                          </Button>
                        </div>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        <Pager
          label="Queue pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </div>
      {dialog && lookups.data && (
        <QueueDialog queue={dialog.mode === 'edit' ? dialog.queue : undefined} lookups={lookups.data} onClose={() => setDialog(null)} onDone={done} />
      )}
    </>
  );
}

const FIELDS = ['name', 'ring_timeout_secs', 'max_wait_secs', 'overflow_type', 'overflow_id', 'record_calls', 'music_on_hold'];

export function QueueDialog({
  queue,
  lookups,
  onClose,
  onDone,
  onDeleted,
}: {
  queue?: Queue;
  lookups: Lookups;
  onClose: () => void;
  onDone: (message: string) => void;
  onDeleted?: (message: string) => void;
}) {
  const [form, setForm] = useState<QueueForm>(() => (queue ? queueToForm(queue) : emptyQueueForm()));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const formRef = useRef<HTMLFormElement>(null);

  const set = <K extends keyof QueueForm>(k: K, v: QueueForm[K]) => {
    setForm((f) => ({ ...f, [k]: v }));
    setErrors((e) => (k in e ? Object.fromEntries(Object.entries(e).filter(([f]) => f !== k)) : e));
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validateQueue(form, queue);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    setBusy(true);
    try {
      if (queue) {
        const patch = queuePatch(form, queue);
        if (Object.keys(patch).length === 0) return onClose();
        const saved = await api.patch('/api/v1/queues/{id}', { path: { id: queue.id }, body: patch });
        onDone(`${saved.name} was updated. Calls already waiting keep their place.`);
      } else {
        const saved = await api.post('/api/v1/queues', { body: queueBody(form) });
        onDone(`${saved.name} was added. Add its members next.`);
      }
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        setErrors(err.fieldErrors);
        focusFirstError(formRef.current, err.fieldErrors);
        if (!Object.keys(err.fieldErrors).some((k) => FIELDS.includes(k))) setFormError(err);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  const runDelete = async () => {
    if (!queue) return;
    setBusy(true);
    setDeleteError(null);
    try {
      await api.delete('/api/v1/queues/{id}', { path: { id: queue.id } });
      setConfirmDelete(false);
      (onDeleted ?? onDone)(`${queue.name} was deleted.`);
    } catch (err) {
      setDeleteError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const title = queue ? `Edit ${queue.name}` : 'Add queue';
  const otherQueues = lookups.queues.filter((q) => q.id !== queue?.id);
  const agents = lookups.agents.filter((a) => !a.disabled || a.id === form.overflow_id);
  const wait = Number(form.max_wait_secs);

  return (
    <>
      <Dialog open size="wide" title={title} onClose={onClose}>
        <form ref={formRef} onSubmit={submit} noValidate className="form" aria-label={title}>
          <FormError error={formError} />
          <TextField label="Name" name="name" value={form.name} onChange={(e) => set('name', e.target.value)} error={errors.name} placeholder="Support" autoComplete="off" />
          <div className="grid-2 form-grid">
            <TextField
              label="Ring timeout (seconds)"
              name="ring_timeout_secs"
              inputMode="numeric"
              value={form.ring_timeout_secs}
              onChange={(e) => set('ring_timeout_secs', e.target.value)}
              error={errors.ring_timeout_secs}
              hint={`How long one agent rings before the next is tried: ${RING_TIMEOUT.min} to ${RING_TIMEOUT.max}.`}
            />
            <TextField
              label="Max wait (seconds)"
              name="max_wait_secs"
              inputMode="numeric"
              value={form.max_wait_secs}
              onChange={(e) => set('max_wait_secs', e.target.value)}
              error={errors.max_wait_secs}
              hint={
                Number.isInteger(wait) && wait >= MAX_WAIT.min && wait <= MAX_WAIT.max
                  ? `${formatSeconds(wait)}: then the overflow below applies.`
                  : `${MAX_WAIT.min} seconds to 24 hours; then the overflow below applies.`
              }
            />
          </div>
          <div className="grid-2 form-grid">
            <SelectField
              label="Overflow"
              name="overflow_type"
              value={form.overflow_type}
              onChange={(e) => {
                set('overflow_type', e.target.value as OverflowType);
                setForm((f) => ({ ...f, overflow_id: '' }));
              }}
              error={errors.overflow_type}
              hint="What happens to a caller who has waited the maximum."
            >
              {(Object.keys(OVERFLOW_LABELS) as OverflowType[]).map((t) => (
                <option key={t} value={t}>
                  {OVERFLOW_LABELS[t]}
                </option>
              ))}
            </SelectField>
            {form.overflow_type === 'queue' && (
              <SelectField label="Overflow queue" name="overflow_id" value={form.overflow_id} onChange={(e) => set('overflow_id', e.target.value)} error={errors.overflow_id}>
                <option value="">{otherQueues.length ? 'Choose a queue…' : 'No other queues yet'}</option>
                {otherQueues.map((q) => (
                  <option key={q.id} value={q.id}>
                    {q.name}
                  </option>
                ))}
              </SelectField>
            )}
            {form.overflow_type === 'agent' && (
              <SelectField label="Overflow agent" name="overflow_id" value={form.overflow_id} onChange={(e) => set('overflow_id', e.target.value)} error={errors.overflow_id}>
                <option value="">Choose an agent…</option>
                {agents.map((a) => (
                  <option key={a.id} value={a.id}>
                    {agentName(a)}
                    {a.extension ? ` · ext. ${a.extension}` : ''}
                  </option>
                ))}
              </SelectField>
            )}
          </div>
          <CheckboxField
            label="Record calls"
            name="record_calls"
            checked={form.record_calls}
            onChange={(e) => set('record_calls', e.target.checked)}
            error={errors.record_calls}
            hint="Answered calls of this queue are recorded (stereo WAV); the recording is linked from the CDR."
          />
          <TextField
            label="Music on hold"
            name="music_on_hold"
            optional
            className="input mono"
            value={form.music_on_hold}
            onChange={(e) => set('music_on_hold', e.target.value)}
            error={errors.music_on_hold}
            placeholder="/var/lib/sivo/moh/support.wav"
            hint="Absolute path of an 8 kHz mono .wav file on the server. Empty: a generated tone."
          />
          <footer className="dialog-footer">
            <Button onClick={onClose} disabled={busy}>
              Cancel
            </Button>
            <Button type="submit" variant="primary" busy={busy}>
              {queue ? 'Save changes' : 'Add queue'}
            </Button>
          </footer>
          {queue && (
            <section className="danger-zone" aria-label="Danger zone">
              <div>
                <p className="danger-title">Delete queue</p>
                <p className="muted">Refused while a number routes to it or another queue overflows to it. Its CDRs are kept.</p>
              </div>
              <Button size="sm" variant="danger" onClick={() => setConfirmDelete(true)}>
                Delete
              </Button>
            </section>
          )}
        </form>
      </Dialog>
      {queue && (
        <ConfirmDialog
          open={confirmDelete}
          title="Delete this queue?"
          confirmLabel="Delete queue"
          busy={busy}
          error={deleteError}
          onConfirm={() => void runDelete()}
          onClose={() => {
            setConfirmDelete(false);
            setDeleteError(null);
          }}
        >
          <p>
            <strong>{queue.name}</strong> and its member list will be removed. Calls waiting in it now are not affected.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

/** /settings/queues/:id — settings at a glance and the members. */
export function QueueDetailPage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const queue = useApi((signal) => api.get('/api/v1/queues/{id}', { path: { id }, signal }), id);
  const members = useApi(
    (signal) => listAll((cursor) => api.get('/api/v1/queues/{id}/members', { path: { id }, query: { cursor, limit: 200 }, signal })),
    `members-${id}`,
  );
  const lookups = useLookups();
  const [editing, setEditing] = useState(false);
  // Members' status and registration follow the realtime channel; the agents behind the edit
  // dialog's choices wait for it to close.
  useLiveReload(members.reload, ANY_AGENT);
  useLiveReload(lookups.reload, ANY_AGENT, { paused: editing });
  const [flash, setFlash] = useState<string | null>(null);
  const [adding, setAdding] = useState('');
  const [addError, setAddError] = useState<string | undefined>();
  const [busy, setBusy] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const names = namesFrom(lookups.data);
  const agentById = new Map(lookups.data?.agents.map((a) => [a.id, a]));

  if (queue.error && !queue.data) {
    return (
      <>
        <PageHeader title="Queue" trail={[...trailFor('/settings/queues'), 'Queue']} />
        <ErrorState error={queue.error} onRetry={queue.reload} />
        <p className="back-link">
          <Link to="/settings/queues">← All queues</Link>
        </p>
      </>
    );
  }
  if (!queue.data) return <Spinner label="Loading the queue…" />;
  const q = queue.data;
  const memberIds = new Set(members.data?.map((m) => m.user_id));
  const candidates = (lookups.data?.agents ?? []).filter((a) => !memberIds.has(a.id) && !a.disabled).sort((a, b) => agentName(a).localeCompare(agentName(b)));

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setActionError(null);
    if (!adding) {
      setAddError('Choose an agent to add.');
      document.getElementById('add-member-select')?.focus();
      return;
    }
    setAddError(undefined);
    setBusy('add');
    try {
      const m = await api.post('/api/v1/queues/{id}/members', { path: { id }, body: { user_id: adding } });
      setFlash(`${m.display_name || m.email} now takes calls from ${q.name}.`);
      setAdding('');
      members.reload();
      lookups.reload();
    } catch (err) {
      if (err instanceof ApiError && err.fieldErrors.user_id) setAddError(err.fieldErrors.user_id);
      else setActionError(err);
    } finally {
      setBusy(null);
    }
  };

  const remove = async (userId: string, name: string) => {
    setActionError(null);
    setBusy(userId);
    try {
      await api.delete('/api/v1/queues/{id}/members/{user_id}', { path: { id, user_id: userId } });
      setFlash(`${name} was removed from ${q.name}.`);
      members.reload();
      lookups.reload();
      // Keyboard users keep their place: focus moves to the add form.
      document.getElementById('add-member-select')?.focus();
    } catch (err) {
      setActionError(err);
    } finally {
      setBusy(null);
    }
  };

  return (
    <>
      <p className="back-link">
        <Link to="/settings/queues">← All queues</Link>
      </p>
      <PageHeader
        title={q.name}
        trail={[...trailFor('/settings/queues'), 'Queue']}
        description={`${formatSeconds(q.ring_timeout_secs)} per agent · ${describeOverflow(q, names)}${q.record_calls ? ' · Calls recorded' : ''}`}
        actions={
          <Button onClick={() => setEditing(true)} disabled={!lookups.data}>
            Edit queue
          </Button>
        }
      />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      <section className="panel" aria-labelledby="members-title">
        <div className="section-head">
          <div>
            <h2 id="members-title" className="section-title">
              Members
            </h2>
            <p className="muted">Agents who take this queue’s calls. A member is offered calls when Available with a registered phone.</p>
          </div>
          <form className="add-member" onSubmit={add} noValidate aria-label="Add a member">
            <SelectField
              id="add-member-select"
              label="Add an agent"
              name="user_id"
              value={adding}
              onChange={(e) => {
                setAdding(e.target.value);
                setAddError(undefined);
              }}
              error={addError}
              disabled={!lookups.data}
            >
              <option value="">{candidates.length ? 'Choose an agent…' : 'Everyone is already a member'}</option>
              {candidates.map((a) => (
                <option key={a.id} value={a.id}>
                  {agentName(a)}
                  {a.extension ? ` · ext. ${a.extension}` : ''}
                </option>
              ))}
            </SelectField>
            <Button type="submit" variant="primary" busy={busy === 'add'}>
              Add member
            </Button>
          </form>
        </div>
        {actionError ? <FormError error={actionError} /> : null}
        {members.error && !members.data ? (
          <ErrorState error={members.error} onRetry={members.reload} />
        ) : !members.data ? (
          <Spinner label="Loading members…" />
        ) : members.data.length === 0 ? (
          <EmptyState title="No members yet">Calls wait here until someone takes them: add the agents who answer {q.name}.</EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <caption className="sr-only">Members of {q.name}</caption>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">Extension</th>
                  <th scope="col">Status</th>
                  <th scope="col">SIP registration</th>
                  <th scope="col">Member since</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {members.data.map((m) => {
                  const agent = agentById.get(m.user_id);
                  const name = m.display_name || m.email;
                  return (
                    <tr key={m.user_id}>
                      <td data-label="Agent">
                        <span className="cell-primary">{name}</span>
                        <span className="cell-secondary">{m.email}</span>
                      </td>
                      <td data-label="Extension">{m.extension ? <span className="mono">{m.extension}</span> : <span className="muted">Not issued</span>}</td>
                      <td data-label="Status">
                        <AgentStatusBadge status={m.status} reason={agent?.pause_reason} />
                      </td>
                      <td data-label="SIP registration">{agent ? <RegistrationIndicator registration={agent.registration} detail={false} /> : '…'}</td>
                      <td data-label="Member since">
                        <time dateTime={m.added_at} title={formatDateTime(m.added_at)}>
                          {formatRelative(m.added_at)}
                        </time>
                      </td>
                      <td className="cell-actions">
                        <Button size="sm" busy={busy === m.user_id} onClick={() => void remove(m.user_id, name)} aria-label={`Remove ${name} from ${q.name}`}>
                          Remove
                        </Button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {editing && lookups.data && (
        <QueueDialog
          queue={q}
          lookups={lookups.data}
          onClose={() => setEditing(false)}
          onDone={(message) => {
            setEditing(false);
            setFlash(message);
            queue.reload();
            lookups.reload();
          }}
          onDeleted={() => navigate('/settings/queues')}
        />
      )}
    </>
  );
}
