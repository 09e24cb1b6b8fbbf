import { describe, expect, it } from 'vitest';
import { canTakeCalls, statusRank, statusView, validateStatusChange } from './agentStatus';

describe('agent status', () => {
  it('maps each status to a badge, with the break reason', () => {
    expect(statusView('available')).toEqual({ tone: 'success', label: 'Available', text: 'Available' });
    expect(statusView('on_call')).toMatchObject({ tone: 'accent', label: 'On call' });
    expect(statusView('on_break', ' Lunch ')).toEqual({ tone: 'warning', label: 'On break', text: 'On break · Lunch' });
    expect(statusView('logged_out', 'ignored').text).toBe('Logged out');
    expect(statusView(undefined).label).toBe('Logged out');
  });

  it('needs a reason for a break, and never sets on call by hand', () => {
    expect(validateStatusChange('available', '')).toEqual({});
    expect(validateStatusChange('on_break', '  ').reason).toMatch(/Say why/);
    expect(validateStatusChange('on_break', 'x'.repeat(101)).reason).toMatch(/100/);
    expect(validateStatusChange('on_break', 'Lunch')).toEqual({});
    expect(validateStatusChange('on_call', '').status).toBeDefined();
  });

  it('takes calls only when available, registered and enabled', () => {
    const a = { status: 'available' as const, disabled: false, registration: { state: 'green' } };
    expect(canTakeCalls(a)).toBe(true);
    expect(canTakeCalls({ ...a, registration: { state: 'red' } })).toBe(false);
    expect(canTakeCalls({ ...a, status: 'on_break' })).toBe(false);
    expect(canTakeCalls({ ...a, disabled: true })).toBe(false);
    expect([statusRank('logged_out'), statusRank('on_break'), statusRank('on_call'), statusRank('available')]).toEqual([3, 2, 1, 0]);
  });
});
