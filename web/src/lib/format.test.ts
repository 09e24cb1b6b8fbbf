import { describe, expect, it } from 'vitest';
import { formatRelative, localInputToRfc3339, rfc3339ToLocalInput } from './format';

describe('time formatting', () => {
  const now = new Date('2026-01-01T12:00:00Z');
  it('relative times', () => {
    expect(formatRelative(null)).toBe('never');
    expect(formatRelative('2026-01-01T11:59:50Z', now)).toBe('just now');
    expect(formatRelative('2026-01-01T11:55:00Z', now)).toMatch(/5 minutes ago/);
    expect(formatRelative('2026-01-01T09:00:00Z', now)).toMatch(/3 hours ago/);
    expect(formatRelative('not a date', now)).toBe('not a date');
  });

  it('datetime-local round trip', () => {
    const local = rfc3339ToLocalInput('2026-03-04T05:06:00Z');
    expect(local).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/);
    expect(localInputToRfc3339(local)).toBe('2026-03-04T05:06:00.000Z');
    expect(localInputToRfc3339('')).toBeUndefined();
    expect(rfc3339ToLocalInput(null)).toBe('');
  });
});
