import { describe, expect, it } from 'vitest';
import { accountView, credentialsText, registrationView, sortAgents, type Agent } from './agents';

const now = new Date('2026-05-20T12:00:00Z');
// Built by assertion so the fixture holds whichever optional fields the generated type grows.
const agent = (over: Partial<Agent>): Agent =>
  ({
  id: 'a',
  email: 'a@acme.example',
  display_name: 'A',
  role: 'agent',
  disabled: false,
  extension: '1000',
  sip_domain: 'acme.sip.localhost',
  registration: { state: 'red', bindings: 0 },
  ...over,
  }) as Agent;

describe('SIP registration (green/red)', () => {
  it('says red plainly', () => {
    const v = registrationView({ state: 'red', bindings: 0 }, now);
    expect(v).toMatchObject({ green: false, label: 'Not registered' });
    expect(v.detail).toMatch(/calls cannot reach it/);
  });

  it('shows transport, user agent and devices when green', () => {
    const v = registrationView({ state: 'green', bindings: 2, transport: 'wss', user_agent: 'JsSIP 3.10.0', expires_at: '2026-05-20T12:05:00Z' }, now);
    expect(v).toMatchObject({ green: true, label: 'Registered', summary: 'WSS · JsSIP 3.10.0 · 2 devices' });
    expect(v.detail).toBe('Registered from 2 devices, latest over Secure WebSocket (WSS), user agent “JsSIP 3.10.0”, expires in 5 minutes unless refreshed.');
    expect(registrationView({ state: 'green', bindings: 1, transport: 'udp', user_agent: null }, now).summary).toBe('UDP · 1 device');
  });

  it('orders the board by who can take calls', () => {
    const list = [
      agent({ id: '1', display_name: 'Zoe', registration: { state: 'green', bindings: 1 } }),
      agent({ id: '2', display_name: 'Bob', disabled: true }),
      agent({ id: '3', display_name: 'Amy' }),
      agent({ id: '4', display_name: 'Carl', registration: { state: 'green', bindings: 1 } }),
    ];
    expect(sortAgents(list).map((a) => a.display_name)).toEqual(['Carl', 'Zoe', 'Amy', 'Bob']);
  });

  it('maps the account state and formats credentials to copy', () => {
    expect(accountView({ disabled: true })).toEqual({ tone: 'danger', label: 'Disabled' });
    expect(accountView({ disabled: false }).label).toBe('Active');
    expect(
      credentialsText({ extension: '1000', username: '1000', domain: 'acme.sip.localhost', password: 'pw', uri: 'sip:1000@acme.sip.localhost', wss_url: null }),
    ).toBe('SIP URI: sip:1000@acme.sip.localhost\nUser name: 1000\nDomain / realm: acme.sip.localhost\nPassword: pw');
  });
});
