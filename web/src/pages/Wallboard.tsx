import { useCallback, useEffect, useReducer, useRef, useState } from 'react';
import { api } from '../api/client';
import { isAbort } from '../api/problem';
import { Badge, ErrorState, PageHeader, Spinner } from '../components/ui';
import { trailFor } from '../lib/nav';
import {
  EMPTY,
  STATUS_ORDER,
  WALLBOARD_EVENTS,
  formatWait,
  reduce,
  startOfDay,
  summarize,
  type AgentStatus,
  type Snapshot,
  type WbAgent,
} from '../lib/wallboard';
import type { SivoEvent } from '../realtime/events';
import { useRealtime, useRealtimeEvents } from '../realtime/RealtimeProvider';
import '../realtime/realtime.css';

const PAGE = 200;
/** Today's CDRs are counted from at most this many pages. */
const MAX_CDR_PAGES = 50;
const INTERESTING = new Set<string>(WALLBOARD_EVENTS);

const STATUS_LABELS: Record<AgentStatus, string> = {
  available: 'Available',
  on_call: 'On call',
  on_break: 'On break',
  logged_out: 'Logged out',
};

async function allPages<T>(page: (cursor: string | undefined) => Promise<{ items: T[]; next_cursor?: string | null }>, maxPages = 20): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < maxPages; i++) {
    const p = await page(cursor);
    items.push(...p.items);
    if (!p.next_cursor) break;
    cursor = p.next_cursor;
  }
  return items;
}

async function loadSnapshot(signal: AbortSignal): Promise<Snapshot> {
  const from = startOfDay(new Date()).toISOString();
  const [queues, agents, calls, cdrs] = await Promise.all([
    allPages((cursor) => api.get('/api/v1/queues', { query: { cursor, limit: PAGE }, signal })),
    allPages((cursor) => api.get('/api/v1/agents', { query: { cursor, limit: PAGE }, signal })),
    api.get('/api/v1/calls', { signal }).then((p) => p.items),
    allPages((cursor) => api.get('/api/v1/cdrs', { query: { from, cursor, limit: PAGE }, signal }), MAX_CDR_PAGES),
  ]);
  return { queues, agents, calls, cdrs };
}

/** The current time, every second: waits count up on their own (no network involved). */
function useSecondTick(): Date {
  const [now, setNow] = useState(() => new Date());
  useEffect(() => {
    const t = setInterval(() => setNow(new Date()), 1_000);
    return () => clearInterval(t);
  }, []);
  return now;
}

/**
 * Dashboard → Wallboard (supervisors and admins): the state of the contact center right now.
 * Loads once from REST, then changes only with pushed events; after the live connection comes
 * back it loads again, since events may have been missed while it was down.
 */
export function WallboardPage() {
  const [state, dispatch] = useReducer(reduce, EMPTY);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [nonce, setNonce] = useState(0);
  const realtime = useRealtime();
  const now = useSecondTick();
  // Events that arrive while a snapshot loads are applied after it (the reducer ignores the ones
  // the snapshot already reflects).
  const pending = useRef<SivoEvent[] | null>([]);

  useRealtimeEvents(
    useCallback((event: SivoEvent) => {
      if (!INTERESTING.has(event.type)) return;
      if (pending.current) pending.current.push(event);
      else dispatch({ type: 'event', event });
    }, []),
  );

  // Load on open, on "Try again", and whenever the live connection comes (back) after the page
  // was without it: events pushed in between were not heard.
  const missedEvents = useRef(realtime.status !== 'connected');
  const seenConnection = useRef(realtime.connectionId);
  useEffect(() => {
    if (realtime.status !== 'connected') {
      missedEvents.current = true;
      return;
    }
    const reconnected = realtime.connectionId !== seenConnection.current;
    seenConnection.current = realtime.connectionId;
    if (missedEvents.current || reconnected) {
      missedEvents.current = false;
      setNonce((n) => n + 1);
    }
  }, [realtime.status, realtime.connectionId]);

  useEffect(() => {
    const controller = new AbortController();
    pending.current = [];
    setError(undefined);
    loadSnapshot(controller.signal).then(
      (snapshot) => {
        if (controller.signal.aborted) return;
        dispatch({ type: 'snapshot', snapshot });
        for (const event of pending.current ?? []) dispatch({ type: 'event', event });
        pending.current = null;
        setLoaded(true);
      },
      (e: unknown) => {
        if (controller.signal.aborted || isAbort(e)) return;
        for (const event of pending.current ?? []) dispatch({ type: 'event', event });
        pending.current = null;
        setError(e);
      },
    );
    return () => controller.abort();
  }, [nonce]);

  const view = summarize(state, now);
  const live = realtime.status === 'connected';

  return (
    <>
      <PageHeader
        title="Wallboard"
        trail={trailFor('/dashboard/wallboard')}
        description="Queues, agents and calls right now, updated live as calls arrive, wait, are answered and end."
      />
      {!live && loaded && (
        <div className="alert alert-warning wb-stale" role="status">
          <strong className="alert-title">Live updates paused</strong>
          <div>The figures below are from {realtime.status === 'idle' ? 'when the page loaded' : 'before the connection dropped'}; they refresh as soon as it is back.</div>
        </div>
      )}
      {error !== undefined && !loaded ? (
        <div className="panel">
          <ErrorState error={error} onRetry={() => setNonce((n) => n + 1)} />
        </div>
      ) : !loaded ? (
        <div className="panel">
          <Spinner label="Loading the wallboard…" />
        </div>
      ) : (
        <div className="wb" data-testid="wallboard">
          {error !== undefined && (
            <div className="panel">
              <ErrorState error={error} onRetry={() => setNonce((n) => n + 1)} />
            </div>
          )}
          <section aria-label="Calls" className="wb-stats">
            <Stat label="Calls in progress" value={view.inProgress} testId="wb-in-progress" />
            <Stat label="Waiting" value={view.waiting} tone={view.waiting > 0 ? 'warning' : undefined} testId="wb-waiting" />
            <Stat label="Talking" value={view.talking} testId="wb-talking" />
            <Stat label="Answered today" value={view.answeredToday} tone={view.answeredToday > 0 ? 'success' : undefined} testId="wb-answered" />
            <Stat label="Abandoned today" value={view.abandonedToday} tone={view.abandonedToday > 0 ? 'danger' : undefined} testId="wb-abandoned" />
          </section>

          <section className="panel wb-panel" aria-labelledby="wb-queues">
            <h2 id="wb-queues" className="wb-title">
              Queues
            </h2>
            {view.queues.length === 0 ? (
              <p className="muted">No queues yet. Admins create them under Settings → Queues.</p>
            ) : (
              <div className="table-wrap">
                <table className="table wb-table">
                  <caption className="sr-only">Calls waiting and longest wait per queue</caption>
                  <thead>
                    <tr>
                      <th scope="col">Queue</th>
                      <th scope="col" className="num">
                        Waiting
                      </th>
                      <th scope="col" className="num">
                        Longest wait
                      </th>
                      <th scope="col" className="num">
                        Talking
                      </th>
                      <th scope="col" className="num">
                        Agents available
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {view.queues.map((q) => (
                      <tr key={q.id} data-testid={`wb-queue-${q.id}`}>
                        <th scope="row">{q.name}</th>
                        <td className="num">
                          <span className={q.waiting > 0 ? 'wb-hot' : undefined}>{q.waiting}</span>
                        </td>
                        <td className="num mono">{q.waiting > 0 ? formatWait(q.longestWaitMs) : '—'}</td>
                        <td className="num">{q.talking}</td>
                        <td className="num">{q.available}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>

          <section className="panel wb-panel" aria-labelledby="wb-agents">
            <h2 id="wb-agents" className="wb-title">
              Agents
            </h2>
            <div className="wb-agents">
              {STATUS_ORDER.map((status) => (
                <AgentColumn key={status} status={status} agents={view.agentsByStatus[status]} />
              ))}
            </div>
          </section>
        </div>
      )}
    </>
  );
}

function Stat({ label, value, tone, testId }: { label: string; value: number; tone?: 'success' | 'warning' | 'danger'; testId: string }) {
  return (
    <div className={`stat wb-stat${tone ? ` stat-${tone}` : ''}`}>
      <span className="stat-value" data-testid={testId}>
        {value}
      </span>
      <span className="stat-label">{label}</span>
    </div>
  );
}

const STATUS_TONES: Record<AgentStatus, 'success' | 'accent' | 'warning' | 'neutral'> = {
  available: 'success',
  on_call: 'accent',
  on_break: 'warning',
  logged_out: 'neutral',
};

function AgentColumn({ status, agents }: { status: AgentStatus; agents: WbAgent[] }) {
  return (
    <div className={`wb-agent-col wb-${status}`} data-testid={`wb-agents-${status}`}>
      <h3 className="wb-agent-head">
        <span>{STATUS_LABELS[status]}</span>
        <Badge tone={STATUS_TONES[status]}>{agents.length}</Badge>
      </h3>
      {agents.length === 0 ? (
        <p className="wb-none">None</p>
      ) : (
        <ul className="wb-agent-list">
          {agents.map((a) => (
            <li key={a.id} data-agent-id={a.id}>
              <span className="wb-agent-name">{a.name}</span>
              {a.pauseReason && <span className="wb-agent-reason">{a.pauseReason}</span>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
