import type { ReactNode } from 'react';
import { registrationView, type Registration } from '../lib/agents';
import { statusView, type AgentStatus } from '../lib/agentStatus';
import { formatDateTime } from '../lib/format';
import { heldFor, sinceLabel, trunkStatusView, type Trunk } from '../lib/trunks';
import { Badge } from './ui';

/** The green/red registration icon with words (never colour alone) and the transport/user agent. */
export function RegistrationIndicator({ registration, now, detail = true }: { registration: Registration; now?: Date; detail?: boolean }) {
  const v = registrationView(registration, now);
  return (
    <span className="reg" title={v.detail} data-testid="registration-indicator" data-state={v.green ? 'green' : 'red'}>
      <span className={`reg-line ${v.green ? 'reg-green' : 'reg-red'}`}>
        <span className="reg-dot" aria-hidden="true" />
        {v.label}
      </span>
      {detail && v.green && <span className="cell-secondary reg-summary">{v.summary}</span>}
    </span>
  );
}

/** OK / FAIL badge, the reason, and since when. */
export function TrunkStatus({ trunk, now }: { trunk: Trunk; now?: Date }) {
  const v = trunkStatusView(trunk);
  const held = trunk.status !== 'UNKNOWN' ? heldFor(trunk.status_changed_at, now) : undefined;
  return (
    <span className="trunk-status">
      <Badge tone={v.tone}>
        <span className={`status-dot status-dot-${v.tone}`} aria-hidden="true" />
        {v.label}
      </Badge>
      {v.detail && (
        <span className={`cell-secondary${trunk.status === 'FAIL' ? ' trunk-reason' : ''}`}>
          {trunk.status === 'FAIL' && <span className="sr-only">Reason: </span>}
          {v.detail}
        </span>
      )}
      {held && trunk.status_changed_at && (
        <time className="cell-secondary" dateTime={trunk.status_changed_at} title={`Since ${formatDateTime(trunk.status_changed_at, { seconds: true })}`}>
          {held} · since {sinceLabel(trunk.status_changed_at, now)}
        </time>
      )}
    </span>
  );
}

/** A few networks as chips, the rest counted. */
export function CidrChips({ cidrs, max = 3, empty }: { cidrs: string[]; max?: number; empty?: ReactNode }) {
  if (cidrs.length === 0) return <span className="muted">{empty ?? 'None'}</span>;
  const shown = cidrs.slice(0, max);
  const rest = cidrs.length - shown.length;
  return (
    <span className="chip-list">
      {shown.map((c) => (
        <code key={c} className="code-chip">
          {c}
        </code>
      ))}
      {rest > 0 && (
        <span className="chip-more" title={cidrs.slice(max).join(', ')}>
          +{rest} more<span className="sr-only">: {cidrs.slice(max).join(', ')}</span>
        </span>
      )}
    </span>
  );
}

/** Available / On call / On break (reason) / Logged out. */
export function AgentStatusBadge({ status, reason }: { status?: AgentStatus | null; reason?: string | null }) {
  const v = statusView(status, reason);
  return (
    <span className="agent-status" title={v.text}>
      <Badge tone={v.tone}>
        <span className={`status-dot status-dot-${v.tone}`} aria-hidden="true" />
        {v.label}
      </Badge>
      {status === 'on_break' && reason && <span className="cell-secondary">{reason}</span>}
    </span>
  );
}
