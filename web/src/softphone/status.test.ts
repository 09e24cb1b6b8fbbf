import { describe, expect, it } from 'vitest';
import type { SivoEvent } from '../realtime/events';
import { applyStatusEvent, breakReasonError, fromApi, idleHint, newer, type MyStatus } from './status';

const ME = '0190f3c2-0000-7000-8000-0000000000aa';
const changed = (agent: string, status: 'available' | 'on_break' | 'logged_out' | 'on_call', at: string, reason: string | null = null): SivoEvent => ({
  id: `e-${at}`,
  type: 'agent.status_changed',
  tenant_id: 't',
  created_at: at,
  data: { agent_id: agent, previous: 'available', status, reason },
});

describe('my status', () => {
  it('reads the API answer', () => {
    expect(fromApi({ agent_id: ME, status: 'on_break', pause_reason: 'Lunch', changed_at: '2026-01-01T12:00:00Z' })).toEqual({
      status: 'on_break',
      reason: 'Lunch',
      changedAt: '2026-01-01T12:00:00Z',
    });
  });

  it('follows pushed events about me only, and never goes back in time', () => {
    let s: MyStatus | null = { status: 'available', reason: null, changedAt: '2026-01-01T12:00:00Z' };
    s = applyStatusEvent(s, changed('someone-else', 'logged_out', '2026-01-01T12:05:00Z'), ME);
    expect(s?.status).toBe('available');
    s = applyStatusEvent(s, changed(ME, 'on_call', '2026-01-01T12:01:00Z'), ME);
    expect(s).toEqual({ status: 'on_call', reason: null, changedAt: '2026-01-01T12:01:00Z' });
    // A late event from before is ignored.
    expect(applyStatusEvent(s, changed(ME, 'logged_out', '2026-01-01T11:59:00Z'), ME)).toBe(s);
    s = applyStatusEvent(
      s,
      { id: 'p', type: 'agent.paused', tenant_id: 't', created_at: '2026-01-01T12:02:00Z', data: { agent_id: ME, reason: 'Coffee' } },
      ME,
    );
    expect(s).toMatchObject({ status: 'on_break', reason: 'Coffee' });
    // Nothing known yet: any event about me is taken.
    expect(applyStatusEvent(null, changed(ME, 'available', '2026-01-01T10:00:00Z'), ME)?.status).toBe('available');
    expect(newer(null, { status: 'logged_out', reason: null, changedAt: null }).status).toBe('logged_out');
  });

  it('wants a short printable break reason', () => {
    expect(breakReasonError('  ')).toMatch(/Say why/);
    expect(breakReasonError('x'.repeat(101))).toMatch(/100/);
    expect(breakReasonError('Lunch')).toBeNull();
  });

  it('tells the agent whether calls can come', () => {
    expect(idleHint('available', true)).toMatch(/Waiting for calls/);
    expect(idleHint('on_break', true)).toMatch(/break/);
    expect(idleHint('available', false)).toMatch(/not registered|until the softphone is registered/);
  });
});
