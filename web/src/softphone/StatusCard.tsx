// Available / On break (with a reason) / Logged out, one click each; the server's answer and the
// realtime socket's agent events keep it true when a supervisor or the call engine changes it.
import { useId, useRef, useState, type FormEvent } from 'react';
import { api } from '../api/client';
import { describeError } from '../api/problem';
import { Button } from '../components/ui';
import { formatDateTime } from '../lib/format';
import { BREAK_REASONS, breakReasonError, fromApi, STATUS_TEXT, type AgentStatus, type MyStatus } from './status';

const CHOICES: AgentStatus[] = ['available', 'on_break', 'logged_out'];

export function StatusCard({
  agentId,
  status,
  loadError,
  onChanged,
}: {
  agentId: string;
  status: MyStatus | null;
  loadError: unknown;
  onChanged: (s: MyStatus) => void;
}) {
  const id = useId();
  const [breakOpen, setBreakOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [reasonError, setReasonError] = useState<string | null>(null);
  const [busy, setBusy] = useState<AgentStatus | null>(null);
  const [error, setError] = useState<string | null>(null);
  const reasonRef = useRef<HTMLInputElement>(null);
  const onCall = status?.status === 'on_call';

  const put = async (next: AgentStatus, why: string | null) => {
    setBusy(next);
    setError(null);
    try {
      const out = await api.put('/api/v1/agents/{id}/status', { path: { id: agentId }, body: { status: next, reason: why } });
      onChanged(fromApi(out));
      setBreakOpen(false);
    } catch (err) {
      setError(`Could not change your status: ${describeError(err)}`);
    } finally {
      setBusy(null);
    }
  };

  const choose = (next: AgentStatus) => {
    if (next === 'on_break') {
      setBreakOpen(true);
      setReason((r) => r || (status?.status === 'on_break' ? (status.reason ?? '') : ''));
      setTimeout(() => reasonRef.current?.focus(), 0);
      return;
    }
    setBreakOpen(false);
    if (status?.status === next) return;
    void put(next, null);
  };

  const startBreak = (e: FormEvent) => {
    e.preventDefault();
    const problem = breakReasonError(reason);
    setReasonError(problem);
    if (problem) {
      reasonRef.current?.focus();
      return;
    }
    void put('on_break', reason.trim());
  };

  const current = status ? STATUS_TEXT[status.status] : null;

  return (
    <section className="panel" aria-labelledby={`${id}-title`} data-testid="status-card" data-status={status?.status ?? ''}>
      <div className="sp-card-head">
        <h2 id={`${id}-title`} className="sp-card-title">
          My status
        </h2>
      </div>
      <p className="sp-status-now" aria-live="polite" data-testid="my-status">
        {status ? (
          <>
            <span className={`sp-status-dot sp-dot-${status.status}`} aria-hidden="true" />
            <strong>{current?.label}</strong>
            {status.status === 'on_break' && status.reason && <span>· {status.reason}</span>}
            {status.changedAt && <span className="muted">since {formatDateTime(status.changedAt)}</span>}
          </>
        ) : loadError ? (
          <span className="field-error">Could not load your status: {describeError(loadError)}</span>
        ) : (
          <span className="muted">Loading…</span>
        )}
      </p>
      {onCall && <p className="muted small">You are on a call: your status returns to Available when it ends.</p>}
      <div className="sp-status-options" role="group" aria-label="Set my status">
        {CHOICES.map((c) => {
          const pressed = breakOpen ? c === 'on_break' : status?.status === c;
          return (
            <button
              key={c}
              type="button"
              className="sp-status-option"
              aria-pressed={pressed}
              disabled={!status || onCall || busy !== null}
              onClick={() => choose(c)}
            >
              <span className={`sp-status-dot sp-dot-${c}`} aria-hidden="true" />
              <span>
                {STATUS_TEXT[c].label}
                <span className="sp-hint">{STATUS_TEXT[c].hint}</span>
              </span>
              {busy === c && <span className="spinner spinner-inline" aria-hidden="true" />}
            </button>
          );
        })}
      </div>
      {breakOpen && (
        <form className="sp-break" onSubmit={startBreak} noValidate aria-label="Start a break">
          <div className={`field${reasonError ? ' field-invalid' : ''}`}>
            <label htmlFor={`${id}-reason`} className="field-label">
              Break reason
            </label>
            <input
              ref={reasonRef}
              id={`${id}-reason`}
              name="reason"
              className="input"
              maxLength={100}
              autoComplete="off"
              value={reason}
              onChange={(e) => setReason(e.target.value)}
              aria-invalid={reasonError ? true : undefined}
              aria-describedby={reasonError ? `${id}-reason-error` : undefined}
            />
            {reasonError && (
              <p id={`${id}-reason-error`} className="field-error">
                <span aria-hidden="true">⚠ </span>
                {reasonError}
              </p>
            )}
          </div>
          <div className="chip-buttons" role="group" aria-label="Common reasons">
            {BREAK_REASONS.map((r) => (
              <button key={r} type="button" className={`chip-button${reason === r ? ' chip-button-on' : ''}`} aria-pressed={reason === r} onClick={() => setReason(r)}>
                {r}
              </button>
            ))}
          </div>
          <div className="button-row">
            <Button type="submit" variant="primary" busy={busy === 'on_break'}>
              Start break
            </Button>
            <Button variant="ghost" onClick={() => setBreakOpen(false)}>
              Cancel
            </Button>
          </div>
        </form>
      )}
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
