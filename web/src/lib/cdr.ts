// CDRs: filters, durations, and the "Technical" tab. The legs, timeline and recording are free
// JSON written by the call engine (SIP responses, codecs, RTP counters, transcription_* and
// sf_push_error events…), so they are read defensively: known fields get their place, anything
// else is still shown as key/value pairs rather than dropped.
import type { Schemas } from '../api/client';
import type { FieldErrors } from '../api/problem';

export type Cdr = Schemas['Cdr'];

export interface CdrFilters {
  from: string;
  to: string;
  direction: '' | 'inbound' | 'outbound';
  agent_id: string;
  queue_id: string;
  number: string;
  did: string;
  hangup_cause: string;
}

export const EMPTY_CDR_FILTERS: CdrFilters = { from: '', to: '', direction: '', agent_id: '', queue_id: '', number: '', did: '', hangup_cause: '' };

export function readCdrFilters(params: URLSearchParams): CdrFilters {
  const direction = params.get('direction');
  return {
    from: params.get('from') ?? '',
    to: params.get('to') ?? '',
    direction: direction === 'inbound' || direction === 'outbound' ? direction : '',
    agent_id: params.get('agent_id') ?? '',
    queue_id: params.get('queue_id') ?? '',
    number: params.get('number') ?? '',
    did: params.get('did') ?? '',
    hangup_cause: params.get('hangup_cause') ?? '',
  };
}

export function validateCdrFilters(f: CdrFilters): FieldErrors {
  const errors: FieldErrors = {};
  if (f.from && f.to && new Date(f.from) >= new Date(f.to)) errors.to = 'Must be after “From”.';
  if (f.number && !/^[+\d\s\-()]+$/.test(f.number)) errors.number = 'Digits only (part of the caller’s or dialled number).';
  if (f.did && !/^\+\d{2,15}$/.test(f.did.replace(/[\s\-()]/g, ''))) errors.did = 'A DID in E.164, like +49301234567.';
  if (f.hangup_cause && !/^[a-z0-9_]+$/i.test(f.hangup_cause)) errors.hangup_cause = 'A cause like normal_clearing or cancelled.';
  for (const k of ['number', 'did', 'hangup_cause'] as const) if (f[k].length > 64) errors[k] = 'Use at most 64 characters.';
  return errors;
}

/** The query for GET /api/v1/cdrs: empty filters are left out; numbers lose their spaces. */
export function cdrQuery(f: CdrFilters) {
  return {
    from: f.from || undefined,
    to: f.to || undefined,
    direction: f.direction || undefined,
    agent_id: f.agent_id || undefined,
    queue_id: f.queue_id || undefined,
    number: f.number.replace(/\D/g, '') || undefined,
    did: f.did.replace(/[\s\-()]/g, '') || undefined,
    hangup_cause: f.hangup_cause.trim() || undefined,
  };
}

/** 65 000 → "1:05", 3 725 000 → "1:02:05". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** "normal_clearing" → "Normal clearing". */
export function humanize(key: string): string {
  const t = key.replace(/[_.]+/g, ' ').trim();
  return t.charAt(0).toUpperCase() + t.slice(1);
}

export const HANGUP_SIDE_LABELS: Record<string, string> = { caller: 'Caller hung up', agent: 'Agent hung up', callee: 'Called party hung up', system: 'SIVO ended it' };

/** How the call ended, in words: "Answered · Caller hung up", "Abandoned in queue". */
export function outcome(c: Pick<Cdr, 'answered_at' | 'queued_at' | 'hangup_cause' | 'hangup_side'>): { label: string; tone: 'success' | 'warning' | 'danger' | 'neutral' } {
  if (c.answered_at) return { label: 'Answered', tone: 'success' };
  if (c.queued_at) return { label: 'Abandoned', tone: 'warning' };
  if (c.hangup_cause && c.hangup_cause !== 'normal_clearing') return { label: humanize(c.hangup_cause), tone: 'danger' };
  return { label: 'Not answered', tone: 'neutral' };
}

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };
const isObj = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

function pick(o: Record<string, Json>, keys: string[]): Json | undefined {
  for (const k of keys) if (o[k] !== undefined && o[k] !== null && o[k] !== '') return o[k];
  return undefined;
}

const KEY_LABELS: Record<string, string> = {
  sip_call_id: 'SIP Call-ID',
  'rtp.dtmf_received': 'DTMF received',
  'rtp.bytes_sent': 'Bytes sent',
  'rtp.bytes_received': 'Bytes received',
  payload_type: 'Payload type',
};

/** A field name for people: "sip_call_id" → "SIP Call-ID", "queue_id" → "Queue id". */
export function keyLabel(key: string): string {
  return KEY_LABELS[key] ?? humanize(key.split('.').pop() ?? key);
}

/** A value for a table cell: numbers grouped, objects as compact JSON. */
export function formatValue(v: Json | undefined): string {
  if (v === undefined || v === null) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-GB') : v.toLocaleString('en-GB', { maximumFractionDigits: 2 });
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** Nested objects → dotted keys: {rtp: {lost: 3}} → [["rtp.lost", 3]]. */
export function flatten(o: Record<string, Json>, prefix = ''): [string, Json][] {
  const out: [string, Json][] = [];
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isObj(v)) out.push(...flatten(v, key));
    else out.push([key, v]);
  }
  return out;
}

export interface RtpView {
  sent?: number;
  received?: number;
  lost?: number;
  /** Lost ÷ (received + lost), in percent. */
  lossPct?: number;
  jitterMs?: number;
  rtcp?: number;
  bytesSent?: number;
  bytesReceived?: number;
}

export interface LegView {
  title: string;
  role?: string;
  /** The agent's user id, for agent legs (the page shows the name). */
  agentId?: string;
  extension?: string;
  transport?: string;
  /** How the leg ended: answered, busy, no_answer, cancelled… */
  outcome?: string;
  codec?: string;
  remote?: string;
  rtp: RtpView;
  /** Everything not shown above. */
  extra: [string, Json][];
}

const num = (v: Json | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

const LEG_KNOWN = new Set([
  'id', 'leg', 'leg_id', 'name', 'label', 'role', 'party', 'kind', 'codec', 'codecs', 'negotiated_codec', 'remote', 'remote_addr', 'peer',
  'packets_sent', 'packets_received', 'packets_lost', 'jitter_ms', 'rtcp_received', 'bytes_sent', 'bytes_received', 'extension',
  'agent_id', 'transport', 'outcome',
]);

/** Merges objects left to right, skipping null and undefined (a null top-level codec keeps the RTP one). */
function merge(...objs: Record<string, Json>[]): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const o of objs) for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

export function legView(raw: unknown, index: number): LegView {
  const o = isObj(raw) ? raw : { value: raw as Json };
  // Media counters may sit at the top or under rtp / stats / media.
  const nested = ['rtp', 'stats', 'media'].map((k) => o[k]).filter(isObj);
  const all = merge(...nested.reverse(), o);
  const codecRaw = pick(all, ['codec', 'negotiated_codec', 'codecs']);
  const codec = Array.isArray(codecRaw) ? codecRaw.map((c) => formatValue(c)).join(', ') : codecRaw === undefined ? undefined : formatValue(codecRaw);
  const sent = num(all.packets_sent);
  const received = num(all.packets_received);
  const lost = num(all.packets_lost);
  const denominator = (received ?? 0) + (lost ?? 0);
  const role = pick(o, ['role', 'party', 'kind']);
  const title = pick(o, ['name', 'label', 'leg', 'id', 'leg_id']);
  const str = (v: Json | undefined) => (v === undefined || v === null ? undefined : formatValue(v));
  const extra = flatten(o).filter(([k, v]) => {
    const top = k.split('.')[0]!;
    const leaf = k.split('.').pop()!;
    if (LEG_KNOWN.has(k)) return false;
    if (v === null || v === '') return false;
    return !(['rtp', 'stats', 'media'].includes(top) && LEG_KNOWN.has(leaf));
  });
  return {
    title: title !== undefined ? (typeof title === 'string' && /^[a-z_]+$/.test(title) ? humanize(title) : formatValue(title)) : `Leg ${index + 1}`,
    role: role !== undefined ? formatValue(role) : undefined,
    agentId: typeof o.agent_id === 'string' ? o.agent_id : undefined,
    extension: str(o.extension),
    transport: str(o.transport)?.toUpperCase(),
    outcome: str(o.outcome),
    codec,
    remote: pick(all, ['remote', 'remote_addr', 'peer']) !== undefined ? formatValue(pick(all, ['remote', 'remote_addr', 'peer'])) : undefined,
    rtp: {
      sent,
      received,
      lost,
      lossPct: lost !== undefined && denominator > 0 ? (lost / denominator) * 100 : undefined,
      jitterMs: num(all.jitter_ms),
      rtcp: num(all.rtcp_received),
      bytesSent: num(all.bytes_sent),
      bytesReceived: num(all.bytes_received),
    },
    extra,
  };
}

export type TimelineKind = 'sip' | 'media' | 'queue' | 'transcription' | 'error' | 'event';

export interface TimelineItem {
  at?: Date;
  /** "+12.345 s" from the call's start. */
  offset?: string;
  label: string;
  kind: TimelineKind;
  leg?: string;
  details: [string, Json][];
}

const TIME_KEYS = ['at', 'time', 'ts', 'timestamp'];
const LABEL_KEYS = ['message', 'event', 'type', 'name', 'sip', 'kind'];

const KIND_MAP: Record<string, TimelineKind> = { sip: 'sip', codec: 'media', media: 'media', rtp: 'media', queue: 'queue', transcription: 'transcription' };

function kindOf(label: string, o: Record<string, Json>): TimelineKind {
  const l = label.toLowerCase();
  // SIP failures (4xx–6xx answers) and things that went wrong are errors whatever the entry's kind.
  if (/^[456]\d\d\b|not reachable|refused|expired|timeout|error|fail/.test(l)) return 'error';
  if (typeof o.kind === 'string' && KIND_MAP[o.kind]) return KIND_MAP[o.kind]!;
  if (typeof o.kind === 'string' && /^transcription|^sf_/.test(o.kind)) return 'transcription';
  if (/error|fail|timeout/.test(l) || o.error !== undefined) return 'error';
  if (l.startsWith('transcription') || l.startsWith('sf_')) return 'transcription';
  if (o.sip !== undefined || /^(sip|invite|ack|bye|cancel|refer|register|options|\d{3}\b)/.test(l)) return 'sip';
  if (o.rtp !== undefined || o.codec !== undefined || /rtp|codec|media|dtmf|record/.test(l)) return 'media';
  if (/queue|agent|answer|transfer|overflow/.test(l)) return 'queue';
  return 'event';
}

export function timelineView(raw: unknown, callStart: string): TimelineItem[] {
  const list = Array.isArray(raw) ? raw : [];
  const start = new Date(callStart).getTime();
  return list.map((entry) => {
    let o: Record<string, Json> = isObj(entry) ? entry : { event: entry as Json };
    // The call engine's shape: {at, leg, kind, detail: {message, …}} — the message is the label,
    // the rest of the detail its key/value pairs, the kind a category.
    if (isObj(o.detail)) {
      const { detail, ...rest } = o;
      const { message, ...more } = detail as Record<string, Json>;
      o = { ...rest, ...(message !== undefined ? { message } : {}), ...more };
      if (message === undefined && typeof rest.kind === 'string') o = { ...o, event: rest.kind === 'codec' ? 'codec negotiated' : rest.kind };
    }
    const time = pick(o, TIME_KEYS);
    const at = typeof time === 'string' || typeof time === 'number' ? new Date(time) : undefined;
    const valid = at && !Number.isNaN(at.getTime()) ? at : undefined;
    const labelKey = LABEL_KEYS.find((k) => o[k] !== undefined && o[k] !== null && !isObj(o[k]));
    let label = labelKey ? formatValue(o[labelKey]) : undefined;
    if (labelKey === 'sip' && label && o.direction !== undefined) label = `${label} (${formatValue(o.direction)})`;
    const legRaw = pick(o, ['leg', 'leg_id']);
    const used = new Set([...TIME_KEYS, ...(labelKey ? [labelKey] : []), 'leg', 'leg_id', 'kind', ...(labelKey === 'sip' ? ['direction'] : [])]);
    const details = flatten(Object.fromEntries(Object.entries(o).filter(([k]) => !used.has(k))));
    if (!label) {
      // {"rtp": {...}} — name the entry after its only object.
      const objKey = Object.keys(o).find((k) => isObj(o[k]));
      label = objKey ? humanize(objKey) : 'Event';
    }
    const offsetMs = valid && !Number.isNaN(start) ? valid.getTime() - start : undefined;
    return {
      at: valid,
      offset: offsetMs !== undefined ? `${offsetMs < 0 ? '−' : '+'}${(Math.abs(offsetMs) / 1000).toFixed(3)} s` : undefined,
      label,
      kind: kindOf(label, o),
      leg: legRaw !== undefined ? formatValue(legRaw) : undefined,
      details,
    };
  });
}

export interface RecordingView {
  url?: string;
  channels?: number;
  durationMs?: number;
  bytes?: number;
  format?: string;
  expiresAt?: string;
}

export function recordingView(raw: unknown): RecordingView | null {
  if (!isObj(raw)) return null;
  const url = pick(raw, ['url', 'download_url', 'signed_url', 'href']);
  const safeUrl = typeof url === 'string' && /^(https?:\/\/|\/)/.test(url) ? url : undefined;
  const format = pick(raw, ['format', 'content_type', 'mime']);
  const expires = pick(raw, ['expires_at', 'url_expires_at']);
  return {
    url: safeUrl,
    durationMs: num(raw.duration_ms),
    bytes: num(raw.bytes ?? raw.size),
    channels: num(raw.channels),
    format: format !== undefined ? formatValue(format) : undefined,
    expiresAt: typeof expires === 'string' ? expires : undefined,
  };
}
