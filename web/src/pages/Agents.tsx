import { useMemo, useState } from 'react';
import { Link, useParams } from 'react-router';
import { api } from '../api/client';
import { describeError } from '../api/problem';
import { useMe } from '../auth/session';
import { ConfirmDialog } from '../components/Dialog';
import { StatusSelector } from '../components/StatusSelector';
import { AgentStatusBadge, RegistrationIndicator } from '../components/telephony';
import { Badge, Button, CopyButton, EmptyState, ErrorState, PageHeader, Pager, Spinner } from '../components/ui';
import { accountView, agentName, credentialsText, registrationView, sortAgents, TRANSPORT_LABELS, type Agent, type SipCredentials } from '../lib/agents';
import { canTakeCalls, statusRank } from '../lib/agentStatus';
import { formatDateTime, formatRelative, ROLE_LABELS } from '../lib/format';
import { listAll } from '../lib/listAll';
import { trailFor } from '../lib/nav';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';
import { useNow } from '../lib/useNow';
import { agentInterest } from '../realtime/liveReload';
import { useLiveReload } from '../realtime/useLiveReload';

const PAGE_SIZE = 100;
/** Agent lists re-read on any agent's registration hint or status event. */
const ANY_AGENT = agentInterest();

/** Settings → Agents: extensions and registration, for admins. */
export function AgentsSettingsPage() {
  const pages = useCursorPages('agents');
  const list = useApi((signal) => api.get('/api/v1/agents', { query: { cursor: pages.cursor, limit: PAGE_SIZE }, signal }), pages.cursor ?? '');
  const queueNames = useQueueNames();
  useLiveReload(list.reload, ANY_AGENT);
  const now = useNow();

  return (
    <>
      <PageHeader
        title="Agents"
        trail={trailFor('/settings/agents')}
        description="Everyone who takes calls (agents and supervisors), with their SIP extension and whether a phone is registered with it. Add people under Settings → Users & roles."
      />
      <div className="panel">
        {list.error && !list.data ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading agents…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title="No agents yet" action={<Link className="btn btn-secondary" to="/settings/users">Go to Users & roles</Link>}>
            Add users with the agent or supervisor role; they appear here with their extension.
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <caption className="sr-only">Agents with their SIP extension and registration</caption>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">Extension</th>
                  <th scope="col">SIP registration</th>
                  <th scope="col">Status</th>
                  <th scope="col">Queues</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((a) => {
                  const account = accountView(a);
                  return (
                    <tr key={a.id} className={a.disabled ? 'row-muted' : undefined}>
                      <td data-label="Agent">
                        <AgentCell agent={a} />
                      </td>
                      <td data-label="Extension">
                        {a.extension ? <span className="mono cell-primary">{a.extension}</span> : <span className="muted">Not issued</span>}
                      </td>
                      <td data-label="SIP registration" data-testid="agent-registration">
                        <RegistrationIndicator registration={a.registration} now={now} />
                      </td>
                      <td data-label="Status">
                        {a.disabled ? <Badge tone={account.tone}>{account.label}</Badge> : <AgentStatusBadge status={a.status} reason={a.pause_reason} />}
                      </td>
                      <td data-label="Queues">
                        <QueueList ids={a.queue_ids} names={queueNames} />
                      </td>
                      <td className="cell-actions">
                        <Link className="btn btn-secondary btn-sm" to={a.id} aria-label={`Open ${agentName(a)}`}>
                          Open
                        </Link>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        <Pager
          label="Agent pages"
          page={pages.page}
          hasPrev={pages.page > 1}
          hasNext={Boolean(list.data?.next_cursor)}
          busy={list.loading}
          onPrev={pages.prev}
          onNext={() => list.data?.next_cursor && pages.next(list.data.next_cursor)}
        />
      </div>
    </>
  );
}

/** Queue id → name, for the queue columns (every tenant user may list queues). */
function useQueueNames(): Map<string, string> | undefined {
  const queues = useApi((signal) => listAll((cursor) => api.get('/api/v1/queues', { query: { cursor, limit: 200 }, signal })), 'queue-names');
  return queues.data ? new Map(queues.data.map((q) => [q.id, q.name])) : undefined;
}

function QueueList({ ids, names }: { ids: string[]; names?: Map<string, string> }) {
  if (ids.length === 0) return <span className="muted">None</span>;
  if (!names) return <span className="muted">…</span>;
  const list = ids.map((id) => names.get(id) ?? 'Unknown queue').sort();
  return (
    <span className="chip-list">
      {list.map((n, i) => (
        <span key={`${n}-${i}`} className="queue-chip">
          {n}
        </span>
      ))}
    </span>
  );
}

function AgentCell({ agent }: { agent: Agent }) {
  return (
    <div className="cell-user">
      <span className="avatar avatar-sm" aria-hidden="true">
        {agentName(agent).slice(0, 1).toUpperCase()}
      </span>
      <span>
        <span className="cell-primary">
          {agentName(agent)}
          {agent.role === 'supervisor' && <span className="muted"> · {ROLE_LABELS.supervisor}</span>}
        </span>
        <span className="cell-secondary">{agent.email}</span>
      </span>
    </div>
  );
}

/** Dashboard → Agents: who can take calls right now. Agents see themselves. */
export function AgentsDashboardPage() {
  const me = useMe();
  if (me.role === 'agent' && me.user) return <AgentDetail id={me.user.id} base="/dashboard/agents" self />;
  return <AgentsBoard />;
}

function AgentsBoard() {
  const list = useApi((signal) => api.get('/api/v1/agents', { query: { limit: 200 }, signal }), 'board');
  useLiveReload(list.reload, ANY_AGENT);
  const queueNames = useQueueNames();
  const now = useNow();
  const agents = list.data
    ? [...sortAgents(list.data.items)].sort((a, b) => Number(a.disabled) - Number(b.disabled) || statusRank(a.status) - statusRank(b.status))
    : [];
  const active = agents.filter((a) => !a.disabled);
  const registered = active.filter((a) => a.registration.state === 'green').length;
  const count = (s: string) => active.filter((a) => a.status === s).length;
  const ready = active.filter(canTakeCalls).length;

  return (
    <>
      <PageHeader
        title="Agents"
        trail={trailFor('/dashboard/agents')}
        description="Who can take calls right now: an agent is offered calls when Available with a registered phone (green). Updated live."
      />
      {list.error && !list.data ? (
        <ErrorState error={list.error} onRetry={list.reload} />
      ) : !list.data ? (
        <Spinner label="Loading agents…" />
      ) : agents.length === 0 ? (
        <div className="panel">
          <EmptyState title="No agents yet">Agents and supervisors appear here once an admin adds them.</EmptyState>
        </div>
      ) : (
        <>
          <div className="stat-row" role="group" aria-label="Summary">
            <Stat label="Ready for calls" value={ready} tone="success" />
            <Stat label="On call" value={count('on_call')} tone="accent" />
            <Stat label="On break" value={count('on_break')} tone="warning" />
            <Stat label="Logged out" value={count('logged_out')} />
            <Stat label="Phones registered" value={registered} detail={`of ${active.length}`} />
          </div>
          <ul className="agent-grid" aria-label="Agents">
            {agents.map((a) => {
              const reg = registrationView(a.registration, now);
              return (
                <li key={a.id} className={`agent-card${a.disabled ? ' agent-card-disabled' : ''}`}>
                  <div className="agent-card-head">
                    <span className={`avatar ${reg.green ? 'avatar-online' : 'avatar-offline'}`} aria-hidden="true">
                      {agentName(a).slice(0, 1).toUpperCase()}
                    </span>
                    <span className="agent-card-name">
                      <Link to={a.id} className="cell-primary agent-card-link">
                        {agentName(a)}
                      </Link>
                      <span className="cell-secondary">
                        {a.extension ? `Ext. ${a.extension}` : 'No extension yet'} · {ROLE_LABELS[a.role]}
                      </span>
                    </span>
                  </div>
                  <div className="agent-card-status">
                    {a.disabled ? <Badge tone="danger">Disabled</Badge> : <AgentStatusBadge status={a.status} reason={a.pause_reason} />}
                    <RegistrationIndicator registration={a.registration} now={now} />
                  </div>
                  {a.queue_ids.length > 0 && (
                    <div className="agent-card-queues">
                      <span className="sr-only">Queues: </span>
                      <QueueList ids={a.queue_ids} names={queueNames} />
                    </div>
                  )}
                </li>
              );
            })}
          </ul>
        </>
      )}
    </>
  );
}

function Stat({ label, value, tone, detail }: { label: string; value: number; tone?: 'success' | 'danger' | 'warning' | 'accent'; detail?: string }) {
  return (
    <div className={`stat${tone ? ` stat-${tone}` : ''}`}>
      <span className="stat-value">
        {value}
        {detail && <span className="stat-detail"> {detail}</span>}
      </span>
      <span className="stat-label">{label}</span>
    </div>
  );
}

/** /settings/agents/:id and /dashboard/agents/:id */
export function AgentDetailPage({ base }: { base: string }) {
  const { id = '' } = useParams();
  const me = useMe();
  return <AgentDetail id={id} base={base} self={me.user?.id === id} />;
}

function AgentDetail({ id, base, self = false }: { id: string; base: string; self?: boolean }) {
  const me = useMe();
  const agent = useApi((signal) => api.get('/api/v1/agents/{id}', { path: { id }, signal }), id);
  const queueNames = useQueueNames();
  useLiveReload(agent.reload, useMemo(() => agentInterest(id), [id]));
  const now = useNow();
  const [flash, setFlash] = useState<string | null>(null);
  const canSeeCredentials = self || me.role === 'admin';
  const backLabel = base === '/settings/agents' ? '← All agents' : '← Agents dashboard';
  const showBack = !(self && me.role === 'agent');
  const trail = self && me.role === 'agent' ? trailFor('/dashboard/agents') : [...trailFor(base), 'Agent'];

  if (agent.error && !agent.data) {
    return (
      <>
        <PageHeader title="Agent" trail={trail} />
        <ErrorState error={agent.error} onRetry={agent.reload} />
        {showBack && (
          <p className="back-link">
            <Link to={base}>{backLabel}</Link>
          </p>
        )}
      </>
    );
  }
  if (!agent.data) return <Spinner label="Loading the agent…" />;
  const a = agent.data;
  const reg = registrationView(a.registration, now);
  const account = accountView(a);

  return (
    <>
      {showBack && (
        <p className="back-link">
          <Link to={base}>{backLabel}</Link>
        </p>
      )}
      <PageHeader
        title={self && me.role === 'agent' ? 'My status' : agentName(a)}
        trail={trail}
        description={
          self && me.role === 'agent'
            ? 'Your availability for calls, your SIP registration, and the credentials for a desk phone or another SIP app.'
            : `${a.email} · ${ROLE_LABELS[a.role] ?? a.role}`
        }
      />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      <section className="panel availability" aria-labelledby="agent-availability">
        <div className="availability-now">
          <h2 id="agent-availability" className="section-title">
            Availability
          </h2>
          <div className="availability-badge" data-testid="agent-status">
            {a.disabled ? <Badge tone="danger">Disabled</Badge> : <AgentStatusBadge status={a.status} reason={a.pause_reason} />}
          </div>
          <p className="muted small">
            {a.disabled
              ? 'This account is disabled: it takes no calls.'
              : canTakeCalls(a)
                ? 'Queues offer calls to this agent.'
                : a.status === 'available'
                  ? 'Available, but no phone is registered: calls cannot reach this agent.'
                  : 'Queues do not offer calls to this agent now.'}
          </p>
        </div>
        {!a.disabled && (
          <StatusSelector
            key={`${a.status}|${a.pause_reason ?? ''}`}
            agentId={a.id}
            status={a.status}
            reason={a.pause_reason}
            self={self}
            onChanged={(message) => {
              setFlash(message);
              agent.reload();
            }}
          />
        )}
      </section>
      <div className="grid-2">
        <section className="panel" aria-labelledby="agent-registration">
          <h2 id="agent-registration" className="section-title">
            SIP registration
          </h2>
          <div className={`reg-hero ${reg.green ? 'reg-hero-green' : 'reg-hero-red'}`} data-testid="registration-state">
            <span className="reg-hero-dot" aria-hidden="true" />
            <div>
              <p className="reg-hero-label">{reg.label}</p>
              <p className="muted">{reg.green ? 'Calls can reach this extension.' : 'No device is registered: calls cannot reach this extension.'}</p>
            </div>
          </div>
          <dl className="details-grid">
            <dt>Devices</dt>
            <dd>{a.registration.bindings}</dd>
            <dt>Transport</dt>
            <dd>{a.registration.transport ? (TRANSPORT_LABELS[a.registration.transport] ?? a.registration.transport) : '—'}</dd>
            <dt>User agent</dt>
            <dd className="mono">{a.registration.user_agent || '—'}</dd>
            <dt>Expires</dt>
            <dd>
              {a.registration.expires_at ? (
                <time dateTime={a.registration.expires_at} title={formatDateTime(a.registration.expires_at, { seconds: true })}>
                  {formatRelative(a.registration.expires_at, now)} unless refreshed
                </time>
              ) : (
                '—'
              )}
            </dd>
          </dl>
        </section>
        <section className="panel" aria-labelledby="agent-account">
          <h2 id="agent-account" className="section-title">
            Extension and account
          </h2>
          <dl className="details-grid">
            <dt>Name</dt>
            <dd>{agentName(a)}</dd>
            <dt>Email</dt>
            <dd>{a.email}</dd>
            <dt>Role</dt>
            <dd>{ROLE_LABELS[a.role] ?? a.role}</dd>
            <dt>Extension</dt>
            <dd>{a.extension ? <span className="mono">{a.extension}</span> : <span className="muted">Not issued yet</span>}</dd>
            <dt>SIP domain</dt>
            <dd className="mono">{a.sip_domain}</dd>
            <dt>Queues</dt>
            <dd>
              <QueueList ids={a.queue_ids} names={queueNames} />
            </dd>
            <dt>Account</dt>
            <dd>
              <Badge tone={account.tone}>{account.label}</Badge>
            </dd>
          </dl>
          {me.role === 'admin' && (
            <p className="muted small">
              <Link to={`/audit?resource=user:${a.id}`}>Audit history</Link> · Name, role and sign-in are managed under{' '}
              <Link to="/settings/users">Users & roles</Link>.
            </p>
          )}
        </section>
      </div>
      {canSeeCredentials && <SipCredentialsPanel agent={a} self={self} onIssued={agent.reload} />}
    </>
  );
}

function SipCredentialsPanel({ agent, self, onIssued }: { agent: Agent; self: boolean; onIssued: () => void }) {
  const [creds, setCreds] = useState<SipCredentials | null>(null);
  const [revealed, setRevealed] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [confirmRotate, setConfirmRotate] = useState(false);
  const [rotateError, setRotateError] = useState<string | null>(null);
  const [flash, setFlash] = useState<string | null>(null);

  const load = async () => {
    setBusy(true);
    setError(null);
    try {
      const c = await api.get('/api/v1/agents/{id}/sip-credentials', { path: { id: agent.id } });
      setCreds(c);
      setRevealed(true);
      if (!agent.extension) {
        setFlash(`Extension ${c.extension} was issued.`);
        onIssued();
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const rotate = async () => {
    setBusy(true);
    setRotateError(null);
    try {
      const c = await api.post('/api/v1/agents/{id}/sip-credentials/rotate', { path: { id: agent.id } });
      setCreds(c);
      setRevealed(true);
      setConfirmRotate(false);
      setFlash('A new SIP password was issued. Phones using the old one stop working at their next registration refresh.');
    } catch (err) {
      setRotateError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const uri = creds?.uri ?? (agent.extension ? `sip:${agent.extension}@${agent.sip_domain}` : null);

  return (
    <section className="panel" aria-labelledby="sip-credentials">
      <div className="section-head">
        <div>
          <h2 id="sip-credentials" className="section-title">
            SIP credentials
          </h2>
          <p className="muted">
            {self
              ? 'The SIVO softphone signs in with these by itself. Use them to set up a desk phone or another SIP app.'
              : 'What this agent’s desk phone or SIP app is configured with. Only the agent and admins can see the password.'}
          </p>
        </div>
        {agent.extension && (
          <Button size="sm" onClick={() => setConfirmRotate(true)} disabled={busy}>
            Rotate password
          </Button>
        )}
      </div>
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      {error ? <ErrorState error={error} onRetry={() => void load()} /> : null}
      {!agent.extension && !creds ? (
        <div className="panel-message">
          <p>No extension yet. It is issued with a password the first time the credentials are requested{self ? ' (the softphone does it when you open it)' : ''}.</p>
          <Button variant="primary" busy={busy} onClick={() => void load()}>
            {self ? 'Get my SIP credentials' : 'Issue SIP credentials'}
          </Button>
        </div>
      ) : (
        <>
          <dl className="details-grid credentials" data-testid="sip-credentials">
            <dt>SIP URI</dt>
            <dd className="mono">{uri}</dd>
            <dt>User name</dt>
            <dd className="mono">{creds?.username ?? agent.extension}</dd>
            <dt>Domain and realm</dt>
            <dd className="mono">{creds?.domain ?? agent.sip_domain}</dd>
            <dt>Password</dt>
            <dd>
              {creds && revealed ? (
                <span className="secret-inline">
                  <code data-testid="sip-password">{creds.password}</code>
                  <Button size="sm" onClick={() => setRevealed(false)}>
                    Hide
                  </Button>
                </span>
              ) : (
                <span className="secret-inline">
                  <span className="mono muted" aria-label="Hidden">
                    ••••••••••••
                  </span>
                  <Button size="sm" busy={busy} onClick={() => (creds ? setRevealed(true) : void load())}>
                    Show password
                  </Button>
                </span>
              )}
            </dd>
            {creds?.wss_url && (
              <>
                <dt>WebSocket (WSS)</dt>
                <dd className="mono">{creds.wss_url}</dd>
              </>
            )}
          </dl>
          {creds && revealed && (
            <div className="button-row">
              <CopyButton text={credentialsText(creds)} label="Copy all" size="sm" />
            </div>
          )}
        </>
      )}
      <ConfirmDialog
        open={confirmRotate}
        title="Rotate the SIP password?"
        confirmLabel="Rotate password"
        tone="primary"
        busy={busy}
        error={rotateError}
        onConfirm={() => void rotate()}
        onClose={() => {
          setConfirmRotate(false);
          setRotateError(null);
        }}
      >
        <p>
          A new password is issued for extension <strong className="mono">{agent.extension}</strong>. Phones configured with the old one stop
          registering at their next refresh{self ? '; the SIVO softphone picks up the new one by itself' : ''}.
        </p>
      </ConfirmDialog>
    </section>
  );
}
