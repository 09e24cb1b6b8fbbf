// The realtime events the server pushes over Socket.IO (event name `event`): exactly the webhook
// body, an envelope `{id, type, tenant_id, created_at, data}` (crates/domain/src/events.rs).
// Only the types the UI reads are spelled out; the others arrive as `OtherEvent`.
// And the change hints (event name `changed`): `{resource, id}`, "this changed, re-read it", for
// what has no event of its own (crates/api/src/realtime.rs).
import type { Schemas } from '../api/client';

type AgentStatus = Schemas['AgentStatus'];

interface Envelope<T extends string, D> {
  id: string;
  type: T;
  tenant_id: string;
  created_at: string;
  data: D;
}

interface CallData {
  call_id: string;
  /** Per-call order: delivery order across events is not guaranteed. */
  sequence: number;
}

export type CallCreated = Envelope<
  'call.created',
  CallData & { direction: 'inbound' | 'outbound'; from: string; to: string; did: string | null }
>;
export type QueueEntered = Envelope<'queue.entered', CallData & { queue_id: string; position: number }>;
export type CallAnswered = Envelope<
  'call.answered',
  CallData & { agent_id: string | null; queue_id: string | null; answered_at: string }
>;
export type CallTransferred = Envelope<
  'call.transferred',
  CallData & { kind: string; from_agent_id: string | null; destination: string; succeeded: boolean; failure_reason: string | null }
>;
export type CallEnded = Envelope<
  'call.ended',
  CallData & { hangup_cause: string; hangup_side: string; duration_ms: number; cdr: Partial<Schemas['Cdr']> | null }
>;
export type QueueAbandoned = Envelope<'queue.abandoned', CallData & { queue_id: string; waited_ms: number }>;
export type AgentStatusChanged = Envelope<
  'agent.status_changed',
  { agent_id: string; previous: AgentStatus; status: AgentStatus; reason: string | null }
>;
export type AgentPaused = Envelope<'agent.paused', { agent_id: string; reason: string }>;
export type OtherEvent = Envelope<
  'call.recorded' | 'transcript.segment' | 'transcript.completed' | 'ivr.completed' | 'ai_agent.completed',
  Record<string, unknown>
>;

export type SivoEvent =
  | CallCreated
  | QueueEntered
  | CallAnswered
  | CallTransferred
  | CallEnded
  | QueueAbandoned
  | AgentStatusChanged
  | AgentPaused
  | OtherEvent;

/** A pushed value that has the envelope's shape (the server is trusted, the wire is not typed). */
export function isSivoEvent(value: unknown): value is SivoEvent {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === 'string' &&
    typeof v.type === 'string' &&
    typeof v.created_at === 'string' &&
    typeof v.data === 'object' &&
    v.data !== null
  );
}

/** The resources a change hint names (db::outbox::Changed). */
export const HINT_RESOURCES = {
  /** An agent's SIP registration; the id is the agent's user id. */
  agentRegistration: 'agent.registration',
  /** A trunk's keepalive status; the id is the trunk id. */
  trunkStatus: 'trunk.status',
} as const;

/**
 * A change hint: `resource` changed for `id`; a null `id` means any of them may have (sent after
 * the server's own listening connection came back).
 */
export interface ChangeHint {
  resource: string;
  id: string | null;
}

export function isChangeHint(value: unknown): value is ChangeHint {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.resource === 'string' && (typeof v.id === 'string' || v.id === null);
}
