// Pure pieces of the realtime connection, kept apart from React and socket.io-client so they can
// be unit-tested.

/** What the UI shows about the live connection. */
export type RealtimeStatus =
  /** No connection is wanted (signed out, or a platform user, who hears no tenant's events). */
  | 'idle'
  /** First attempt in progress. */
  | 'connecting'
  | 'connected'
  /** Lost or refused; retrying with backoff. */
  | 'reconnecting';

/** Problem codes of a refused handshake that mean "the session is over": go back to login. */
const SESSION_CODES = new Set(['session_expired', 'session_invalid', 'unauthorized', 'mfa_enrollment_required']);

export interface Refusal {
  code: string;
  message: string;
  /** The session is over (as opposed to a server problem worth retrying). */
  sessionEnded: boolean;
}

/**
 * The server refuses a handshake with a `connect_error` whose message is `"<code>: <detail>"`
 * (the REST API's problem code and detail).
 */
export function parseRefusal(message: string): Refusal {
  const match = /^([a-z_]+): (.*)$/s.exec(message);
  const code = match?.[1] ?? 'connect_failed';
  const detail = match?.[2] ?? (message || 'the live connection failed');
  return { code, message: detail, sessionEnded: SESSION_CODES.has(code) };
}

/**
 * Delay before retry `attempt` (0-based) after the server refused or closed the connection:
 * exponential from 1 s to 30 s, with ±50 % jitter so a restarted server is not hit by every
 * client at once. `random` is injectable for tests.
 */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(30_000, 1_000 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.5 + random()));
}

export const STATUS_LABELS: Record<RealtimeStatus, string> = {
  idle: 'Offline',
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
};
