import { describe, expect, it } from 'vitest';
import { describeOverflow, emptyQueueForm, formatSeconds, queueBody, queuePatch, queueToForm, validateQueue, type Queue } from './queues';

const queue: Queue = {
  id: 'q1',
  name: 'Support',
  ring_timeout_secs: 20,
  max_wait_secs: 300,
  overflow_type: 'queue',
  overflow_id: 'q2',
  record_calls: true,
  music_on_hold: null,
  created_at: '2026-05-20T09:00:00Z',
  updated_at: '2026-05-20T09:00:00Z',
};

describe('queue form', () => {
  it('starts from the server defaults and accepts them', () => {
    const f = { ...emptyQueueForm(), name: 'Support' };
    expect(validateQueue(f)).toEqual({});
    expect(queueBody(f)).toEqual({
      name: 'Support',
      ring_timeout_secs: 20,
      max_wait_secs: 300,
      overflow_type: 'none',
      overflow_id: null,
      record_calls: false,
      music_on_hold: null,
    });
  });

  it('names out-of-range timings and missing overflow targets', () => {
    const e = validateQueue({ ...emptyQueueForm(), name: '', ring_timeout_secs: '4', max_wait_secs: '90000', overflow_type: 'agent' });
    expect(e.name).toMatch(/Enter a name/);
    expect(e.ring_timeout_secs).toBe('Use 5 to 300 seconds.');
    expect(e.max_wait_secs).toMatch(/10 seconds to 24 hours/);
    expect(e.overflow_id).toMatch(/agent/);
    expect(validateQueue({ ...queueToForm(queue), overflow_id: 'q1' }, queue).overflow_id).toMatch(/itself/);
    expect(validateQueue({ ...queueToForm(queue), ring_timeout_secs: '2.5' }).ring_timeout_secs).toBeDefined();
    expect(validateQueue({ ...queueToForm(queue), music_on_hold: 'moh.wav' }).music_on_hold).toMatch(/absolute path/);
    expect(validateQueue({ ...queueToForm(queue), music_on_hold: '/srv/../etc/x.wav' }).music_on_hold).toBeDefined();
  });

  it('patches only what changed; hang-up drops the target', () => {
    expect(queuePatch(queueToForm(queue), queue)).toEqual({});
    expect(queuePatch({ ...queueToForm(queue), overflow_type: 'hangup' }, queue)).toEqual({ overflow_type: 'hangup' });
    expect(queuePatch({ ...queueToForm(queue), overflow_id: 'q3', record_calls: false }, queue)).toEqual({
      overflow_type: 'queue',
      overflow_id: 'q3',
      record_calls: false,
    });
  });

  it('says what happens to a caller who waits too long', () => {
    const names = (id: string) => ({ q2: 'Support L2', u1: 'Ada' })[id];
    expect(describeOverflow(queue, names)).toBe('After 5 min: move to Support L2');
    expect(describeOverflow({ ...queue, overflow_type: 'agent', overflow_id: 'u1', max_wait_secs: 90 }, names)).toBe('After 1 min 30 s: ring Ada');
    expect(describeOverflow({ ...queue, overflow_type: 'hangup', max_wait_secs: 3600 }, names)).toBe('After 1 h: hang up');
    expect(describeOverflow({ ...queue, overflow_type: 'none' }, names)).toBe('No overflow: callers keep waiting');
  });

  it('formats seconds', () => {
    expect(formatSeconds(45)).toBe('45 s');
    expect(formatSeconds(300)).toBe('5 min');
    expect(formatSeconds(5400)).toBe('1 h 30 min');
    expect(formatSeconds(86400)).toBe('1 day');
  });
});
