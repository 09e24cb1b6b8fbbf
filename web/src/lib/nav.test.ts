import { describe, expect, it } from 'vitest';
import { canAccess, homeFor, navFor, trailFor } from './nav';

const labels = (role: Parameters<typeof navFor>[0]) => navFor(role).flatMap((s) => s.items.map((i) => `${s.label} › ${i.label}`));

describe('role-based navigation', () => {
  it('admins see every tenant setting from the troubleshooting guide, and the audit log', () => {
    expect(labels('admin')).toEqual([
      'Dashboard › Agents',
      'Dashboard › Wallboard',
      'Settings › Queues',
      'Settings › SIP trunks',
      'Settings › Numbers (DIDs)',
      'Settings › Agents',
      'Settings › Users & roles',
      'Settings › Transcription policies',
      'Settings › Transcription providers',
      'Settings › Salesforce',
      'Developer › Webhooks',
      'Developer › API keys',
      'Reports › CDRs',
      'Reports › Audit',
    ]);
  });

  it('agents see no admin settings', () => {
    expect(labels('agent')).toEqual(['null › Softphone', 'Dashboard › Agents']);
    expect(homeFor('agent')).toBe('/softphone');
    expect(trailFor('/softphone')).toEqual(['Softphone']);
    expect(canAccess('agent', '/settings/users')).toBe(false);
    expect(canAccess('agent', '/settings/developer/api-keys')).toBe(false);
    expect(canAccess('agent', '/audit')).toBe(false);
    expect(canAccess('agent', '/profile')).toBe(true);
    expect(canAccess('agent', '/settings/developer/webhooks/0190f3c2')).toBe(false);
    expect(canAccess('admin', '/settings/developer/webhooks/0190f3c2')).toBe(true);
    // An agent opens their own detail under the dashboard, never the settings pages.
    expect(canAccess('agent', '/dashboard/agents/0190f3c2')).toBe(true);
    expect(canAccess('agent', '/settings/agents/0190f3c2')).toBe(false);
    expect(canAccess('agent', '/settings/sip-trunks')).toBe(false);
    expect(canAccess('agent', '/settings/numbers')).toBe(false);
  });

  it('supervisors add CDRs but no settings', () => {
    expect(labels('supervisor')).toEqual(['null › Softphone', 'Dashboard › Agents', 'Dashboard › Wallboard', 'Reports › CDRs']);
    expect(canAccess('admin', '/softphone')).toBe(false);
    expect(canAccess('agent', '/dashboard/wallboard')).toBe(false);
    expect(trailFor('/dashboard/wallboard')).toEqual(['Dashboard', 'Wallboard']);
  });

  it('superadmins see platform pages only', () => {
    expect(labels('superadmin')).toEqual(['Platform › Tenants', 'Reports › Audit']);
    expect(canAccess('superadmin', '/settings/users')).toBe(false);
    expect(canAccess('admin', '/platform/tenants')).toBe(false);
  });

  it('lands each role somewhere it may be', () => {
    for (const role of ['agent', 'supervisor', 'admin', 'superadmin'] as const) {
      expect(canAccess(role, homeFor(role))).toBe(true);
    }
  });

  it('names pages by the guide’s menu paths', () => {
    expect(trailFor('/settings/developer/api-keys')).toEqual(['Settings', 'Developer', 'API keys']);
    expect(trailFor('/settings/sip-trunks')).toEqual(['Settings', 'SIP trunks']);
    expect(trailFor('/settings/numbers')).toEqual(['Settings', 'Numbers (DIDs)']);
    expect(trailFor('/settings/agents')).toEqual(['Settings', 'Agents']);
    expect(trailFor('/dashboard/agents')).toEqual(['Dashboard', 'Agents']);
    expect(trailFor('/audit')).toEqual(['Audit']);
  });
});
