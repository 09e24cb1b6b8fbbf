import { useId, useRef, useState, type FormEvent } from 'react';
import { api } from '../api/client';
import { ApiError } from '../api/problem';
import { BREAK_REASONS, STATUS_LABELS, statusView, validateStatusChange, type AgentStatus } from '../lib/agentStatus';
import { Button, FormError, TextField, focusFirstError } from './ui';

const CHOICES: { value: AgentStatus; hint: string }[] = [
  { value: 'available', hint: 'Queues offer calls to this phone.' },
  { value: 'on_break', hint: 'No calls are offered; supervisors see the reason.' },
  { value: 'logged_out', hint: 'Off duty: no calls, not counted in queues.' },
];

/** Sets an agent's availability (the agent themselves, supervisors and admins). */
export function StatusSelector({
  agentId,
  status,
  reason,
  self,
  onChanged,
}: {
  agentId: string;
  status: AgentStatus;
  reason?: string | null;
  self: boolean;
  onChanged: (message: string) => void;
}) {
  const id = useId();
  const [choice, setChoice] = useState<AgentStatus>(status === 'on_call' ? 'available' : status);
  const [text, setText] = useState(reason ?? '');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);
  const unchanged = choice === status && (choice !== 'on_break' || text.trim() === (reason ?? '').trim());

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validateStatusChange(choice, text);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    setBusy(true);
    try {
      const out = await api.put('/api/v1/agents/{id}/status', {
        path: { id: agentId },
        body: { status: choice, reason: choice === 'on_break' ? text.trim() : null },
      });
      const v = statusView(out.status, out.pause_reason);
      onChanged(self ? `Your status is now ${v.text}.` : `Status set to ${v.text}.`);
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        setErrors(err.fieldErrors);
        focusFirstError(formRef.current, err.fieldErrors);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form ref={formRef} onSubmit={submit} noValidate className="form status-form" aria-label={self ? 'Set my status' : 'Set status'}>
      <FormError error={formError} />
      {status === 'on_call' && (
        <p className="muted small">On a call now: the status returns to Available by itself when the call ends.</p>
      )}
      <fieldset className="fieldset status-choices" aria-describedby={errors.status ? `${id}-status-error` : undefined}>
        <legend className="field-label">Status</legend>
        {CHOICES.map((c) => (
          <label key={c.value} className={`status-choice${choice === c.value ? ' status-choice-on' : ''}`}>
            <input type="radio" name="status" value={c.value} checked={choice === c.value} onChange={() => setChoice(c.value)} />
            <span>
              <span className="status-choice-label">
                <span className={`status-dot status-dot-${statusView(c.value).tone}`} aria-hidden="true" /> {STATUS_LABELS[c.value]}
              </span>
              <span className="field-hint">{c.hint}</span>
            </span>
          </label>
        ))}
        {errors.status && (
          <p id={`${id}-status-error`} className="field-error">
            {errors.status}
          </p>
        )}
      </fieldset>
      {choice === 'on_break' && (
        <div className="break-reason">
          <TextField
            label="Reason"
            name="reason"
            value={text}
            maxLength={100}
            onChange={(e) => setText(e.target.value)}
            error={errors.reason}
            hint="Shown to supervisors, e.g. Lunch."
            autoComplete="off"
          />
          <div className="chip-buttons" role="group" aria-label="Common reasons">
            {BREAK_REASONS.map((r) => (
              <button key={r} type="button" className={`chip-button${text === r ? ' chip-button-on' : ''}`} aria-pressed={text === r} onClick={() => setText(r)}>
                {r}
              </button>
            ))}
          </div>
        </div>
      )}
      <div className="button-row">
        <Button type="submit" variant="primary" busy={busy} disabled={unchanged}>
          {self ? 'Set my status' : 'Set status'}
        </Button>
      </div>
    </form>
  );
}
