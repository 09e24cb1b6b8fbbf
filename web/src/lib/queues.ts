// ACD queue form rules (mirroring crates/api/src/routes/queues.rs) and how a queue reads.
import type { Schemas } from '../api/client';
import type { FieldErrors } from '../api/problem';
import { validateDisplayName } from './validation';

export type Queue = Schemas['QueueOut'];
export type OverflowType = Schemas['OverflowType'];
export type Member = Schemas['MemberOut'];

export const RING_TIMEOUT = { min: 5, max: 300, default: 20 };
export const MAX_WAIT = { min: 10, max: 86_400, default: 300 };

export const OVERFLOW_LABELS: Record<OverflowType, string> = {
  none: 'Keep waiting',
  queue: 'Move to another queue',
  agent: 'Ring one agent',
  hangup: 'Hang up',
};

/** "45 s", "5 min", "1 h 30 min", "1 day" — for seconds shown in tables. */
export function formatSeconds(total: number): string {
  if (total < 60) return `${total} s`;
  if (total < 3600) return total % 60 ? `${Math.floor(total / 60)} min ${total % 60} s` : `${total / 60} min`;
  if (total < 86_400) {
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    return m ? `${h} h ${m} min` : `${h} h`;
  }
  const d = Math.floor(total / 86_400);
  const h = Math.floor((total % 86_400) / 3600);
  return `${d} ${d === 1 ? 'day' : 'days'}${h ? ` ${h} h` : ''}`;
}

export interface QueueForm {
  name: string;
  ring_timeout_secs: string;
  max_wait_secs: string;
  overflow_type: OverflowType;
  overflow_id: string;
  record_calls: boolean;
  music_on_hold: string;
}

export function emptyQueueForm(): QueueForm {
  return {
    name: '',
    ring_timeout_secs: String(RING_TIMEOUT.default),
    max_wait_secs: String(MAX_WAIT.default),
    overflow_type: 'none',
    overflow_id: '',
    record_calls: false,
    music_on_hold: '',
  };
}

export function queueToForm(q: Queue): QueueForm {
  return {
    name: q.name,
    ring_timeout_secs: String(q.ring_timeout_secs),
    max_wait_secs: String(q.max_wait_secs),
    overflow_type: q.overflow_type,
    overflow_id: q.overflow_id ?? '',
    record_calls: q.record_calls,
    music_on_hold: q.music_on_hold ?? '',
  };
}

function intIn(text: string, min: number, max: number): number | undefined {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n >= min && n <= max ? n : undefined;
}

export function validateQueue(form: QueueForm, self?: Queue): FieldErrors {
  const errors: FieldErrors = {};
  const name = validateDisplayName(form.name, { required: true });
  if (name) errors.name = name === 'Enter a name.' ? 'Enter a name, e.g. Support.' : name;
  if (intIn(form.ring_timeout_secs, RING_TIMEOUT.min, RING_TIMEOUT.max) === undefined) {
    errors.ring_timeout_secs = `Use ${RING_TIMEOUT.min} to ${RING_TIMEOUT.max} seconds.`;
  }
  if (intIn(form.max_wait_secs, MAX_WAIT.min, MAX_WAIT.max) === undefined) {
    errors.max_wait_secs = `Use ${MAX_WAIT.min} seconds to 24 hours (${MAX_WAIT.max.toLocaleString('en-GB')} seconds).`;
  }
  if (form.overflow_type === 'queue') {
    if (!form.overflow_id) errors.overflow_id = 'Choose the queue calls move to.';
    else if (self && form.overflow_id === self.id) errors.overflow_id = 'A queue cannot overflow to itself.';
  }
  if (form.overflow_type === 'agent' && !form.overflow_id) errors.overflow_id = 'Choose the agent who gets the call.';
  const moh = form.music_on_hold.trim();
  if (moh && (!moh.startsWith('/') || !moh.toLowerCase().endsWith('.wav') || moh.split('/').includes('..'))) {
    errors.music_on_hold = 'Use the absolute path of a .wav file on the server, like /var/lib/sivo/moh.wav.';
  }
  return errors;
}

const needsTarget = (t: OverflowType) => t === 'queue' || t === 'agent';

export function queueBody(form: QueueForm): Schemas['QueueIn'] {
  return {
    name: form.name.trim(),
    ring_timeout_secs: Number(form.ring_timeout_secs.trim()),
    max_wait_secs: Number(form.max_wait_secs.trim()),
    overflow_type: form.overflow_type,
    overflow_id: needsTarget(form.overflow_type) ? form.overflow_id || null : null,
    record_calls: form.record_calls,
    music_on_hold: form.music_on_hold.trim() || null,
  };
}

export function queuePatch(form: QueueForm, q: Queue): Schemas['QueuePatch'] {
  const patch: Schemas['QueuePatch'] = {};
  if (form.name.trim() !== q.name) patch.name = form.name.trim();
  const ring = Number(form.ring_timeout_secs.trim());
  if (ring !== q.ring_timeout_secs) patch.ring_timeout_secs = ring;
  const wait = Number(form.max_wait_secs.trim());
  if (wait !== q.max_wait_secs) patch.max_wait_secs = wait;
  const target = needsTarget(form.overflow_type) ? form.overflow_id || null : null;
  if (form.overflow_type !== q.overflow_type || target !== (q.overflow_id ?? null)) {
    patch.overflow_type = form.overflow_type;
    if (target) patch.overflow_id = target;
  }
  if (form.record_calls !== q.record_calls) patch.record_calls = form.record_calls;
  const moh = form.music_on_hold.trim();
  if (moh !== (q.music_on_hold ?? '')) patch.music_on_hold = moh;
  return patch;
}

/** "After 5 min: move to Support L2" — what happens to a caller who waits too long. */
export function describeOverflow(q: Pick<Queue, 'max_wait_secs' | 'overflow_type' | 'overflow_id'>, names: (id: string) => string | undefined): string {
  const after = `After ${formatSeconds(q.max_wait_secs)}`;
  switch (q.overflow_type) {
    case 'queue':
      return `${after}: move to ${names(q.overflow_id ?? '') ?? 'another queue'}`;
    case 'agent':
      return `${after}: ring ${names(q.overflow_id ?? '') ?? 'an agent'}`;
    case 'hangup':
      return `${after}: hang up`;
    default:
      return 'No overflow: callers keep waiting';
  }
}
