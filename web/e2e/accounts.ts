export const PASSWORD = 'correct-horse-battery';
export const TENANT = { slug: 'acme', name: 'Acme Inc' };

export const ADMIN = { email: 'admin@acme.example', role: 'admin', name: 'Ada Admin' } as const;
export const AGENT = { email: 'agent@acme.example', role: 'agent', name: 'Alex Agent' } as const;
/** Only used by the lockout test, so locking it out disturbs nothing else. */
export const LOCKED = { email: 'locked@acme.example', role: 'agent', name: 'Lee Locked' } as const;
/** Turns MFA on and off and changes its password in profile.spec.ts. */
export const SUPERVISOR = { email: 'sam@acme.example', role: 'supervisor', name: 'Sam Supervisor' } as const;
export const ROOT = { email: 'root@example.com', role: 'superadmin', name: 'Root' } as const;

/** Sets up trunks, numbers and agents in telephony.spec.ts (its own TOTP enrolment). */
export const TEL_ADMIN = { email: 'telco@acme.example', role: 'admin', name: 'Tom Telco' } as const;
/** Gets SIP credentials and registers a phone in telephony.spec.ts. */
export const TEL_AGENT = { email: 'tina@acme.example', role: 'agent', name: 'Tina Phone' } as const;

/** Watches the wallboard in wallboard.spec.ts. */
export const WALL_SUPERVISOR = { email: 'wendy@acme.example', role: 'supervisor', name: 'Wendy Wallboard' } as const;
/** Changes status (over the REST API) while wallboard.spec.ts watches. */
export const WALL_AGENT = { email: 'walt@acme.example', role: 'agent', name: 'Walt Wallace' } as const;

export const ACCOUNTS = [ADMIN, AGENT, LOCKED, SUPERVISOR, ROOT, TEL_ADMIN, TEL_AGENT, WALL_SUPERVISOR, WALL_AGENT];
