import { describe, expect, it } from 'vitest';
import { diffValues, formatValue } from './diff';

describe('audit before/after diff', () => {
  it('puts changes first and keeps unchanged fields', () => {
    const rows = diffValues({ role: 'agent', name: 'Ada', old: 1 }, { role: 'admin', name: 'Ada', new: true });
    expect(rows).toEqual([
      { key: 'role', kind: 'changed', before: 'agent', after: 'admin' },
      { key: 'new', kind: 'added', after: true },
      { key: 'old', kind: 'removed', before: 1 },
      { key: 'name', kind: 'unchanged', before: 'Ada', after: 'Ada' },
    ]);
  });

  it('shows a creation as all-added and flattens nested objects', () => {
    expect(diffValues(null, { a: { b: 1, c: [1, 2] } })).toEqual([
      { key: 'a.b', kind: 'added', after: 1 },
      { key: 'a.c', kind: 'added', after: [1, 2] },
    ]);
  });

  it('handles plain values and nothing at all', () => {
    expect(diffValues(undefined, undefined)).toEqual([]);
    expect(diffValues('x', 'y')).toEqual([{ key: '(value)', kind: 'changed', before: 'x', after: 'y' }]);
    expect(diffValues({ a: 1 }, null)).toEqual([{ key: 'a', kind: 'removed', before: 1 }]);
    expect(diffValues(null, { reason: 'bad_password' })).toEqual([{ key: 'reason', kind: 'added', after: 'bad_password' }]);
  });

  it('formats values for display', () => {
    expect(formatValue(undefined)).toBe('—');
    expect(formatValue(null)).toBe('null');
    expect(formatValue('text')).toBe('text');
    expect(formatValue({ a: 1 })).toBe('{"a":1}');
  });
});
