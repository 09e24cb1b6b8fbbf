import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { api, type TotpEnroll } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { useAuth, useMe } from '../auth/session';
import { Logo } from '../components/Logo';
import { Button, CheckboxField, CopyButton, FormError, PageHeader, Spinner, TextField } from '../components/ui';
import { groupSecret, normalizeTotpInput, parseOtpauthUri, recoveryCodesText, svgDataUri } from '../lib/totp';
import { validateTotpCode } from '../lib/validation';

export const MFA_ON_NOTICE = 'Two-step verification is on. Log in again with a code from your authenticator app.';

/**
 * TOTP enrolment. `required`: an admin's enrolment-only session right after the first login (full
 * screen, ends in a fresh login). `optional`: a non-admin turning MFA on from the profile.
 */
export function EnrollPage({ mode }: { mode: 'required' | 'optional' }) {
  const me = useMe();
  const { endSession, logout, refresh } = useAuth();
  const navigate = useNavigate();
  const [enrolment, setEnrolment] = useState<TotpEnroll | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  const [code, setCode] = useState('');
  const [codeError, setCodeError] = useState<string | undefined>();
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ codes: string[]; sessionEnded: boolean } | null>(null);
  const [saved, setSaved] = useState(false);
  const started = useRef(-1);
  const codeRef = useRef<HTMLInputElement>(null);
  const codesHeading = useRef<HTMLHeadingElement>(null);

  // Each enrol call replaces the pending secret, so it must run exactly once per attempt (React's
  // development double effects included).
  useEffect(() => {
    if (started.current === attempt) return;
    started.current = attempt;
    setLoadError(null);
    api.post('/api/v1/auth/mfa/totp/enroll').then(setEnrolment, setLoadError);
  }, [attempt]);

  useEffect(() => {
    if (result) codesHeading.current?.focus();
  }, [result]);

  const confirm = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const err = validateTotpCode(code);
    setCodeError(err);
    if (err) {
      codeRef.current?.focus();
      return;
    }
    setBusy(true);
    try {
      const out = await api.post('/api/v1/auth/mfa/totp/confirm', { body: { code } });
      setResult({ codes: out.recovery_codes, sessionEnded: out.session_ended });
    } catch (error) {
      if (error instanceof ApiError && error.fieldErrors.code) {
        setCodeError(error.fieldErrors.code);
        setCode('');
        codeRef.current?.focus();
      } else {
        setFormError(error);
      }
    } finally {
      setBusy(false);
    }
  };

  const finish = async () => {
    if (!result) return;
    if (result.sessionEnded) {
      endSession(MFA_ON_NOTICE, me.user?.email);
    } else {
      await refresh();
      navigate('/profile', { replace: true, state: { notice: 'Two-step verification is on.' } });
    }
  };

  const info = enrolment ? parseOtpauthUri(enrolment.otpauth_uri) : null;
  const download = () => {
    if (!result) return;
    const text = recoveryCodesText(result.codes, { account: info?.account ?? me.user?.email, issuer: info?.issuer, createdAt: new Date() });
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'sivo-recovery-codes.txt';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  let body;
  if (result) {
    body = (
      <section aria-labelledby="codes-title" className="enroll-codes">
        <h2 id="codes-title" ref={codesHeading} tabIndex={-1} className="section-title">
          Save your recovery codes
        </h2>
        <p className="muted">
          Two-step verification is on. If you lose your device, each of these codes lets you sign in once. They are shown
          only now: copy or download them and keep them somewhere safe.
        </p>
        <ol className="recovery-codes" aria-label="Recovery codes" data-testid="recovery-codes">
          {result.codes.map((c) => (
            <li key={c}>
              <code>{c}</code>
            </li>
          ))}
        </ol>
        <div className="button-row">
          <CopyButton text={result.codes.join('\n')} label="Copy codes" />
          <Button onClick={download}>
            <svg viewBox="0 0 24 24" width="15" height="15" fill="none" stroke="currentColor" strokeWidth="2" aria-hidden="true">
              <path d="M12 3v12M7 10l5 5 5-5M4 21h16" />
            </svg>
            Download .txt
          </Button>
        </div>
        <CheckboxField label="I have saved these recovery codes" checked={saved} onChange={(e) => setSaved(e.target.checked)} />
        <Button variant="primary" disabled={!saved} onClick={() => void finish()} className="btn-block">
          {result.sessionEnded ? 'Continue to sign in' : 'Done'}
        </Button>
      </section>
    );
  } else if (loadError) {
    const already = loadError instanceof ApiError && loadError.code === 'mfa_already_enabled';
    body = (
      <div className="error-state" role="alert">
        <p>
          <strong>Could not start the set-up.</strong> {already ? 'Two-step verification is already on for your account.' : describeError(loadError)}
        </p>
        {!already && (
          <Button size="sm" onClick={() => setAttempt((a) => a + 1)}>
            Try again
          </Button>
        )}
      </div>
    );
  } else if (!enrolment) {
    body = <Spinner label="Preparing your secret key…" />;
  } else {
    body = (
      <>
        <ol className="enroll-steps">
          <li>
            <strong>Scan the QR code</strong> with an authenticator app such as Google Authenticator, Microsoft
            Authenticator, 1Password or Bitwarden.
          </li>
          <li>
            <strong>Enter the 6-digit code</strong> the app shows for SIVO.
          </li>
        </ol>
        <div className="enroll-grid">
          <div className="qr">
            <img
              src={svgDataUri(enrolment.qr_svg)}
              alt={`QR code to add ${info?.account ?? 'your account'} to an authenticator app`}
              width={200}
              height={200}
            />
          </div>
          <div className="enroll-secret">
            <p className="field-label">Can’t scan it? Enter this key</p>
            <p className="secret" data-testid="totp-secret" aria-label="Secret key">
              {groupSecret(enrolment.secret)}
            </p>
            <CopyButton text={enrolment.secret} label="Copy key" size="sm" />
            <dl className="enroll-meta">
              <dt>Account</dt>
              <dd>{info?.account ?? me.user?.email}</dd>
              <dt>Type</dt>
              <dd>Time-based, 6 digits, 30 seconds</dd>
            </dl>
          </div>
        </div>
        <FormError error={formError} />
        <form onSubmit={confirm} noValidate className="form form-inline-code">
          <TextField
            ref={codeRef}
            label="Code from the app"
            name="code"
            inputMode="numeric"
            autoComplete="one-time-code"
            maxLength={6}
            placeholder="123456"
            className="input input-code"
            value={code}
            onChange={(e) => setCode(normalizeTotpInput(e.target.value))}
            error={codeError}
          />
          <Button type="submit" variant="primary" busy={busy}>
            Verify and turn on
          </Button>
        </form>
      </>
    );
  }

  if (mode === 'optional') {
    return (
      <>
        <PageHeader
          title="Set up two-step verification"
          trail={['Profile', 'Two-step verification']}
          description="Protect your account with a code from your phone in addition to your password."
        />
        <div className="panel enroll">{body}</div>
        {!result && (
          <p>
            <Link to="/profile">Cancel and go back to your profile</Link>
          </p>
        )}
      </>
    );
  }

  return (
    <div className="auth-page">
      <main className="auth-card auth-card-wide" aria-labelledby="enroll-title">
        <div className="auth-brand">
          <Logo size={36} />
          <span>SIVO</span>
        </div>
        <h1 id="enroll-title" className="auth-title">
          Set up two-step verification
        </h1>
        {!result && (
          <p className="auth-subtitle">
            Your role ({me.role}) requires a second factor. It takes a minute, and you will sign in again afterwards.
          </p>
        )}
        <div className="enroll">{body}</div>
        {!result && (
          <div className="auth-links">
            <button type="button" className="link-btn" onClick={() => void logout()}>
              Cancel and log out
            </button>
          </div>
        )}
      </main>
    </div>
  );
}
