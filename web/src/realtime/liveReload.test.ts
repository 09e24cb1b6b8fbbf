import { describe, expect, it } from 'vitest';
import { isChangeHint, type SivoEvent } from './events';
import { agentEvents, agentInterest, COALESCE_MS, createCoalescer, createResync, hintsAbout, type Timers } from './liveReload';

/** Timers driven by hand: `advance(ms)` fires what is due, in order. */
function fakeTimers() {
  let now = 0;
  let next = 1;
  const due = new Map<number, { at: number; fn: () => void }>();
  const timers: Timers = {
    set: (fn, ms) => {
      const id = next++;
      due.set(id, { at: now + ms, fn });
      return id;
    },
    clear: (handle) => {
      due.delete(handle as number);
    },
  };
  const advance = (ms: number) => {
    const until = now + ms;
    for (;;) {
      const first = [...due.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!first) break;
      due.delete(first[0]);
      now = first[1].at;
      first[1].fn();
    }
    now = until;
  };
  return { timers, advance, pending: () => due.size };
}

function event(type: string, data: Record<string, unknown>): SivoEvent {
  return { id: 'e', type, tenant_id: 't', created_at: '2026-01-01T00:00:00Z', data } as SivoEvent;
}

describe('change hints', () => {
  it('accepts only {resource, id} with a string or null id', () => {
    expect(isChangeHint({ resource: 'trunk.status', id: 'abc' })).toBe(true);
    expect(isChangeHint({ resource: 'trunk.status', id: null })).toBe(true);
    expect(isChangeHint({ resource: 'trunk.status' })).toBe(false);
    expect(isChangeHint({ id: 'abc' })).toBe(false);
    expect(isChangeHint(null)).toBe(false);
    expect(isChangeHint('trunk.status')).toBe(false);
  });

  it('match their resource, for one id or any; a hint without an id matches every id', () => {
    const anyTrunk = hintsAbout('trunk.status');
    expect(anyTrunk({ resource: 'trunk.status', id: 't1' })).toBe(true);
    expect(anyTrunk({ resource: 'trunk.status', id: null })).toBe(true);
    expect(anyTrunk({ resource: 'agent.registration', id: 't1' })).toBe(false);
    const agentA = hintsAbout('agent.registration', 'a');
    expect(agentA({ resource: 'agent.registration', id: 'a' })).toBe(true);
    expect(agentA({ resource: 'agent.registration', id: 'b' })).toBe(false);
    expect(agentA({ resource: 'agent.registration', id: null })).toBe(true);
  });
});

describe('agent events', () => {
  it('a list follows every status and call event, nothing else', () => {
    const any = agentEvents();
    expect(any(event('agent.status_changed', { agent_id: 'a', previous: 'available', status: 'on_call', reason: null }))).toBe(true);
    expect(any(event('agent.paused', { agent_id: 'b', reason: 'lunch' }))).toBe(true);
    expect(any(event('call.answered', { call_id: 'c', sequence: 2, agent_id: 'a' }))).toBe(true);
    expect(any(event('call.ended', { call_id: 'c', sequence: 3 }))).toBe(true);
    expect(any(event('queue.entered', { call_id: 'c', sequence: 1, queue_id: 'q', position: 1 }))).toBe(false);
    expect(any(event('call.recorded', {}))).toBe(false);
  });

  it('one agent’s page follows only that agent (and call ends, which name nobody)', () => {
    const a = agentEvents('a');
    expect(a(event('agent.status_changed', { agent_id: 'a' }))).toBe(true);
    expect(a(event('agent.status_changed', { agent_id: 'b' }))).toBe(false);
    expect(a(event('agent.paused', { agent_id: 'b', reason: 'x' }))).toBe(false);
    expect(a(event('call.answered', { agent_id: 'a' }))).toBe(true);
    expect(a(event('call.answered', { agent_id: null }))).toBe(false);
    expect(a(event('call.transferred', { from_agent_id: 'a' }))).toBe(true);
    expect(a(event('call.transferred', { from_agent_id: 'b' }))).toBe(false);
    expect(a(event('call.ended', {}))).toBe(true);
  });

  it('agentInterest combines registration hints and status events', () => {
    const i = agentInterest('a');
    expect(i.hint?.({ resource: 'agent.registration', id: 'a' })).toBe(true);
    expect(i.hint?.({ resource: 'agent.registration', id: 'b' })).toBe(false);
    expect(i.hint?.({ resource: 'trunk.status', id: 'a' })).toBe(false);
    expect(i.event?.(event('agent.paused', { agent_id: 'a', reason: 'x' }))).toBe(true);
  });
});

describe('the reload coalescer', () => {
  it('turns a burst into one reload, COALESCE_MS after the first request', () => {
    const t = fakeTimers();
    let reloads = 0;
    const c = createCoalescer(() => reloads++, COALESCE_MS, t.timers);
    c.request();
    t.advance(100);
    c.request();
    c.request();
    t.advance(COALESCE_MS - 101);
    expect(reloads).toBe(0);
    t.advance(1);
    expect(reloads).toBe(1);
    // A burst that never stops still reloads every COALESCE_MS, not never.
    for (let i = 0; i < 10; i++) {
      c.request();
      t.advance(50);
    }
    expect(reloads).toBe(3);
    t.advance(COALESCE_MS);
    expect(reloads).toBe(3);
    expect(t.pending()).toBe(0);
  });

  it('does nothing without a request', () => {
    const t = fakeTimers();
    let reloads = 0;
    createCoalescer(() => reloads++, COALESCE_MS, t.timers);
    t.advance(10_000);
    expect(reloads).toBe(0);
  });

  it('keeps requests while paused and serves them once when every pause is lifted', () => {
    const t = fakeTimers();
    let reloads = 0;
    const c = createCoalescer(() => reloads++, COALESCE_MS, t.timers);
    c.request();
    t.advance(100);
    // A dialog opens before the timer fires: nothing reloads under it.
    c.setPaused('page', true);
    c.request();
    t.advance(10_000);
    expect(reloads).toBe(0);
    c.setPaused('hidden', true);
    c.setPaused('page', false);
    t.advance(10_000);
    expect(reloads).toBe(0);
    c.setPaused('hidden', false);
    t.advance(COALESCE_MS);
    expect(reloads).toBe(1);
    // Lifting a pause with nothing pending reloads nothing.
    c.setPaused('page', true);
    c.setPaused('page', false);
    t.advance(10_000);
    expect(reloads).toBe(1);
  });

  it('forgets everything once disposed', () => {
    const t = fakeTimers();
    let reloads = 0;
    const c = createCoalescer(() => reloads++, COALESCE_MS, t.timers);
    c.request();
    c.dispose();
    t.advance(10_000);
    c.request();
    t.advance(10_000);
    expect(reloads).toBe(0);
    expect(t.pending()).toBe(0);
  });
});

describe('resynchronising on (re)connect', () => {
  it('does not reload on the first look at a live connection, only after a gap or a reconnect', () => {
    const r = createResync('connected', 1);
    expect(r('connected', 1)).toBe(false);
    expect(r('reconnecting', 1)).toBe(false);
    expect(r('reconnecting', 1)).toBe(false);
    expect(r('connected', 2)).toBe(true);
    expect(r('connected', 2)).toBe(false);
    // A reconnect the page only sees as a new id (the status never looked down) counts too.
    expect(r('connected', 3)).toBe(true);
  });

  it('reloads once the connection comes up when the page loaded without it', () => {
    const r = createResync('connecting', 0);
    expect(r('connecting', 0)).toBe(false);
    expect(r('connected', 1)).toBe(true);
    expect(r('connected', 1)).toBe(false);
  });

  it('an idle connection (none wanted) never asks for a reload by itself', () => {
    const r = createResync('idle', 0);
    expect(r('idle', 0)).toBe(false);
    expect(r('idle', 0)).toBe(false);
  });
});
