import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { api } from '../api/client';
import { Badge, CopyButton, EmptyState, ErrorState, PageHeader, Pager, SelectField, Spinner, TextField, Button, focusFirstError } from '../components/ui';
import { agentName, type Agent } from '../lib/agents';
import {
  HANGUP_SIDE_LABELS,
  cdrQuery,
  formatDuration,
  formatValue,
  humanize,
  keyLabel,
  legView,
  outcome,
  readCdrFilters,
  recordingView,
  timelineView,
  validateCdrFilters,
  type Cdr,
  type CdrFilters,
} from '../lib/cdr';
import { formatDateTime, localInputToRfc3339, rfc3339ToLocalInput } from '../lib/format';
import { listAll } from '../lib/listAll';
import { trailFor } from '../lib/nav';
import type { Queue } from '../lib/queues';
import { useApi } from '../lib/useApi';
import { useCursorPages } from '../lib/useCursorPages';

const PAGE_SIZE = 50;

interface Lookups {
  agents: Agent[];
  queues: Queue[];
}

function useLookups() {
  return useApi<Lookups>(async (signal) => {
    const [agents, queues] = await Promise.all([
      listAll((cursor) => api.get('/api/v1/agents', { query: { cursor, limit: 200 }, signal })),
      listAll((cursor) => api.get('/api/v1/queues', { query: { cursor, limit: 200 }, signal })),
    ]);
    return { agents, queues };
  }, 'cdr-lookups');
}

export function CdrsPage() {
  const [params, setParams] = useSearchParams();
  const applied = readCdrFilters(params);
  const key = JSON.stringify(applied);
  const pages = useCursorPages(key);
  const list = useApi(
    (signal) => api.get('/api/v1/cdrs', { query: { ...cdrQuery(applied), cursor: pages.cursor, limit: PAGE_SIZE }, signal }),
    `${key}|${pages.cursor}`,
  );
  const lookups = useLookups();
  const [draft, setDraft] = useState<CdrFilters>(() => ({ ...applied, from: rfc3339ToLocalInput(applied.from), to: rfc3339ToLocalInput(applied.to) }));
  const [errors, setErrors] = useState<Record<string, string>>({});

  // Back/forward between filter sets: the form follows the address.
  useEffect(() => {
    const f = JSON.parse(key) as CdrFilters;
    setDraft({ ...f, from: rfc3339ToLocalInput(f.from), to: rfc3339ToLocalInput(f.to) });
  }, [key]);

  const agentById = new Map(lookups.data?.agents.map((a) => [a.id, a]));
  const queueById = new Map(lookups.data?.queues.map((q) => [q.id, q]));
  const filtered = Object.values(applied).some(Boolean);

  const apply = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const filters: CdrFilters = {
      ...draft,
      from: localInputToRfc3339(draft.from) ?? '',
      to: localInputToRfc3339(draft.to) ?? '',
      number: draft.number.trim(),
      did: draft.did.trim(),
      hangup_cause: draft.hangup_cause.trim(),
    };
    const fieldErrors = validateCdrFilters(filters);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(e.currentTarget, fieldErrors);
    const next = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) next.set(k, v);
    setParams(next);
  };

  const set = (k: keyof CdrFilters) => (e: { target: { value: string } }) => setDraft((d) => ({ ...d, [k]: e.target.value }));

  return (
    <>
      <PageHeader
        title="CDRs"
        trail={['Reports', 'CDRs']}
        description="Every ended call with its queue, agent and durations. Open a call for its detail and the Technical tab: SIP timeline, codecs and RTP statistics per leg, and the recording."
      />
      <form className="panel filters filters-cdr" onSubmit={apply} noValidate aria-label="Filter calls">
        <TextField label="From" name="from" type="datetime-local" value={draft.from} onChange={set('from')} error={errors.from} />
        <TextField label="To" name="to" type="datetime-local" value={draft.to} onChange={set('to')} error={errors.to} />
        <SelectField label="Direction" name="direction" value={draft.direction} onChange={set('direction')}>
          <option value="">Both directions</option>
          <option value="inbound">Inbound</option>
          <option value="outbound">Outbound</option>
        </SelectField>
        <TextField label="Number" name="number" inputMode="tel" value={draft.number} onChange={set('number')} error={errors.number} hint="Part of the caller’s or dialled number." />
        <SelectField label="Queue" name="queue_id" value={draft.queue_id} onChange={set('queue_id')} disabled={!lookups.data}>
          <option value="">Any queue</option>
          {lookups.data?.queues.map((q) => (
            <option key={q.id} value={q.id}>
              {q.name}
            </option>
          ))}
        </SelectField>
        <SelectField label="Agent" name="agent_id" value={draft.agent_id} onChange={set('agent_id')} disabled={!lookups.data}>
          <option value="">Any agent</option>
          {lookups.data?.agents.map((a) => (
            <option key={a.id} value={a.id}>
              {agentName(a)}
            </option>
          ))}
        </SelectField>
        <TextField label="DID" name="did" inputMode="tel" value={draft.did} onChange={set('did')} error={errors.did} placeholder="+49301234567" />
        <TextField label="Hangup cause" name="hangup_cause" value={draft.hangup_cause} onChange={set('hangup_cause')} error={errors.hangup_cause} placeholder="normal_clearing" />
        <div className="filters-actions">
          <Button type="submit" variant="primary">
            Apply filters
          </Button>
          {filtered && (
            <Button
              onClick={() => {
                setErrors({});
                setParams(new URLSearchParams());
              }}
            >
              Clear
            </Button>
          )}
        </div>
      </form>
      <div className="panel">
        {list.error ? (
          <ErrorState error={list.error} onRetry={list.reload} />
        ) : !list.data ? (
          <Spinner label="Loading calls…" />
        ) : list.data.items.length === 0 ? (
          <EmptyState title={filtered ? 'No calls match these filters' : 'No calls yet'}>
            {filtered ? 'Widen the time range or clear a filter.' : 'Ended calls appear here with their detail as soon as they hang up.'}
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table table-cdrs">
              <caption className="sr-only">Call detail records, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Started</th>
                  <th scope="col">Call</th>
                  <th scope="col">Queue and agent</th>
                  <th scope="col">Wait</th>
                  <th scope="col">Talk</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((c) => {
                  const o = outcome(c);
                  const agent = c.agent_id ? agentById.get(c.agent_id) : undefined;
                  const queue = c.queue_id ? queueById.get(c.queue_id) : undefined;
                  return (
                    <tr key={c.id}>
                      <td data-label="Started">
                        <time dateTime={c.created_at}>{formatDateTime(c.created_at, { seconds: true })}</time>
                      </td>
                      <td data-label="Call">
                        <span className="cell-primary mono">
                          <DirectionIcon direction={c.direction} /> {c.from} → {c.to}
                        </span>
                        {c.did && c.did !== c.to && <span className="cell-secondary">via {c.did}</span>}
                      </td>
                      <td data-label="Queue and agent">
                        <span className="cell-primary">{queue?.name ?? (c.queue_id ? 'Deleted queue' : '—')}</span>
                        <span className="cell-secondary">{agent ? agentName(agent) : c.agent_id ? 'Former agent' : 'No agent'}</span>
                      </td>
                      <td data-label="Wait" className="num">
                        {c.queued_at ? formatDuration(c.wait_ms) : '—'}
                      </td>
                      <td data-label="Talk" className="num">
                        {c.answered_at ? formatDuration(c.talk_ms) : '—'}
                      </td>
                      <td data-label="Outcome">
                        <Badge tone={o.tone}>{o.label}</Badge>
                        {c.recording ? (
                          <span className="rec-mark" title="Recorded">
                            <span aria-hidden="true">●</span>
                            <span className="sr-only">Recorded</span>
                          </span>
                        ) : null}
                        {c.hangup_side && <span className="cell-secondary">{HANGUP_SIDE_LABELS[c.hangup_side] ?? c.hangup_side}</span>}
                      </td>
                      <td className="cell-actions">
                        <Link className="btn btn-secondary btn-sm" to={c.id} aria-label={`Details of the call from ${c.from} at ${formatDateTime(c.created_at, { seconds: true })}`}>
                          Details
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
          label="CDR pages"
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

/** Saves a value as a pretty-printed JSON file (for support tickets). */
function downloadJson(name: string, value: unknown) {
  const url = URL.createObjectURL(new Blob([JSON.stringify(value, null, 2)], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function DirectionIcon({ direction }: { direction: string }) {
  const inbound = direction === 'inbound';
  return (
    <span className={`direction ${inbound ? 'direction-in' : 'direction-out'}`} title={inbound ? 'Inbound' : 'Outbound'}>
      <svg viewBox="0 0 24 24" width="14" height="14" fill="none" stroke="currentColor" strokeWidth="2.2" aria-hidden="true">
        {inbound ? <path d="M17 7L7 17M7 9v8h8" /> : <path d="M7 17L17 7M9 7h8v8" />}
      </svg>
      <span className="sr-only">{inbound ? 'Inbound:' : 'Outbound:'}</span>
    </span>
  );
}

type Tab = 'overview' | 'technical';
const TABS: { id: Tab; label: string }[] = [
  { id: 'overview', label: 'Overview' },
  { id: 'technical', label: 'Technical' },
];

/** /cdrs/:id — "Call detail", with the "Technical" tab the troubleshooting guide points to. */
export function CallDetailPage() {
  const { id = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const tab: Tab = params.get('tab') === 'technical' ? 'technical' : 'overview';
  const cdr = useApi((signal) => api.get('/api/v1/cdrs/{id}', { path: { id }, signal }), id);
  const lookups = useLookups();
  const tabRefs = useRef<Record<Tab, HTMLButtonElement | null>>({ overview: null, technical: null });

  const select = (t: Tab, focus = false) => {
    const next = new URLSearchParams(params);
    if (t === 'overview') next.delete('tab');
    else next.set('tab', t);
    setParams(next, { replace: true });
    if (focus) tabRefs.current[t]?.focus();
  };
  const onKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const i = TABS.findIndex((t) => t.id === tab);
    const to = e.key === 'ArrowRight' ? (i + 1) % TABS.length : e.key === 'ArrowLeft' ? (i - 1 + TABS.length) % TABS.length : e.key === 'Home' ? 0 : e.key === 'End' ? TABS.length - 1 : -1;
    if (to < 0) return;
    e.preventDefault();
    select(TABS[to]!.id, true);
  };

  const trail = [...trailFor('/cdrs'), 'Call detail'];

  if (cdr.error && !cdr.data) {
    return (
      <>
        <PageHeader title="Call detail" trail={trail} />
        <ErrorState error={cdr.error} onRetry={cdr.reload} />
        <p className="back-link">
          <Link to="/cdrs">← All calls</Link>
        </p>
      </>
    );
  }
  if (!cdr.data) return <Spinner label="Loading the call…" />;
  const c = cdr.data;
  const o = outcome(c);

  return (
    <>
      <p className="back-link">
        <Link to="/cdrs">← All calls</Link>
      </p>
      <PageHeader
        title="Call detail"
        trail={trail}
        description={
          <>
            <span className="mono">
              {c.from} → {c.to}
            </span>{' '}
            · {formatDateTime(c.created_at, { seconds: true })} · <Badge tone={o.tone}>{o.label}</Badge>
          </>
        }
        actions={
          <div className="button-row">
            <CopyButton text={c.id} label="Copy call id" size="sm" />
            <Button size="sm" onClick={() => downloadJson(`sivo-cdr-${c.id}.json`, c)}>
              Download JSON
            </Button>
          </div>
        }
      />
      <div className="tabs" role="tablist" aria-label="Call detail" onKeyDown={onKey}>
        {TABS.map((t) => (
          <button
            key={t.id}
            ref={(el) => {
              tabRefs.current[t.id] = el;
            }}
            type="button"
            role="tab"
            id={`tab-${t.id}`}
            aria-selected={tab === t.id}
            aria-controls={`panel-${t.id}`}
            tabIndex={tab === t.id ? 0 : -1}
            className={`tab${tab === t.id ? ' tab-on' : ''}`}
            onClick={() => select(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} tabIndex={0} className="tab-panel">
        {tab === 'overview' ? <Overview cdr={c} lookups={lookups.data} /> : <Technical cdr={c} lookups={lookups.data} />}
      </div>
    </>
  );
}

function Overview({ cdr: c, lookups }: { cdr: Cdr; lookups?: Lookups }) {
  const agent = c.agent_id ? lookups?.agents.find((a) => a.id === c.agent_id) : undefined;
  const queue = c.queue_id ? lookups?.queues.find((q) => q.id === c.queue_id) : undefined;
  const transfers = Array.isArray(c.transfers) ? c.transfers : [];
  return (
    <div className="grid-2">
      <section className="panel" aria-labelledby="call-parties">
        <h2 id="call-parties" className="section-title">
          Call
        </h2>
        <dl className="details-grid">
          <dt>Direction</dt>
          <dd>
            <DirectionIcon direction={c.direction} /> {c.direction === 'inbound' ? 'Inbound' : 'Outbound'}
          </dd>
          <dt>From</dt>
          <dd className="mono">{c.from}</dd>
          <dt>To</dt>
          <dd className="mono">{c.to}</dd>
          <dt>DID</dt>
          <dd className="mono">{c.did ?? '—'}</dd>
          <dt>Queue</dt>
          <dd>{queue ? <Link to={`/settings/queues/${queue.id}`}>{queue.name}</Link> : c.queue_id ? 'Deleted queue' : '—'}</dd>
          <dt>Agent</dt>
          <dd>{agent ? agentName(agent) : c.agent_id ? 'Former agent' : '—'}</dd>
          <dt>Hangup</dt>
          <dd>
            {c.hangup_cause ? humanize(c.hangup_cause) : '—'}
            {c.hangup_side && <span className="muted"> · {HANGUP_SIDE_LABELS[c.hangup_side] ?? c.hangup_side}</span>}
          </dd>
          <dt>Call id</dt>
          <dd className="mono small">{c.id}</dd>
        </dl>
      </section>
      <section className="panel" aria-labelledby="call-times">
        <h2 id="call-times" className="section-title">
          Times
        </h2>
        <div className="duration-row">
          <Duration label="Total" ms={c.duration_ms} />
          <Duration label="Waiting" ms={c.wait_ms} muted={!c.queued_at} />
          <Duration label="Talking" ms={c.talk_ms} muted={!c.answered_at} />
        </div>
        <dl className="details-grid">
          <dt>Started</dt>
          <dd>{formatDateTime(c.created_at, { seconds: true })}</dd>
          <dt>Queued</dt>
          <dd>{c.queued_at ? formatDateTime(c.queued_at, { seconds: true }) : '—'}</dd>
          <dt>Answered</dt>
          <dd>{c.answered_at ? formatDateTime(c.answered_at, { seconds: true }) : '—'}</dd>
          <dt>Ended</dt>
          <dd>{c.ended_at ? formatDateTime(c.ended_at, { seconds: true }) : '—'}</dd>
        </dl>
      </section>
      <section className="panel grid-span" aria-labelledby="call-transfers">
        <h2 id="call-transfers" className="section-title">
          Transfers
        </h2>
        {transfers.length === 0 ? (
          <p className="muted">No transfers.</p>
        ) : (
          <ol className="kv-list">
            {transfers.map((t, i) => (
              <li key={i}>
                <KeyValues value={t} />
              </li>
            ))}
          </ol>
        )}
      </section>
    </div>
  );
}

function Duration({ label, ms, muted }: { label: string; ms: number; muted?: boolean }) {
  return (
    <div className={`duration${muted ? ' duration-muted' : ''}`}>
      <span className="duration-value">{muted ? '—' : formatDuration(ms)}</span>
      <span className="duration-label">{label}</span>
    </div>
  );
}

function KeyValues({ value }: { value: unknown }) {
  if (typeof value !== 'object' || value === null) return <span className="mono">{String(value)}</span>;
  return (
    <span className="kv">
      {Object.entries(value as Record<string, unknown>).map(([k, v]) => (
        <span key={k} className="kv-pair">
          <span className="kv-key">{humanize(k)}</span> <span className="mono">{typeof v === 'object' ? JSON.stringify(v) : String(v)}</span>
        </span>
      ))}
    </span>
  );
}

function Technical({ cdr: c, lookups }: { cdr: Cdr; lookups?: Lookups }) {
  const agentNameOf = (id?: string) => {
    const a = id ? lookups?.agents.find((x) => x.id === id) : undefined;
    return a ? agentName(a) : undefined;
  };
  const legs = (Array.isArray(c.legs) ? c.legs : []).map(legView);
  const timeline = timelineView(c.timeline, c.created_at);
  const rec = recordingView(c.recording);
  return (
    <>
      <section className="panel" aria-labelledby="tech-recording">
        <h2 id="tech-recording" className="section-title">
          Recording
        </h2>
        {!rec ? (
          <p className="muted">This call was not recorded.</p>
        ) : rec.url ? (
          <div className="recording">
            <audio controls preload="metadata" src={rec.url} aria-label="Call recording" data-testid="recording-player">
              <a href={rec.url}>Download the recording</a>
            </audio>
            <p className="muted small">
              {[rec.durationMs !== undefined ? formatDuration(rec.durationMs) : null, rec.format, rec.bytes !== undefined ? `${(rec.bytes / 1024 / 1024).toFixed(1)} MB` : null]
                .filter(Boolean)
                .join(' · ')}
              {rec.expiresAt ? ` · link valid until ${formatDateTime(rec.expiresAt)}` : ''} · <a href={rec.url} download>Download</a>
            </p>
          </div>
        ) : (
          <div className="recording">
            <p>
              <Badge tone="accent">Recorded</Badge>{' '}
              {[
                rec.durationMs !== undefined ? formatDuration(rec.durationMs) : null,
                rec.channels === 2 ? 'stereo (caller left, agent right)' : null,
                rec.bytes !== undefined ? `${(rec.bytes / 1024 / 1024).toFixed(1)} MB` : null,
              ]
                .filter(Boolean)
                .join(' · ')}
            </p>
            <p className="muted small">
              The file is kept on the server, but the API offered no download link for it.
            </p>
          </div>
        )}
      </section>
      <section className="panel" aria-labelledby="tech-legs">
        <h2 id="tech-legs" className="section-title">
          Legs, codecs and RTP
        </h2>
        {legs.length === 0 ? (
          <p className="muted">No media legs were recorded for this call (it ended before media was set up).</p>
        ) : (
          <div className="table-wrap">
            <table className="table table-legs">
              <caption className="sr-only">Legs with their negotiated codec and RTP statistics</caption>
              <thead>
                <tr>
                  <th scope="col">Leg</th>
                  <th scope="col">Codec</th>
                  <th scope="col">Remote</th>
                  <th scope="col" className="num">
                    Packets sent
                  </th>
                  <th scope="col" className="num">
                    Received
                  </th>
                  <th scope="col" className="num">
                    Lost
                  </th>
                  <th scope="col" className="num">
                    Jitter
                  </th>
                  <th scope="col" className="num">
                    RTCP
                  </th>
                </tr>
              </thead>
              <tbody>
                {legs.map((l, i) => (
                  <tr key={i}>
                    <td data-label="Leg">
                      <span className="cell-primary">
                        {l.title}
                        {l.agentId && agentNameOf(l.agentId) ? ` · ${agentNameOf(l.agentId)}` : ''}
                        {l.extension ? <span className="muted"> · ext. {l.extension}</span> : null}
                      </span>
                      {(l.role || l.transport || l.outcome) && (
                        <span className="cell-secondary">
                          {[l.role ? humanize(l.role) : null, l.transport].filter(Boolean).join(' · ')}
                          {l.outcome && (
                            <>
                              {' '}
                              <Badge tone={l.outcome === 'answered' ? 'success' : 'neutral'}>{humanize(l.outcome)}</Badge>
                            </>
                          )}
                        </span>
                      )}
                      {l.extra.length > 0 && (
                        <span className="cell-secondary leg-extra">
                          {l.extra.map(([k, v]) => (
                            <span key={k} className="kv-pair">
                              <span className="kv-key">{keyLabel(k)}</span> <span className="mono">{formatValue(v)}</span>
                            </span>
                          ))}
                        </span>
                      )}
                    </td>
                    <td data-label="Codec">{l.codec ? <code className="code-chip">{l.codec}</code> : <span className="muted">—</span>}</td>
                    <td data-label="Remote" className="mono small">
                      {l.remote ?? '—'}
                    </td>
                    <td data-label="Packets sent" className="num">
                      {formatValue(l.rtp.sent)}
                    </td>
                    <td data-label="Received" className="num">
                      {formatValue(l.rtp.received)}
                    </td>
                    <td data-label="Lost" className="num">
                      {l.rtp.lost === undefined ? '—' : (
                        <span className={l.rtp.lossPct !== undefined && l.rtp.lossPct >= 1 ? 'bad' : undefined}>
                          {formatValue(l.rtp.lost)}
                          {l.rtp.lossPct !== undefined && ` (${l.rtp.lossPct.toFixed(1)} %)`}
                        </span>
                      )}
                    </td>
                    <td data-label="Jitter" className="num">
                      {l.rtp.jitterMs === undefined ? '—' : <span className={l.rtp.jitterMs >= 30 ? 'bad' : undefined}>{l.rtp.jitterMs.toFixed(1)} ms</span>}
                    </td>
                    <td data-label="RTCP" className="num">
                      {formatValue(l.rtp.rtcp)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section className="panel" aria-labelledby="tech-timeline">
        <h2 id="tech-timeline" className="section-title">
          Timeline
        </h2>
        {timeline.length === 0 ? (
          <p className="muted">No technical events were recorded for this call.</p>
        ) : (
          <ol className="timeline" data-testid="timeline">
            {timeline.map((t, i) => (
              <li key={i} className={`timeline-item timeline-${t.kind}`}>
                <span className="timeline-offset mono" title={t.at ? formatDateTime(t.at.toISOString(), { seconds: true }) : undefined}>
                  {t.offset ?? ''}
                </span>
                <span className="timeline-dot" aria-hidden="true" />
                <div className="timeline-body">
                  <span className="timeline-label">
                    <code>{t.label}</code>
                    {t.leg && <span className="timeline-leg">leg {t.leg}</span>}
                  </span>
                  {t.details.length > 0 && (
                    <span className="timeline-details">
                      {t.details.map(([k, v]) => (
                        <span key={k} className="kv-pair">
                          <span className="kv-key">{keyLabel(k)}</span> <span className="mono">{formatValue(v)}</span>
                        </span>
                      ))}
                    </span>
                  )}
                </div>
              </li>
            ))}
          </ol>
        )}
      </section>
    </>
  );
}

