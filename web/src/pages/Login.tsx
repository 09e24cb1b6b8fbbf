import { useRef, useState, type FormEvent } from 'react';
import { Navigate, useLocation, useNavigate } from 'react-router';
import { api } from '../api/client';
import { ApiError } from '../api/problem';
import { useAuth } from '../auth/session';
import { Logo } from '../components/Logo';
import { Button, FormError, Notice, TextField, focusFirstError } from '../components/ui';
import { canAccess, homeFor } from '../lib/nav';
import { normalizeTotpInput } from '../lib/totp';
import { collectErrors, validateRecoveryCode, validateTotpCode } from '../lib/validation';

export const INVALID_CREDENTIALS = 'Invalid credentials. Too many attempts? Try again later.';

type Step = 'password' | 'code';

export function LoginPage() {
  const { state, refresh, clearNotice } = useAuth();
  const location = useLocation();
  const navigate = useNavigate();
  const locState = (location.state ?? {}) as { from?: string; email?: string };
  const [step, setStep] = useState<Step>('password');
  const [prefilled] = useState(() => Boolean(locState.email ?? (state.status === 'anonymous' && state.email)));
  const [email, setEmail] = useState(locState.email ?? (state.status === 'anonymous' ? state.email : undefined) ?? '');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [useRecovery, setUseRecovery] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  if (state.status === 'authenticated') {
    const from = locState.from;
    const target = from && canAccess(state.me.role, from.split('?')[0] ?? from) ? from : homeFor(state.me.role);
    return <Navigate to={target} replace />;
  }
  if (state.status === 'enrolling') return <Navigate to="/mfa/enroll" replace />;
  const notice = state.status === 'anonymous' ? state.notice : undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    const fieldErrors =
      step === 'password'
        ? collectErrors({
            email: email.trim() ? undefined : 'Enter your email address.',
            password: password ? undefined : 'Enter your password.',
          })
        : collectErrors(useRecovery ? { recovery_code: validateRecoveryCode(code) } : { totp_code: validateTotpCode(code) });
    setErrors(fieldErrors);
    if (Object.keys(fieldErrors).length) {
      focusFirstError(formRef.current, fieldErrors);
      return;
    }
    setBusy(true);
    try {
      await api.post('/api/v1/auth/login', {
        body: {
          email: email.trim(),
          password,
          ...(step === 'code' ? (useRecovery ? { recovery_code: code.trim() } : { totp_code: code }) : {}),
        },
      });
      setPassword('');
      clearNotice();
      const next = await refresh();
      if (next.status === 'enrolling') navigate('/mfa/enroll', { replace: true });
      // authenticated: the redirect above happens on re-render
    } catch (err) {
      if (err instanceof ApiError && err.code === 'mfa_required') {
        setStep('code');
        setCode('');
        setErrors({});
      } else if (err instanceof ApiError && (err.code === 'invalid_credentials' || err.status === 401)) {
        setFormError(INVALID_CREDENTIALS);
        if (step === 'code') {
          setCode('');
          formRef.current?.querySelector<HTMLInputElement>('input')?.focus();
        } else {
          setPassword('');
          formRef.current?.querySelector<HTMLInputElement>('input[name=password]')?.focus();
        }
      } else if (err instanceof ApiError && err.hasFieldErrors) {
        setErrors(err.fieldErrors);
      } else {
        setFormError(err instanceof Error ? err.message : 'Something went wrong.');
      }
    } finally {
      setBusy(false);
    }
  };

  const back = () => {
    setStep('password');
    setPassword('');
    setCode('');
    setFormError(null);
    setErrors({});
    setUseRecovery(false);
  };

  return (
    <div className="auth-page">
      <main className="auth-card" aria-labelledby="login-title">
        <div className="auth-brand">
          <Logo size={36} />
          <span>SIVO</span>
        </div>
        {step === 'password' ? (
          <>
            <h1 id="login-title" className="auth-title">
              Sign in
            </h1>
            <p className="auth-subtitle">Contact center backoffice</p>
          </>
        ) : (
          <>
            <h1 id="login-title" className="auth-title">
              Two-step verification
            </h1>
            <p className="auth-subtitle">
              {useRecovery
                ? 'Enter one of the recovery codes you saved when you set up two-step verification.'
                : 'Enter the 6-digit code from your authenticator app.'}
            </p>
          </>
        )}
        {notice && step === 'password' && <Notice tone="info">{notice}</Notice>}
        <FormError>{formError}</FormError>
        <form ref={formRef} onSubmit={submit} noValidate className="form">
          {step === 'password' ? (
            <>
              <TextField
                label="Email"
                name="email"
                type="email"
                autoComplete="username"
                autoFocus={!prefilled}
                value={email}
                onChange={(e) => setEmail(e.target.value)}
                error={errors.email}
              />
              <TextField
                label="Password"
                name="password"
                type="password"
                autoComplete="current-password"
                autoFocus={prefilled}
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                error={errors.password}
              />
              <Button type="submit" variant="primary" busy={busy} className="btn-block">
                Sign in
              </Button>
            </>
          ) : useRecovery ? (
            <>
              <TextField
                key="recovery"
                label="Recovery code"
                name="recovery_code"
                autoComplete="off"
                autoCapitalize="none"
                spellCheck={false}
                autoFocus
                placeholder="abcde-12345"
                className="input input-code"
                value={code}
                onChange={(e) => setCode(e.target.value)}
                error={errors.recovery_code}
              />
              <Button type="submit" variant="primary" busy={busy} className="btn-block">
                Verify
              </Button>
            </>
          ) : (
            <>
              <TextField
                key="totp"
                label="Authentication code"
                name="totp_code"
                inputMode="numeric"
                autoComplete="one-time-code"
                autoFocus
                maxLength={6}
                placeholder="123456"
                className="input input-code"
                value={code}
                onChange={(e) => setCode(normalizeTotpInput(e.target.value))}
                error={errors.totp_code}
              />
              <Button type="submit" variant="primary" busy={busy} className="btn-block">
                Verify
              </Button>
            </>
          )}
        </form>
        {step === 'code' && (
          <div className="auth-links">
            <button
              type="button"
              className="link-btn"
              onClick={() => {
                setUseRecovery((r) => !r);
                setCode('');
                setErrors({});
                setFormError(null);
              }}
            >
              {useRecovery ? 'Use a code from your authenticator app' : 'Use a recovery code instead'}
            </button>
            <button type="button" className="link-btn" onClick={back}>
              Back to sign in
            </button>
          </div>
        )}
      </main>
      <p className="auth-footer">Locked out or lost your device? Ask an administrator of your organisation.</p>
    </div>
  );
}
