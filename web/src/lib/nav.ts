// The navigation of the backoffice, following the menu paths of the SIVO troubleshooting guide
// (Dashboard → Agents, Settings → …, Settings → Developer → …, CDRs, Audit), filtered by role.
import type { Role } from '../api/client';

export interface NavItem {
  label: string;
  path: string;
  /** Who may see and open it. */
  roles: readonly Role[];
  /** Not built in the backend yet: the page says so. */
  comingSoon?: boolean;
}

export interface NavSection {
  label: string | null;
  items: NavItem[];
}

const TENANT: readonly Role[] = ['agent', 'supervisor', 'admin'];
const SUPERVISION: readonly Role[] = ['supervisor', 'admin'];
/** Who has a SIP extension, hence a softphone. */
const PHONE: readonly Role[] = ['agent', 'supervisor'];
const ADMIN: readonly Role[] = ['admin'];
const AUDIT: readonly Role[] = ['admin', 'superadmin'];
const PLATFORM: readonly Role[] = ['superadmin'];

export const NAV: readonly NavSection[] = [
  {
    // The agent's phone: "Softphone → SIP registration green (top-right icon)".
    label: null,
    items: [{ label: 'Softphone', path: '/softphone', roles: PHONE }],
  },
  {
    label: 'Dashboard',
    items: [
      { label: 'Agents', path: '/dashboard/agents', roles: TENANT },
      { label: 'Wallboard', path: '/dashboard/wallboard', roles: SUPERVISION },
    ],
  },
  {
    label: 'Settings',
    items: [
      { label: 'Queues', path: '/settings/queues', roles: ADMIN },
      { label: 'SIP trunks', path: '/settings/sip-trunks', roles: ADMIN },
      { label: 'Numbers (DIDs)', path: '/settings/numbers', roles: ADMIN },
      { label: 'Agents', path: '/settings/agents', roles: ADMIN },
      { label: 'Users & roles', path: '/settings/users', roles: ADMIN },
      { label: 'Transcription policies', path: '/settings/transcription-policies', roles: ADMIN, comingSoon: true },
      { label: 'Transcription providers', path: '/settings/transcription-providers', roles: ADMIN, comingSoon: true },
      { label: 'Salesforce', path: '/settings/salesforce', roles: ADMIN, comingSoon: true },
    ],
  },
  {
    label: 'Developer',
    items: [
      { label: 'Webhooks', path: '/settings/developer/webhooks', roles: ADMIN },
      { label: 'API keys', path: '/settings/developer/api-keys', roles: ADMIN },
    ],
  },
  {
    label: 'Platform',
    items: [{ label: 'Tenants', path: '/platform/tenants', roles: PLATFORM }],
  },
  {
    label: 'Reports',
    items: [
      { label: 'CDRs', path: '/cdrs', roles: SUPERVISION },
      { label: 'Audit', path: '/audit', roles: AUDIT },
    ],
  },
];

/** The sections and items a role sees; sections left empty are dropped. */
export function navFor(role: Role): NavSection[] {
  return NAV.map((s) => ({ ...s, items: s.items.filter((i) => i.roles.includes(role)) })).filter(
    (s) => s.items.length > 0,
  );
}

export function findNavItem(path: string): NavItem | undefined {
  for (const s of NAV) for (const i of s.items) if (i.path === path) return i;
  return undefined;
}

/** May this role open this path? Paths outside the menu (profile) are open to everyone signed in. */
export function canAccess(role: Role, path: string): boolean {
  // The longest menu path that is `path` or a parent of it decides (…/webhooks/<id> is webhooks).
  let best: NavItem | undefined;
  for (const s of NAV) {
    for (const i of s.items) {
      if ((path === i.path || path.startsWith(`${i.path}/`)) && (!best || i.path.length > best.path.length)) best = i;
    }
  }
  return best ? best.roles.includes(role) : true;
}

/** Where a role lands after login. */
export function homeFor(role: Role): string {
  switch (role) {
    case 'superadmin':
      return '/platform/tenants';
    case 'admin':
      return '/settings/users';
    case 'agent':
      return '/softphone';
    default:
      return '/dashboard/agents';
  }
}

/** Breadcrumb-like title, e.g. "Settings → Developer → API keys". */
export function trailFor(path: string): string[] {
  for (const s of NAV) {
    for (const i of s.items) {
      if (i.path !== path) continue;
      if (s.label === 'Developer') return ['Settings', 'Developer', i.label];
      if (s.label === 'Reports' || s.label === null) return [i.label];
      return [s.label, i.label];
    }
  }
  return [];
}
