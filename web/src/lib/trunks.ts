// SIP trunk form rules (mirroring crates/api/src/routes/trunks.rs) and how a trunk's status reads.
import type { Schemas } from '../api/client';
import type { FieldErrors } from '../api/problem';
import { checkCidrList } from './cidr';
import { validateDisplayName } from './validation';

export type Trunk = Schemas['TrunkOut'];
export type TrunkIn = Schemas['TrunkIn'];
export type TrunkPatch = Schemas['TrunkPatch'];
export type Transport = 'udp' | 'tcp' | 'tls';

export const TRANSPORTS: readonly { value: Transport; label: string }[] = [
  { value: 'udp', label: 'UDP' },
  { value: 'tcp', label: 'TCP' },
  { value: 'tls', label: 'TLS' },
];

export function defaultPort(transport: string): number {
  return transport === 'tls' ? 5061 : 5060;
}

/** "sip.carrier.com:5060 · UDP" */
export function formatCarrier(t: { host: string; port: number; transport: string }): string {
  const host = t.host.includes(':') && !t.host.startsWith('[') ? `[${t.host}]` : t.host;
  return `${host}:${t.port} · ${t.transport.toUpperCase()}`;
}

export interface TrunkForm {
  name: string;
  host: string;
  /** Empty: the transport's default. */
  port: string;
  transport: Transport;
  /** One network per row; empty rows are ignored. */
  cidrs: string[];
  username: string;
  /** Empty on edit: keep the saved password. */
  password: string;
  /** Edit only: drop the saved password. */
  removePassword: boolean;
  register: boolean;
  keepalive: boolean;
}

export function emptyTrunkForm(): TrunkForm {
  return {
    name: '',
    host: '',
    port: '',
    transport: 'udp',
    cidrs: [''],
    username: '',
    password: '',
    removePassword: false,
    register: false,
    keepalive: true,
  };
}

export function trunkToForm(t: Trunk): TrunkForm {
  return {
    name: t.name,
    host: t.host,
    port: t.port === defaultPort(t.transport) ? '' : String(t.port),
    transport: (['udp', 'tcp', 'tls'].includes(t.transport) ? t.transport : 'udp') as Transport,
    cidrs: t.allowed_cidrs.length ? [...t.allowed_cidrs] : [''],
    username: t.username ?? '',
    password: '',
    removePassword: false,
    register: t.register,
    keepalive: t.keepalive,
  };
}

export function validHost(host: string): boolean {
  const h = host.trim();
  const bare = h.replace(/^\[/, '').replace(/\]$/, '');
  if (/^[0-9a-fA-F:.]+$/.test(bare) && (bare.includes(':') || /^\d+(\.\d+){3}$/.test(bare))) {
    // An IP literal: let the server decide on the finer points.
    return bare.includes(':') || bare.split('.').every((p) => Number(p) <= 255);
  }
  return (
    h.length > 0 &&
    h.length <= 253 &&
    h.split('.').every((l) => l.length > 0 && l.length <= 63 && /^[A-Za-z0-9-]+$/.test(l))
  );
}

/** Whether the saved password survives this form (edit) or one is typed (create). */
function willHavePassword(form: TrunkForm, existing?: Trunk): boolean {
  if (!form.username.trim()) return false;
  if (form.password) return true;
  return Boolean(existing?.has_password) && !form.removePassword && Boolean(existing?.username);
}

export function validateTrunk(form: TrunkForm, existing?: Trunk): FieldErrors {
  const errors: FieldErrors = {};
  const name = validateDisplayName(form.name, { required: true });
  if (name) errors.name = name === 'Enter a name.' ? 'Enter a name, e.g. the carrier’s.' : name;
  if (!form.host.trim()) errors.host = 'Enter the carrier’s host name or IP address.';
  else if (!validHost(form.host)) errors.host = 'Use a host name like sip.carrier.com or an IP address, without port or scheme.';
  if (form.port.trim()) {
    const n = Number(form.port.trim());
    if (!/^\d+$/.test(form.port.trim()) || n < 1 || n > 65535) errors.port = 'Use a port between 1 and 65535, or leave it empty.';
  }
  const cidrs = checkCidrList(form.cidrs);
  for (const [row, message] of Object.entries(cidrs.rowErrors)) errors[`cidr-${row}`] = message;
  if (cidrs.listError) errors.allowed_cidrs = cidrs.listError;
  const username = form.username.trim();
  // eslint-disable-next-line no-control-regex
  if (username.length > 128 || /[\u0000-\u001f\u007f]/.test(username)) errors.username = 'Use at most 128 printable characters.';
  if (form.password.length > 128) errors.password = 'Use at most 128 characters.';
  if (form.password && !username) errors.username = 'A password needs a user name.';
  if (form.register && !(username && willHavePassword(form, existing))) {
    errors.register = 'Registering needs a user name and a password.';
  }
  return errors;
}

/** The POST body for a new trunk. */
export function trunkBody(form: TrunkForm): TrunkIn {
  const { values } = checkCidrList(form.cidrs);
  return {
    name: form.name.trim(),
    host: form.host.trim(),
    port: form.port.trim() ? Number(form.port.trim()) : defaultPort(form.transport),
    transport: form.transport,
    allowed_cidrs: values,
    username: form.username.trim() || null,
    password: form.username.trim() && form.password ? form.password : null,
    register: form.register,
    keepalive: form.keepalive,
  };
}

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The PATCH body: only what changed (an empty object means nothing to save). */
export function trunkPatch(form: TrunkForm, t: Trunk): TrunkPatch {
  const patch: TrunkPatch = {};
  const port = form.port.trim() ? Number(form.port.trim()) : defaultPort(form.transport);
  if (form.name.trim() !== t.name) patch.name = form.name.trim();
  if (form.host.trim().toLowerCase() !== t.host) patch.host = form.host.trim();
  if (form.transport !== t.transport) patch.transport = form.transport;
  if (port !== t.port) patch.port = port;
  const { values } = checkCidrList(form.cidrs);
  if (!sameList(values, t.allowed_cidrs)) patch.allowed_cidrs = values;
  const username = form.username.trim();
  if (username !== (t.username ?? '')) patch.username = username;
  if (username && form.password) patch.password = form.password;
  else if (username && form.removePassword && t.has_password) patch.password = '';
  if (form.register !== t.register) patch.register = form.register;
  if (form.keepalive !== t.keepalive) patch.keepalive = form.keepalive;
  return patch;
}

/**
 * Server field paths → form fields. `allowed_cidrs[i]` is the i-th entry sent, which is the row
 * `rows[i]` of the editor (empty rows are not sent).
 */
export function mapTrunkErrors(errors: FieldErrors, rows: number[]): FieldErrors {
  const out: FieldErrors = {};
  for (const [field, message] of Object.entries(errors)) {
    const m = /^allowed_cidrs\[(\d+)\]$/.exec(field);
    const key = m ? (rows[Number(m[1])] !== undefined ? `cidr-${rows[Number(m[1])]}` : 'allowed_cidrs') : field;
    out[key] = out[key] ? `${out[key]} ${message}` : message;
  }
  return out;
}

export type Tone = 'neutral' | 'accent' | 'success' | 'warning' | 'danger';

export interface StatusView {
  tone: Tone;
  label: string;
  /** Why (FAIL) or what it means (UNKNOWN). */
  detail?: string;
}

/** The OK/FAIL badge of a trunk. */
export function trunkStatusView(t: Pick<Trunk, 'status' | 'status_reason' | 'keepalive' | 'register'>): StatusView {
  switch (t.status) {
    case 'OK':
      return { tone: 'success', label: 'OK', detail: t.keepalive || t.register ? 'Answering OPTIONS' : 'Last check' };
    case 'FAIL':
      return { tone: 'danger', label: 'FAIL', detail: t.status_reason ? describeFailReason(t.status_reason) : 'No reason recorded' };
    default:
      return t.keepalive || t.register
        ? { tone: 'neutral', label: 'Checking', detail: 'First check within 10 s' }
        : { tone: 'neutral', label: 'Not monitored', detail: 'Keepalive is off' };
  }
}

/** The server's short reasons, said for people ("timeout" → what it usually means). */
export function describeFailReason(reason: string): string {
  const r = reason.trim();
  if (r === 'timeout') return 'Timeout: no answer to OPTIONS';
  if (r === 'unreachable') return 'Unreachable: the carrier’s address refused the packet';
  if (r === 'connection refused') return 'Connection refused';
  if (r.startsWith('dns:')) return `DNS: ${r.slice(4).trim()} for the host`;
  return r.charAt(0).toUpperCase() + r.slice(1);
}

/** "for 45 s", "for 3 min", "for 2 h 5 min", "for 3 days": how long a status has held. */
export function heldFor(iso: string | null | undefined, now: Date = new Date()): string | undefined {
  if (!iso) return undefined;
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return undefined;
  const s = Math.max(0, Math.round((now.getTime() - t) / 1000));
  if (s < 60) return `for ${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `for ${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `for ${h} h ${m % 60} min` : `for ${h} h`;
  const d = Math.floor(h / 24);
  return `for ${d} ${d === 1 ? 'day' : 'days'}`;
}

/** "12:04" today, "20 Nov, 12:04" another day: when a status began, kept short for a table cell. */
export function sinceLabel(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const time = d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short' })}, ${time}`;
}
