import { STATUS_LABELS } from './connection';
import './realtime.css';
import { useRealtime } from './RealtimeProvider';

/**
 * The live connection's state for the app shell: a green "Live" dot, or an amber "Reconnecting…"
 * one (with the reason as a tooltip). Announced politely to screen readers; hidden when no
 * connection is wanted.
 */
export function ConnectionIndicator({ className }: { className?: string }) {
  const { status, error } = useRealtime();
  if (status === 'idle') return null;
  const label = STATUS_LABELS[status];
  const title =
    status === 'connected'
      ? 'Live updates are on'
      : `Live updates paused${error ? `: ${error}` : ''}. Pages keep their last data and catch up when the connection is back.`;
  return (
    <span
      className={`live-indicator live-${status}${className ? ` ${className}` : ''}`}
      role="status"
      aria-live="polite"
      title={title}
      data-testid="live-indicator"
      data-status={status}
    >
      <span className="live-dot" aria-hidden="true" />
      <span className="live-label">{label}</span>
    </span>
  );
}
