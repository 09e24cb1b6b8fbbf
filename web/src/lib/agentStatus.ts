// Agent availability: Available / On call / On break (with a reason) / Logged out.
import type { Schemas } from '../api/client';
import type { FieldErrors } from '../api/problem';
import type { Tone } from './trunks';

export type AgentStatus = Schemas['AgentStatus'];

export const STATUS_LABELS: Record<AgentStatus, string> = {
  available: 'Available',
  on_call: 'On call',
  on_break: 'On break',
  logged_out: 'Logged out',
};

const TONES: Record<AgentStatus, Tone> = {
  available: 'success',
  on_call: 'accent',
  on_break: 'warning',
  logged_out: 'neutral',
};

/** Common reasons offered as one-click choices; any other text is fine too. */
export const BREAK_REASONS = ['Lunch', 'Coffee', 'Meeting', 'Training', 'After-call work'] as const;

export interface StatusView {
  tone: Tone;
  label: string;
  /** "On break · Lunch" */
  text: string;
}

export function statusView(status: AgentStatus | undefined | null, reason?: string | null): StatusView {
  const s = status ?? 'logged_out';
  const label = STATUS_LABELS[s] ?? s;
  const r = s === 'on_break' ? reason?.trim() : undefined;
  return { tone: TONES[s] ?? 'neutral', label, text: r ? `${label} · ${r}` : label };
}

/** Whether calls can be offered: available, with a registered phone. */
export function canTakeCalls(a: { status?: AgentStatus | null; disabled: boolean; registration: { state: string } }): boolean {
  return !a.disabled && a.status === 'available' && a.registration.state === 'green';
}

export function validateStatusChange(status: AgentStatus, reason: string): FieldErrors {
  if (status === 'on_call') return { status: 'On call follows calls by itself; choose another status.' };
  if (status !== 'on_break') return {};
  const r = reason.trim();
  if (!r) return { reason: 'Say why, e.g. Lunch: supervisors see it.' };
  // eslint-disable-next-line no-control-regex
  if (Array.from(r).length > 100 || /[\u0000-\u001f\u007f]/.test(r)) return { reason: 'Use at most 100 printable characters.' };
  return {};
}

/** Board order: available first, then on call, on break, logged out; by name within each. */
export function statusRank(s: AgentStatus | undefined | null): number {
  return { available: 0, on_call: 1, on_break: 2, logged_out: 3 }[s ?? 'logged_out'] ?? 4;
}
