// How an agent's SIP registration (the spec's green/red icon) and account read in the UI.
import type { Schemas } from '../api/client';
import { formatRelative } from './format';
import type { Tone } from './trunks';

export type Agent = Schemas['AgentOut'];
export type Registration = Schemas['RegistrationOut'];
export type SipCredentials = Schemas['SipCredentialsOut'];

export const TRANSPORT_LABELS: Record<string, string> = {
  udp: 'UDP',
  tcp: 'TCP',
  tls: 'TLS',
  ws: 'WebSocket',
  wss: 'Secure WebSocket (WSS)',
};

export interface RegistrationView {
  green: boolean;
  /** "Registered" / "Not registered" */
  label: string;
  /** One line for the table: "WSS · JsSIP 3.10.0 · 2 devices". */
  summary: string;
  /** Everything, for the hover title and the detail page. */
  detail: string;
}

export function registrationView(r: Registration, now: Date = new Date()): RegistrationView {
  if (r.state !== 'green') {
    return {
      green: false,
      label: 'Not registered',
      summary: 'No device registered',
      detail: 'No softphone or desk phone is registered with this extension: calls cannot reach it.',
    };
  }
  const transport = r.transport ? r.transport.toUpperCase() : null;
  const devices = r.bindings === 1 ? '1 device' : `${r.bindings} devices`;
  const parts = [transport, r.user_agent?.trim() || null, devices].filter(Boolean) as string[];
  const detailParts = [
    `Registered from ${devices}`,
    r.transport ? `latest over ${TRANSPORT_LABELS[r.transport] ?? r.transport}` : null,
    r.user_agent ? `user agent “${r.user_agent}”` : null,
    r.expires_at ? `expires ${formatRelative(r.expires_at, now)} unless refreshed` : null,
  ].filter(Boolean);
  return { green: true, label: 'Registered', summary: parts.join(' · '), detail: `${detailParts.join(', ')}.` };
}

export interface AccountView {
  tone: Tone;
  label: string;
}

/** The account side of "status" until live agent status exists: active or disabled. */
export function accountView(a: Pick<Agent, 'disabled'>): AccountView {
  return a.disabled ? { tone: 'danger', label: 'Disabled' } : { tone: 'success', label: 'Active' };
}

/** Registered first, then by name: the board reads top-down as "who can take calls". */
export function sortAgents<T extends Pick<Agent, 'display_name' | 'email' | 'registration' | 'disabled'>>(list: T[]): T[] {
  const rank = (a: T) => (a.disabled ? 2 : a.registration.state === 'green' ? 0 : 1);
  return [...list].sort((a, b) => rank(a) - rank(b) || (a.display_name || a.email).localeCompare(b.display_name || b.email));
}

export function agentName(a: Pick<Agent, 'display_name' | 'email'>): string {
  return a.display_name || a.email;
}

/** What a desk phone or softphone is configured with, as text to copy. */
export function credentialsText(c: SipCredentials): string {
  return [
    `SIP URI: ${c.uri}`,
    `User name: ${c.username}`,
    `Domain / realm: ${c.domain}`,
    `Password: ${c.password}`,
    c.wss_url ? `WebSocket (WSS): ${c.wss_url}` : null,
  ]
    .filter(Boolean)
    .join('\n');
}
