// The wallboard's model: a snapshot from REST (queues, agents, calls in progress, today's CDRs),
// then kept current by pushed events only. Pure functions, so the rules are unit-tested:
// `reduce` (snapshot or event → state) and `summarize` (state and the time → what is shown).
//
// Events may repeat (a resynchronised snapshot followed by events it already reflects) and may
// arrive after a newer snapshot, so everything is keyed by id and per-call `sequence`, and ended
// calls leave a tombstone so a late event cannot bring them back.
import type { Schemas } from '../api/client';
import type { SivoEvent } from '../realtime/events';

export type AgentStatus = Schemas['AgentStatus'];
type QueueOut = Schemas['QueueOut'];
type AgentOut = Schemas['AgentOut'];
type CallOut = Schemas['CallOut'];
type Cdr = Schemas['Cdr'];

export interface WbQueue {
  id: string;
  name: string;
}

export interface WbAgent {
  id: string;
  name: string;
  status: AgentStatus;
  pauseReason: string | null;
  queueIds: string[];
}

export type LiveCallState = 'ringing' | 'queued' | 'answered';

export interface WbCall {
  id: string;
  state: LiveCallState;
  from: string;
  to: string;
  queueId: string | null;
  agentId: string | null;
  createdAt: string;
  queuedAt: string | null;
  answeredAt: string | null;
  /** Highest per-call event sequence applied (0 for a call known from REST only). */
  sequence: number;
}

export interface WallboardState {
  queues: Record<string, WbQueue>;
  agents: Record<string, WbAgent>;
  calls: Record<string, WbCall>;
  /** Calls known to have ended: later events about them are ignored. */
  ended: Record<string, true>;
  /** Answered calls (ended or not): call id → when answered. */
  answered: Record<string, string>;
  /** Calls abandoned in a queue: call id → when. */
  abandoned: Record<string, string>;
}

export interface Snapshot {
  queues: QueueOut[];
  agents: AgentOut[];
  calls: CallOut[];
  /** Today's CDRs (ended calls). */
  cdrs: Cdr[];
}

export type WallboardAction = { type: 'snapshot'; snapshot: Snapshot } | { type: 'event'; event: SivoEvent };

export const EMPTY: WallboardState = { queues: {}, agents: {}, calls: {}, ended: {}, answered: {}, abandoned: {} };

/** The events the wallboard listens to; the others change nothing on it. */
export const WALLBOARD_EVENTS = [
  'call.created',
  'queue.entered',
  'call.answered',
  'call.ended',
  'queue.abandoned',
  'agent.status_changed',
  'agent.paused',
] as const;

export function agentDisplayName(a: Pick<AgentOut, 'display_name' | 'email'>): string {
  return a.display_name.trim() || a.email;
}

/** A CDR of a caller who hung up while waiting in a queue. */
export function isAbandoned(cdr: Pick<Cdr, 'queued_at' | 'answered_at' | 'hangup_side'>): boolean {
  return !!cdr.queued_at && !cdr.answered_at && cdr.hangup_side === 'caller';
}

function fromSnapshot(s: Snapshot): WallboardState {
  const state: WallboardState = { queues: {}, agents: {}, calls: {}, ended: {}, answered: {}, abandoned: {} };
  for (const q of s.queues) state.queues[q.id] = { id: q.id, name: q.name };
  for (const a of s.agents) {
    if (a.disabled) continue;
    state.agents[a.id] = {
      id: a.id,
      name: agentDisplayName(a),
      status: a.status,
      pauseReason: a.status === 'on_break' ? (a.pause_reason ?? null) : null,
      queueIds: a.queue_ids,
    };
  }
  for (const c of s.calls) {
    if (c.state === 'ended') {
      state.ended[c.id] = true;
      continue;
    }
    state.calls[c.id] = {
      id: c.id,
      state: c.state,
      from: c.from,
      to: c.to,
      queueId: c.queue_id ?? null,
      agentId: c.agent_id ?? null,
      createdAt: c.created_at,
      queuedAt: c.queued_at ?? null,
      answeredAt: c.answered_at ?? null,
      sequence: 0,
    };
    if (c.answered_at) state.answered[c.id] = c.answered_at;
  }
  for (const cdr of s.cdrs) {
    state.ended[cdr.id] = true;
    delete state.calls[cdr.id];
    if (cdr.answered_at) state.answered[cdr.id] = cdr.answered_at;
    if (isAbandoned(cdr)) state.abandoned[cdr.id] = cdr.ended_at ?? cdr.created_at;
  }
  return state;
}

const RANK: Record<LiveCallState, number> = { ringing: 0, queued: 1, answered: 2 };

/**
 * The call an event is about (created from what the event says if it is new), or null when the
 * event is stale: the call ended, the event's sequence was already applied, or (for a call known
 * only from REST, which carries no sequence) it would move the call backwards.
 */
function touchCall(state: WallboardState, callId: string, sequence: number, at: string, target: LiveCallState): WbCall | null {
  if (state.ended[callId]) return null;
  const existing = state.calls[callId];
  if (existing && existing.sequence > 0 && existing.sequence >= sequence) return null;
  if (existing && existing.sequence === 0 && RANK[target] < RANK[existing.state]) return null;
  return (
    existing ?? {
      id: callId,
      state: 'ringing',
      from: '',
      to: '',
      queueId: null,
      agentId: null,
      createdAt: at,
      queuedAt: null,
      answeredAt: null,
      sequence: 0,
    }
  );
}

function withCall(state: WallboardState, call: WbCall): WallboardState {
  return { ...state, calls: { ...state.calls, [call.id]: call } };
}

function withoutCall(state: WallboardState, callId: string): WallboardState {
  const calls = { ...state.calls };
  delete calls[callId];
  return { ...state, calls, ended: { ...state.ended, [callId]: true } };
}

function applyEvent(state: WallboardState, e: SivoEvent): WallboardState {
  switch (e.type) {
    case 'call.created': {
      const d = e.data;
      const call = touchCall(state, d.call_id, d.sequence, e.created_at, 'ringing');
      if (!call) return state;
      return withCall(state, { ...call, from: d.from, to: d.to, createdAt: e.created_at, sequence: d.sequence });
    }
    case 'queue.entered': {
      const d = e.data;
      const call = touchCall(state, d.call_id, d.sequence, e.created_at, 'queued');
      if (!call) return state;
      return withCall(state, {
        ...call,
        state: 'queued',
        queueId: d.queue_id,
        // A transfer back into a queue restarts the wait.
        queuedAt: e.created_at,
        agentId: null,
        sequence: d.sequence,
      });
    }
    case 'call.answered': {
      const d = e.data;
      const answered = state.answered[d.call_id] ? state.answered : { ...state.answered, [d.call_id]: d.answered_at };
      const call = touchCall(state, d.call_id, d.sequence, e.created_at, 'answered');
      if (!call) return answered === state.answered ? state : { ...state, answered };
      return {
        ...withCall(state, {
          ...call,
          state: 'answered',
          agentId: d.agent_id,
          queueId: d.queue_id ?? call.queueId,
          answeredAt: d.answered_at,
          sequence: d.sequence,
        }),
        answered,
      };
    }
    case 'queue.abandoned': {
      const d = e.data;
      const next = state.abandoned[d.call_id] ? state : { ...state, abandoned: { ...state.abandoned, [d.call_id]: e.created_at } };
      return withoutCall(next, d.call_id);
    }
    case 'call.ended': {
      const d = e.data;
      let next = state;
      const cdr = d.cdr;
      if (cdr?.answered_at && !next.answered[d.call_id]) next = { ...next, answered: { ...next.answered, [d.call_id]: cdr.answered_at } };
      if (cdr && isAbandoned({ queued_at: cdr.queued_at ?? null, answered_at: cdr.answered_at ?? null, hangup_side: cdr.hangup_side ?? null }) && !next.abandoned[d.call_id]) {
        next = { ...next, abandoned: { ...next.abandoned, [d.call_id]: cdr.ended_at ?? e.created_at } };
      }
      return withoutCall(next, d.call_id);
    }
    case 'agent.status_changed': {
      const d = e.data;
      const agent = state.agents[d.agent_id] ?? { id: d.agent_id, name: 'Agent', status: d.status, pauseReason: null, queueIds: [] };
      return {
        ...state,
        agents: {
          ...state.agents,
          [d.agent_id]: { ...agent, status: d.status, pauseReason: d.status === 'on_break' ? (d.reason ?? agent.pauseReason) : null },
        },
      };
    }
    case 'agent.paused': {
      const d = e.data;
      const agent = state.agents[d.agent_id] ?? { id: d.agent_id, name: 'Agent', status: 'on_break' as const, pauseReason: null, queueIds: [] };
      return { ...state, agents: { ...state.agents, [d.agent_id]: { ...agent, status: 'on_break', pauseReason: d.reason } } };
    }
    default:
      return state;
  }
}

export function reduce(state: WallboardState, action: WallboardAction): WallboardState {
  return action.type === 'snapshot' ? fromSnapshot(action.snapshot) : applyEvent(state, action.event);
}

export interface QueueView {
  id: string;
  name: string;
  waiting: number;
  /** Longest current wait in ms, 0 when nobody waits. */
  longestWaitMs: number;
  talking: number;
  /** Members who are Available. */
  available: number;
}

export interface WallboardView {
  queues: QueueView[];
  agentsByStatus: Record<AgentStatus, WbAgent[]>;
  inProgress: number;
  waiting: number;
  ringing: number;
  talking: number;
  answeredToday: number;
  abandonedToday: number;
}

export const STATUS_ORDER: AgentStatus[] = ['available', 'on_call', 'on_break', 'logged_out'];

/** Local midnight of `now`'s day: "today" as the supervisor reads it. */
export function startOfDay(now: Date): Date {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate());
}

function countSince(times: Record<string, string>, since: number): number {
  let n = 0;
  for (const t of Object.values(times)) if (Date.parse(t) >= since) n++;
  return n;
}

export function summarize(state: WallboardState, now: Date): WallboardView {
  const calls = Object.values(state.calls);
  const byQueue = new Map<string, QueueView>();
  const queueView = (id: string): QueueView => {
    let v = byQueue.get(id);
    if (!v) {
      v = { id, name: state.queues[id]?.name ?? 'Unknown queue', waiting: 0, longestWaitMs: 0, talking: 0, available: 0 };
      byQueue.set(id, v);
    }
    return v;
  };
  for (const q of Object.values(state.queues)) queueView(q.id);
  for (const c of calls) {
    if (!c.queueId) continue;
    const v = queueView(c.queueId);
    if (c.state === 'queued') {
      v.waiting++;
      const since = Date.parse(c.queuedAt ?? c.createdAt);
      v.longestWaitMs = Math.max(v.longestWaitMs, Math.max(0, now.getTime() - since));
    } else if (c.state === 'answered') {
      v.talking++;
    }
  }
  const agentsByStatus: Record<AgentStatus, WbAgent[]> = { available: [], on_call: [], on_break: [], logged_out: [] };
  for (const a of Object.values(state.agents)) {
    agentsByStatus[a.status].push(a);
    if (a.status === 'available') for (const q of a.queueIds) if (byQueue.has(q)) queueView(q).available++;
  }
  for (const list of Object.values(agentsByStatus)) list.sort((x, y) => x.name.localeCompare(y.name));
  const today = startOfDay(now).getTime();
  return {
    queues: [...byQueue.values()].sort((x, y) => y.waiting - x.waiting || x.name.localeCompare(y.name)),
    agentsByStatus,
    inProgress: calls.length,
    waiting: calls.filter((c) => c.state === 'queued').length,
    ringing: calls.filter((c) => c.state === 'ringing').length,
    talking: calls.filter((c) => c.state === 'answered').length,
    answeredToday: countSince(state.answered, today),
    abandonedToday: countSince(state.abandoned, today),
  };
}

/** `1:05`, `12:40`, `1:02:03` for a wait. */
export function formatWait(ms: number): string {
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
