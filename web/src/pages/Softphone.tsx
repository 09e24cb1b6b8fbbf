// Softphone: the agent's landing page. The registration icon sits top-right (green when queues
// can ring this browser, red with the reason when not), the call panel is the page's centre, and
// the agent's status and phone details sit beside it (below it on a narrow screen).
import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '../api/client';
import { useMe } from '../auth/session';
import { Button } from '../components/ui';
import { useRealtime, useRealtimeEvents } from '../realtime/RealtimeProvider';
import { CallPanel } from '../softphone/CallPanel';
import { useSoftphone } from '../softphone/SoftphoneProvider';
import { StatusCard } from '../softphone/StatusCard';
import { registrationView, type Registration } from '../softphone/state';
import { applyStatusEvent, fromApi, idleHint, newer, type MyStatus } from '../softphone/status';

export function SoftphonePage() {
  const me = useMe();
  const phone = useSoftphone();
  const agentId = me.user?.id ?? '';
  const titleRef = useRef<HTMLHeadingElement>(null);
  const { start } = phone;

  useEffect(() => {
    document.title = 'Softphone · SIVO';
    titleRef.current?.focus({ preventScroll: true });
  }, []);
  // Opening the page starts the phone (it keeps running on other pages until logout) and asks
  // for the microphone once, so the first call does not wait on a permission prompt.
  const { checkMic } = phone;
  const micUnknown = phone.state.mic.status === 'unknown';
  useEffect(() => start(), [start]);
  useEffect(() => {
    if (micUnknown && phone.eligible) void checkMic();
    // Once per page visit: a refusal is shown, not asked again and again.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [checkMic, phone.eligible]);

  const [status, setStatus] = useState<MyStatus | null>(null);
  const [statusError, setStatusError] = useState<unknown>(null);
  const { connectionId } = useRealtime();

  // Loaded at first and again after every (re)connection of the live socket, to catch up on
  // changes made while it was down; in between, the socket's events keep it current.
  useEffect(() => {
    if (!agentId) return;
    const controller = new AbortController();
    api.get('/api/v1/agents/{id}/status', { path: { id: agentId }, signal: controller.signal }).then(
      (out) => {
        setStatusError(null);
        // An event newer than this answer may already be here.
        setStatus((cur) => newer(cur, fromApi(out)));
      },
      (err: unknown) => {
        if (!controller.signal.aborted) setStatusError(err);
      },
    );
    return () => controller.abort();
  }, [agentId, connectionId]);

  useRealtimeEvents((event) => setStatus((cur) => applyStatusEvent(cur, event, agentId)));
  const onChanged = useCallback((s: MyStatus) => setStatus((cur) => newer(cur, s)), []);

  const reg = phone.state.registration;
  const registered = reg.status === 'registered';

  if (!phone.eligible) {
    return (
      <>
        <header className="page-header">
          <div className="page-header-text">
            <h1 ref={titleRef} tabIndex={-1}>
              Softphone
            </h1>
          </div>
        </header>
        <div className="panel">
          <p>The softphone is for agents and supervisors: your account has no SIP extension.</p>
        </div>
      </>
    );
  }

  return (
    <div className="sp-page">
      <header className="page-header sp-header">
        <div className="page-header-text">
          <h1 ref={titleRef} tabIndex={-1}>
            Softphone
          </h1>
          <p className="page-description">
            {phone.account ? (
              <>
                Extension <strong data-testid="my-extension">{phone.account.extension}</strong> · {phone.account.domain}
              </>
            ) : (
              'Your browser phone for queue calls.'
            )}
          </p>
        </div>
        <div className="page-actions">
          <RegistrationBadge registration={reg} />
        </div>
      </header>

      {reg.status === 'failed' && (
        <div className="alert alert-error sp-reg-problem" role="alert" data-testid="registration-problem">
          <strong className="alert-title">Your softphone is not registered</strong>
          <div>
            {reg.reason}
            {reg.retrying ? ' Retrying by itself…' : ''}
          </div>
          <div className="button-row">
            <Button size="sm" onClick={phone.restart}>
              Reconnect now
            </Button>
          </div>
        </div>
      )}

      <div className="sp-grid">
        <CallPanel idleHint={idleHint(status?.status, registered)} />
        <div className="sp-side">
          <StatusCard agentId={agentId} status={status} loadError={statusError} onChanged={onChanged} />
          <PhoneCard />
        </div>
      </div>
    </div>
  );
}

/** The spec's "SIP registration green (top-right icon)", with words, never colour alone. */
function RegistrationBadge({ registration }: { registration: Registration }) {
  const v = registrationView(registration);
  return (
    <span className={`sp-reg sp-reg-${v.tone}`} role="status" aria-live="polite" title={v.detail} data-testid="sip-registration" data-state={v.tone}>
      <span className="sp-reg-icon" aria-hidden="true">
        <svg viewBox="0 0 24 24" width="13" height="13" fill="none" stroke="currentColor" strokeWidth="3" strokeLinecap="round" strokeLinejoin="round">
          {v.tone === 'green' ? <path d="M5 12.5l4.5 4.5L19 7.5" /> : v.tone === 'red' ? <path d="M7 7l10 10M17 7L7 17" /> : <path d="M12 7v5l3 2" />}
        </svg>
      </span>
      <span>SIP {v.label.toLowerCase()}</span>
    </span>
  );
}

function PhoneCard() {
  const phone = useSoftphone();
  const { mic, registration } = phone.state;
  const account = phone.account;
  return (
    <section className="panel" aria-labelledby="sp-phone-title">
      <div className="sp-card-head">
        <h2 id="sp-phone-title" className="sp-card-title">
          Phone
        </h2>
      </div>
      <dl className="sp-facts">
        <dt>Registration</dt>
        <dd data-testid="registration-detail">{registrationView(registration).detail}</dd>
        <dt>Server</dt>
        <dd>{account?.wssUrl ? <code>{account.wssUrl}</code> : <span className="muted">—</span>}</dd>
        <dt>Microphone</dt>
        <dd data-testid="mic-state">
          {mic.status === 'granted' ? (
            <span className="sp-mic-ok">Allowed</span>
          ) : mic.status === 'unknown' ? (
            <span className="muted">Not checked yet</span>
          ) : mic.status === 'denied' ? (
            'Blocked'
          ) : (
            'Unavailable'
          )}
        </dd>
      </dl>
      {mic.status !== 'granted' && (
        <div className="button-row">
          <Button size="sm" onClick={() => void phone.checkMic()}>
            {mic.status === 'unknown' ? 'Test microphone' : 'Try the microphone again'}
          </Button>
        </div>
      )}
    </section>
  );
}
