import { describe, expect, it } from 'vitest';
import type { Schemas } from '../api/client';
import type { SivoEvent } from '../realtime/events';
import { EMPTY, formatWait, reduce, summarize, type Snapshot, type WallboardState } from './wallboard';

const T = 'tenant-1';
const SALES = 'q-sales';
const SUPPORT = 'q-support';
const ANN = 'agent-ann';
const BOB = 'agent-bob';
const NOW = new Date('2026-03-10T15:00:00Z');
const at = (secondsBeforeNow: number) => new Date(NOW.getTime() - secondsBeforeNow * 1000).toISOString();

let nextId = 0;
function ev<E extends SivoEvent>(type: E['type'], data: E['data'], createdAt = at(0)): SivoEvent {
  return { id: `ev-${nextId++}`, type, tenant_id: T, created_at: createdAt, data } as SivoEvent;
}

function agent(id: string, name: string, status: Schemas['AgentStatus'], queues: string[], extra: Partial<Schemas['AgentOut']> = {}): Schemas['AgentOut'] {
  return {
    id,
    email: `${id}@acme.example`,
    display_name: name,
    role: 'agent',
    disabled: false,
    sip_domain: 'acme.sip.localhost',
    registration: { state: 'green', contacts: [] } as unknown as Schemas['AgentOut']['registration'],
    status,
    queue_ids: queues,
    ...extra,
  };
}

function queue(id: string, name: string): Schemas['QueueOut'] {
  return {
    id,
    name,
    ring_timeout_secs: 20,
    max_wait_secs: 300,
    overflow_type: 'none',
    record_calls: false,
    created_at: at(86_400),
    updated_at: at(86_400),
  } as Schemas['QueueOut'];
}

function cdr(id: string, fields: Partial<Schemas['Cdr']>): Schemas['Cdr'] {
  return {
    id,
    direction: 'inbound',
    from: '+15550001',
    to: '+15550100',
    created_at: at(3600),
    duration_ms: 60_000,
    talk_ms: 0,
    wait_ms: 0,
    legs: [],
    transfers: [],
    timeline: [],
    ...fields,
  } as Schemas['Cdr'];
}

const snapshot: Snapshot = {
  queues: [queue(SALES, 'Sales'), queue(SUPPORT, 'Support')],
  agents: [
    agent(ANN, 'Ann', 'available', [SALES]),
    agent(BOB, 'Bob', 'on_break', [SALES, SUPPORT], { pause_reason: 'lunch' }),
    agent('agent-gone', 'Gone', 'available', [SALES], { disabled: true }),
  ],
  calls: [
    {
      id: 'call-waiting',
      state: 'queued',
      direction: 'inbound',
      from: '+15550002',
      to: '+15550100',
      created_at: at(95),
      queued_at: at(90),
      queue_id: SUPPORT,
      duration_ms: 95_000,
      talk_ms: 0,
      wait_ms: 90_000,
      legs: [],
      transfers: [],
    } as Schemas['CallOut'],
  ],
  cdrs: [
    cdr('call-done', { answered_at: at(3500), ended_at: at(3400), queued_at: at(3550), hangup_side: 'agent', queue_id: SALES }),
    cdr('call-gave-up', { queued_at: at(1900), ended_at: at(1800), hangup_side: 'caller', queue_id: SALES }),
    // Yesterday's: loaded by a wide filter, not counted as today.
    cdr('call-yesterday', { answered_at: at(86_400 + 60), ended_at: at(86_400), hangup_side: 'caller' }),
  ],
};

function apply(state: WallboardState, ...events: SivoEvent[]): WallboardState {
  return events.reduce((s, event) => reduce(s, { type: 'event', event }), state);
}

describe('wallboard reducer', () => {
  const start = reduce(EMPTY, { type: 'snapshot', snapshot });

  it('starts from the REST snapshot', () => {
    const view = summarize(start, NOW);
    expect(view.inProgress).toBe(1);
    expect(view.waiting).toBe(1);
    expect(view.answeredToday).toBe(1);
    expect(view.abandonedToday).toBe(1);
    const support = view.queues.find((q) => q.id === SUPPORT)!;
    expect(support).toMatchObject({ name: 'Support', waiting: 1, longestWaitMs: 90_000, available: 0 });
    expect(view.queues.find((q) => q.id === SALES)).toMatchObject({ waiting: 0, longestWaitMs: 0, available: 1 });
    expect(view.agentsByStatus.available.map((a) => a.name)).toEqual(['Ann']);
    expect(view.agentsByStatus.on_break).toEqual([expect.objectContaining({ name: 'Bob', pauseReason: 'lunch' })]);
    // Disabled agents are not on the board.
    expect(Object.keys(start.agents)).not.toContain('agent-gone');
  });

  it('follows a call from creation through the queue to an answer and its end', () => {
    const id = 'call-new';
    let s = apply(start, ev('call.created', { call_id: id, sequence: 1, direction: 'inbound', from: '+15559999', to: '+15550100', did: '+15550100' }, at(40)));
    expect(summarize(s, NOW)).toMatchObject({ inProgress: 2, ringing: 1, waiting: 1 });

    s = apply(s, ev('queue.entered', { call_id: id, sequence: 2, queue_id: SALES, position: 1 }, at(30)));
    let view = summarize(s, NOW);
    expect(view).toMatchObject({ waiting: 2, ringing: 0 });
    // Busiest queues first, then by name.
    expect(view.queues.map((q) => [q.id, q.waiting])).toEqual([[SALES, 1], [SUPPORT, 1]]);
    expect(view.queues.find((q) => q.id === SALES)).toMatchObject({ waiting: 1, longestWaitMs: 30_000 });

    s = apply(
      s,
      ev('call.answered', { call_id: id, sequence: 3, agent_id: ANN, queue_id: SALES, answered_at: at(10) }, at(10)),
      ev('agent.status_changed', { agent_id: ANN, previous: 'available', status: 'on_call', reason: null }, at(10)),
    );
    view = summarize(s, NOW);
    expect(view).toMatchObject({ talking: 1, waiting: 1, answeredToday: 2, inProgress: 2 });
    expect(view.queues.find((q) => q.id === SALES)).toMatchObject({ waiting: 0, talking: 1, available: 0 });
    expect(view.agentsByStatus.on_call.map((a) => a.id)).toEqual([ANN]);

    s = apply(
      s,
      ev('call.ended', { call_id: id, sequence: 4, hangup_cause: 'normal_clearing', hangup_side: 'caller', duration_ms: 40_000, cdr: { answered_at: at(10), queued_at: at(30) } }),
      ev('agent.status_changed', { agent_id: ANN, previous: 'on_call', status: 'available', reason: null }),
    );
    view = summarize(s, NOW);
    expect(view).toMatchObject({ inProgress: 1, talking: 0, answeredToday: 2, abandonedToday: 1 });
    expect(view.agentsByStatus.available.map((a) => a.id)).toEqual([ANN]);
  });

  it('counts an abandoned caller once, from either event, and removes the call', () => {
    const id = 'call-waiting';
    const abandoned = ev('queue.abandoned', { call_id: id, sequence: 3, queue_id: SUPPORT, waited_ms: 95_000 });
    const ended = ev('call.ended', {
      call_id: id,
      sequence: 4,
      hangup_cause: 'normal_clearing',
      hangup_side: 'caller',
      duration_ms: 95_000,
      cdr: { queued_at: at(90), answered_at: null, hangup_side: 'caller', ended_at: at(0) },
    });
    const s = apply(start, abandoned, ended, abandoned);
    const view = summarize(s, NOW);
    expect(view).toMatchObject({ inProgress: 0, waiting: 0, abandonedToday: 2 });
    expect(view.queues.find((q) => q.id === SUPPORT)).toMatchObject({ waiting: 0, longestWaitMs: 0 });
  });

  it('ignores repeated, stale and late events', () => {
    const id = 'call-x';
    const created = ev('call.created', { call_id: id, sequence: 1, direction: 'inbound', from: 'a', to: 'b', did: null });
    const entered = ev('queue.entered', { call_id: id, sequence: 2, queue_id: SALES, position: 1 });
    const answered = ev('call.answered', { call_id: id, sequence: 3, agent_id: BOB, queue_id: SALES, answered_at: at(0) });
    let s = apply(start, created, entered, answered);
    // Repeats and out-of-order older events change nothing.
    const again = apply(s, entered, created, answered);
    expect(again.calls[id]).toEqual(s.calls[id]);
    expect(summarize(again, NOW).answeredToday).toBe(2);
    // After the end, nothing brings the call back.
    s = apply(s, ev('call.ended', { call_id: id, sequence: 5, hangup_cause: 'normal_clearing', hangup_side: 'agent', duration_ms: 1, cdr: null }));
    s = apply(s, entered);
    expect(s.calls[id]).toBeUndefined();
    // A call known from REST (no sequence) does not move backwards on a buffered older event.
    s = apply(start, ev('call.created', { call_id: 'call-waiting', sequence: 1, direction: 'inbound', from: 'x', to: 'y', did: null }));
    expect(s.calls['call-waiting']?.state).toBe('queued');
  });

  it('tracks breaks with their reason, and agents it did not know', () => {
    let s = apply(start, ev('agent.paused', { agent_id: ANN, reason: 'training' }));
    expect(summarize(s, NOW).agentsByStatus.on_break.map((a) => [a.name, a.pauseReason])).toEqual([
      ['Ann', 'training'],
      ['Bob', 'lunch'],
    ]);
    s = apply(s, ev('agent.status_changed', { agent_id: BOB, previous: 'on_break', status: 'logged_out', reason: null }));
    expect(s.agents[BOB]).toMatchObject({ status: 'logged_out', pauseReason: null });
    s = apply(s, ev('agent.status_changed', { agent_id: 'agent-new', previous: 'logged_out', status: 'available', reason: null }));
    expect(summarize(s, NOW).agentsByStatus.available.map((a) => a.id)).toContain('agent-new');
  });

  it('a new snapshot replaces everything (resynchronisation after a reconnect)', () => {
    const s = apply(start, ev('agent.paused', { agent_id: ANN, reason: 'training' }));
    const fresh = reduce(s, { type: 'snapshot', snapshot });
    expect(fresh).toEqual(start);
  });

  it('other event types change nothing', () => {
    const s = apply(start, ev('call.recorded', { call_id: 'call-done', sequence: 9 }));
    expect(s).toBe(start);
  });

  it('"today" starts at local midnight', () => {
    const lateEvening = new Date(NOW.getFullYear(), NOW.getMonth(), NOW.getDate(), 23, 59);
    const nextMorning = new Date(NOW.getFullYear(), NOW.getMonth(), NOW.getDate() + 1, 0, 1);
    const s = apply(
      EMPTY,
      ev('call.answered', { call_id: 'c1', sequence: 3, agent_id: ANN, queue_id: SALES, answered_at: lateEvening.toISOString() }),
    );
    expect(summarize(s, lateEvening).answeredToday).toBe(1);
    expect(summarize(s, nextMorning).answeredToday).toBe(0);
  });
});

describe('formatWait', () => {
  it('formats minutes and hours', () => {
    expect(formatWait(0)).toBe('0:00');
    expect(formatWait(65_000)).toBe('1:05');
    expect(formatWait(3_723_000)).toBe('1:02:03');
  });
});
