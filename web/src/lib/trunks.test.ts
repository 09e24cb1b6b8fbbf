import { describe, expect, it } from 'vitest';
import {
  describeFailReason,
  emptyTrunkForm,
  formatCarrier,
  heldFor,
  sinceLabel,
  mapTrunkErrors,
  trunkBody,
  trunkPatch,
  trunkStatusView,
  trunkToForm,
  validateTrunk,
  type Trunk,
  type TrunkForm,
} from './trunks';

const form = (over: Partial<TrunkForm> = {}): TrunkForm => ({
  ...emptyTrunkForm(),
  name: 'Zadarma',
  host: 'sip.zadarma.com',
  cidrs: ['185.45.152.0/24'],
  ...over,
});

const trunk: Trunk = {
  id: '0190f3c2-0000-7000-8000-000000000001',
  name: 'Zadarma',
  host: 'sip.zadarma.com',
  port: 5060,
  transport: 'udp',
  allowed_cidrs: ['185.45.152.0/24'],
  username: 'acme',
  has_password: true,
  register: true,
  keepalive: true,
  status: 'FAIL',
  status_reason: '401 bad credentials',
  status_changed_at: '2026-05-20T10:00:00Z',
  created_at: '2026-05-20T09:00:00Z',
  updated_at: '2026-05-20T09:00:00Z',
};

describe('trunk form', () => {
  it('accepts a plain carrier trunk', () => {
    expect(validateTrunk(form())).toEqual({});
  });

  it('names bad fields, with CIDR errors on their rows', () => {
    const e = validateTrunk(form({ name: ' ', host: 'sip://x', port: '70000', cidrs: ['185.45.152.0/24', 'bad', ''] }));
    expect(e.name).toMatch(/Enter a name/);
    expect(e.host).toMatch(/host name/);
    expect(e.port).toMatch(/1 and 65535/);
    expect(e['cidr-1']).toMatch(/not host names|not an IPv4/);
    expect(e['cidr-2']).toBeUndefined();
  });

  it('needs credentials to register, and a user name for a password', () => {
    expect(validateTrunk(form({ register: true })).register).toMatch(/user name and a password/);
    expect(validateTrunk(form({ register: true, username: 'acme', password: 'pw' }))).toEqual({});
    expect(validateTrunk(form({ password: 'pw' })).username).toMatch(/needs a user name/);
    // Editing a trunk that already has a password: keeping it is enough, removing it is not.
    expect(validateTrunk(trunkToForm(trunk), trunk)).toEqual({});
    expect(validateTrunk({ ...trunkToForm(trunk), removePassword: true }, trunk).register).toBeDefined();
  });

  it('builds the create body with defaults and without empty rows', () => {
    expect(trunkBody(form({ cidrs: ['185.45.152.0/24', ' ', '10.0.0.1'], transport: 'tls' }))).toEqual({
      name: 'Zadarma',
      host: 'sip.zadarma.com',
      port: 5061,
      transport: 'tls',
      allowed_cidrs: ['185.45.152.0/24', '10.0.0.1'],
      username: null,
      password: null,
      register: false,
      keepalive: true,
    });
  });

  it('patches only what changed', () => {
    expect(trunkPatch(trunkToForm(trunk), trunk)).toEqual({});
    expect(trunkPatch({ ...trunkToForm(trunk), cidrs: ['185.45.152.0/24', '185.45.153.0/24'], password: 'new' }, trunk)).toEqual({
      allowed_cidrs: ['185.45.152.0/24', '185.45.153.0/24'],
      password: 'new',
    });
    expect(trunkPatch({ ...trunkToForm(trunk), username: '', register: false }, trunk)).toEqual({ username: '', register: false });
    expect(trunkPatch({ ...trunkToForm(trunk), removePassword: true, register: false }, trunk)).toEqual({ password: '', register: false });
    expect(trunkPatch({ ...trunkToForm(trunk), transport: 'tcp', port: '' }, trunk)).toEqual({ transport: 'tcp' });
    expect(trunkPatch({ ...trunkToForm(trunk), transport: 'tls', port: '' }, trunk)).toEqual({ transport: 'tls', port: 5061 });
  });

  it('puts server errors for allowed_cidrs[i] on the row that was sent as entry i', () => {
    expect(mapTrunkErrors({ 'allowed_cidrs[1]': 'must be an IPv4…', name: 'taken' }, [0, 2, 5])).toEqual({
      'cidr-2': 'must be an IPv4…',
      name: 'taken',
    });
    expect(mapTrunkErrors({ allowed_cidrs: 'at most 100 networks' }, [])).toEqual({ allowed_cidrs: 'at most 100 networks' });
  });
});

describe('trunk status', () => {
  it('maps OK/FAIL/UNKNOWN to badges with reasons', () => {
    expect(trunkStatusView({ status: 'OK', status_reason: null, keepalive: true, register: false })).toMatchObject({ tone: 'success', label: 'OK' });
    expect(trunkStatusView(trunk)).toEqual({ tone: 'danger', label: 'FAIL', detail: '401 bad credentials' });
    expect(trunkStatusView({ ...trunk, status_reason: 'timeout' }).detail).toBe('Timeout: no answer to OPTIONS');
    expect(trunkStatusView({ status: 'UNKNOWN', status_reason: null, keepalive: true, register: false }).label).toBe('Checking');
    expect(trunkStatusView({ status: 'UNKNOWN', status_reason: null, keepalive: false, register: false }).label).toBe('Not monitored');
    expect(describeFailReason('dns: lookup failed')).toBe('DNS: lookup failed for the host');
    expect(describeFailReason('registration: 403 forbidden')).toBe('Registration: 403 forbidden');
  });

  it('says how long the status has held', () => {
    const now = new Date('2026-05-20T12:00:00Z');
    expect(heldFor('2026-05-20T11:59:30Z', now)).toBe('for 30 s');
    expect(heldFor('2026-05-20T11:57:00Z', now)).toBe('for 3 min');
    expect(heldFor('2026-05-20T10:00:00Z', now)).toBe('for 2 h');
    expect(heldFor('2026-05-20T09:55:00Z', now)).toBe('for 2 h 5 min');
    expect(heldFor('2026-05-17T09:55:00Z', now)).toBe('for 3 days');
    expect(heldFor(null, now)).toBeUndefined();
    const local = new Date(2026, 4, 20, 9, 5);
    expect(sinceLabel(local.toISOString(), new Date(2026, 4, 20, 18, 0))).toBe('09:05');
    expect(sinceLabel(local.toISOString(), new Date(2026, 4, 22, 18, 0))).toBe('20 May, 09:05');
  });

  it('shows the carrier as host:port · transport', () => {
    expect(formatCarrier({ host: 'sip.zadarma.com', port: 5060, transport: 'udp' })).toBe('sip.zadarma.com:5060 · UDP');
    expect(formatCarrier({ host: '2001:db8::5', port: 5061, transport: 'tls' })).toBe('[2001:db8::5]:5061 · TLS');
  });
});
