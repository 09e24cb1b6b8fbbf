// The agent's own availability as the softphone shows it: loaded from GET /agents/{id}/status,
// changed with PUT, and kept current by the realtime socket's agent events.
import type { Schemas } from '../api/client';
import type { SivoEvent } from '../realtime/events';

export type AgentStatus = Schemas['AgentStatus'];

export interface MyStatus {
  status: AgentStatus;
  reason: string | null;
  /** ISO time of the change, to drop late events. */
  changedAt: string | null;
}

export const STATUS_TEXT: Record<AgentStatus, { label: string; hint: string }> = {
  available: { label: 'Available', hint: 'Queues can ring this phone.' },
  on_call: { label: 'On call', hint: 'Back to Available by itself when the call ends.' },
  on_break: { label: 'On break', hint: 'No calls; supervisors see the reason.' },
  logged_out: { label: 'Logged out', hint: 'Off duty: no calls.' },
};

/** One-click break reasons; any other text works too. */
export const BREAK_REASONS = ['Lunch', 'Coffee', 'Meeting', 'Training', 'After-call work'] as const;

export function fromApi(out: Schemas['AgentStatusOut']): MyStatus {
  return { status: out.status, reason: out.pause_reason ?? null, changedAt: out.changed_at ?? null };
}

/** Applies a pushed event about `agentId` (others, and events older than what we show, change nothing). */
export function applyStatusEvent(current: MyStatus | null, event: SivoEvent, agentId: string): MyStatus | null {
  let next: MyStatus | null = null;
  if (event.type === 'agent.status_changed' && event.data.agent_id === agentId) {
    next = { status: event.data.status, reason: event.data.status === 'on_break' ? event.data.reason : null, changedAt: event.created_at };
  } else if (event.type === 'agent.paused' && event.data.agent_id === agentId) {
    next = { status: 'on_break', reason: event.data.reason, changedAt: event.created_at };
  }
  return next ? newer(current, next) : current;
}

/** `next` unless `current` is known to be more recent. */
export function newer(current: MyStatus | null, next: MyStatus): MyStatus {
  if (current?.changedAt && next.changedAt && Date.parse(next.changedAt) < Date.parse(current.changedAt)) return current;
  return next;
}

/** A break needs a reason of at most 100 printable characters. */
export function breakReasonError(reason: string): string | null {
  const r = reason.trim();
  if (!r) return 'Say why, e.g. Lunch: supervisors see it.';
  // eslint-disable-next-line no-control-regex
  if (Array.from(r).length > 100 || /[\u0000-\u001f\u007f]/.test(r)) return 'Use at most 100 printable characters.';
  return null;
}

/** The idle call panel's line for the agent's status. */
export function idleHint(status: AgentStatus | undefined, registered: boolean): string {
  if (!registered) return 'Calls cannot reach you until the softphone is registered.';
  switch (status) {
    case 'available':
      return 'Waiting for calls. You are Available: your queues ring this phone.';
    case 'on_break':
      return 'You are on a break: no calls will be offered. Set yourself Available to take calls.';
    case 'logged_out':
      return 'You are logged out of your queues. Set yourself Available to take calls.';
    case 'on_call':
      return 'You are on a call on another device.';
    default:
      return 'Waiting for calls.';
  }
}

