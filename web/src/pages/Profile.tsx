import { useRef, useState, type FormEvent } from 'react';
import { Link, useLocation } from 'react-router';
import { api } from '../api/client';
import { ApiError } from '../api/problem';
import { useAuth, useMe } from '../auth/session';
import { Dialog } from '../components/Dialog';
import { Badge, Button, FormError, Notice, PageHeader, TextField, focusFirstError } from '../components/ui';
import { formatDateTime, ROLE_LABELS } from '../lib/format';
import { normalizeTotpInput } from '../lib/totp';
import { validatePasswordChange, validateTotpCode } from '../lib/validation';

const MFA_REQUIRED_ROLES = ['admin', 'superadmin'];

export function ProfilePage() {
  const me = useMe();
  const location = useLocation();
  const notice = (location.state as { notice?: string } | null)?.notice;
  const user = me.user;
  const mfaRequired = MFA_REQUIRED_ROLES.includes(me.role);
  const [disabling, setDisabling] = useState(false);
  const [flash, setFlash] = useState<string | null>(notice ?? null);

  return (
    <>
      <PageHeader title="Profile" description="Your account, password and two-step verification." />
      <div role="status" aria-live="polite" className={flash ? 'alert alert-success' : 'sr-only'}>
        {flash}
      </div>
      <div className="grid-2">
        <section className="panel" aria-labelledby="account-title">
          <h2 id="account-title" className="section-title">
            Account
          </h2>
          <dl className="details-grid">
            <dt>Name</dt>
            <dd>{user?.display_name || '—'}</dd>
            <dt>Email</dt>
            <dd>{user?.email}</dd>
            <dt>Role</dt>
            <dd>
              <Badge tone="accent">{ROLE_LABELS[me.role] ?? me.role}</Badge>
            </dd>
            <dt>Member since</dt>
            <dd>{formatDateTime(user?.created_at)}</dd>
          </dl>
        </section>
        <section className="panel" aria-labelledby="mfa-title">
          <h2 id="mfa-title" className="section-title">
            Two-step verification
          </h2>
          {user?.mfa_enabled ? (
            <p>
              <Badge tone="success">On</Badge> Signing in needs a code from your authenticator app.
            </p>
          ) : (
            <p>
              <Badge tone="neutral">Off</Badge> Only your password protects your account.
            </p>
          )}
          {mfaRequired ? (
            <p className="muted">Two-step verification is mandatory for the {ROLE_LABELS[me.role]?.toLowerCase()} role and cannot be turned off. If you lose your device, use a recovery code or ask another administrator to reset it.</p>
          ) : user?.mfa_enabled ? (
            <Button onClick={() => setDisabling(true)}>Turn off two-step verification</Button>
          ) : (
            <Link to="/profile/mfa" className="btn btn-primary">
              Turn on two-step verification
            </Link>
          )}
        </section>
      </div>
      <PasswordForm onChanged={() => setFlash('Your password was changed. Your other sessions were signed out.')} />
      {disabling && (
        <DisableMfaDialog
          onClose={() => setDisabling(false)}
          onDone={() => {
            setDisabling(false);
            setFlash('Two-step verification is off.');
          }}
        />
      )}
    </>
  );
}

function PasswordForm({ onChanged }: { onChanged: () => void }) {
  const empty = { current_password: '', new_password: '', confirm: '' };
  const [form, setForm] = useState(empty);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors = validatePasswordChange(form);
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) return focusFirstError(formRef.current, fieldErrors);
    setBusy(true);
    try {
      await api.post('/api/v1/me/password', { body: { current_password: form.current_password, new_password: form.new_password } });
      setForm(empty);
      onChanged();
    } catch (err) {
      if (err instanceof ApiError && err.hasFieldErrors) {
        setErrors(err.fieldErrors);
        focusFirstError(formRef.current, err.fieldErrors);
      } else setFormError(err);
    } finally {
      setBusy(false);
    }
  };
  const set = (k: keyof typeof empty) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));

  return (
    <section className="panel" aria-labelledby="password-title">
      <h2 id="password-title" className="section-title">
        Change password
      </h2>
      <form ref={formRef} onSubmit={submit} noValidate className="form form-narrow">
        <FormError error={formError} />
        <TextField label="Current password" name="current_password" type="password" autoComplete="current-password" value={form.current_password} onChange={set('current_password')} error={errors.current_password} />
        <TextField label="New password" name="new_password" type="password" autoComplete="new-password" value={form.new_password} onChange={set('new_password')} error={errors.new_password} hint="12 to 128 characters. A passphrase of a few words is strong and easy to type." />
        <TextField label="Repeat the new password" name="confirm" type="password" autoComplete="new-password" value={form.confirm} onChange={set('confirm')} error={errors.confirm} />
        <div>
          <Button type="submit" variant="primary" busy={busy}>
            Change password
          </Button>
        </div>
      </form>
    </section>
  );
}

function DisableMfaDialog({ onClose, onDone }: { onClose: () => void; onDone: () => void }) {
  const { refresh } = useAuth();
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const err = validateTotpCode(code);
    setError(err);
    if (err) return;
    setBusy(true);
    try {
      await api.delete('/api/v1/auth/mfa/totp', { body: { code } });
      await refresh();
      onDone();
    } catch (err) {
      if (err instanceof ApiError && err.fieldErrors.code) setError(err.fieldErrors.code);
      else setFormError(err);
      setCode('');
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open title="Turn off two-step verification?" onClose={onClose} description="Enter a current code from your authenticator app to confirm.">
      <form onSubmit={submit} noValidate className="form">
        <FormError error={formError} />
        <Notice tone="warning">Without it, anyone who learns your password can sign in as you.</Notice>
        <TextField
          label="Code from the app"
          name="code"
          inputMode="numeric"
          autoComplete="one-time-code"
          className="input input-code"
          maxLength={6}
          value={code}
          onChange={(e) => setCode(normalizeTotpInput(e.target.value))}
          error={error}
        />
        <footer className="dialog-footer">
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="danger" busy={busy}>
            Turn off
          </Button>
        </footer>
      </form>
    </Dialog>
  );
}
