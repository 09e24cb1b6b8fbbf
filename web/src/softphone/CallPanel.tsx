// The call panel: waiting (with a dialer), ringing (answer/decline), calling out, in a call
// (timer, mute, hold, keypad, blind transfer, consult → attended transfer or 3-way, hang up) and
// the summary after it ends.
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { api } from '../api/client';
import { describeError } from '../api/problem';
import { Button } from '../components/ui';
import { NumberField } from './NumberField';
import { useSoftphone } from './SoftphoneProvider';
import { callAbilities, callTimer, dtmfKey, KEYPAD, type Call, type MicState } from './state';

export function CallPanel({ idleHint }: { idleHint: ReactNode }) {
  const phone = useSoftphone();
  const call = phone.state.call;
  if (!call) return <IdlePanel hint={idleHint} mic={phone.state.mic} />;
  return <LivePanel key={call.id} call={call} mic={phone.state.mic} />;
}

function IdlePanel({ hint, mic }: { hint: ReactNode; mic: MicState }) {
  return (
    <section className="panel sp-call sp-call-idle" aria-labelledby="sp-call-title" data-testid="call-panel" data-phase="idle">
      <div className="sp-call-top">
        <span className="sp-avatar" aria-hidden="true">
          <PhoneIcon size={28} />
        </span>
        <h2 id="sp-call-title" className="sp-kicker">
          No call
        </h2>
        <p className="sp-idle-text">{hint}</p>
      </div>
      <div className="sp-call-body">
        {mic.status === 'denied' || mic.status === 'unavailable' ? <MicProblem mic={mic} /> : null}
        <Dialer />
      </div>
    </section>
  );
}

/** Calls an extension, or an external number through the tenant's trunk. */
function Dialer() {
  const phone = useSoftphone();
  const [number, setNumber] = useState('');
  const [error, setError] = useState<string | null>(null);
  const registered = phone.state.registration.status === 'registered';
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(phone.dial(number));
  };
  return (
    <form className="sp-transfer-form" onSubmit={submit} noValidate aria-label="Dialer">
      <NumberField
        label="Number to call"
        value={number}
        onChange={(value) => {
          setNumber(value);
          setError(null);
        }}
        error={error}
        hint="An extension rings that agent; a number goes out with your company's caller id."
      />
      <Button type="submit" variant="primary" disabled={!registered}>
        Call
      </Button>
    </form>
  );
}

function LivePanel({ call, mic }: { call: Call; mic: MicState }) {
  const phone = useSoftphone();
  const can = callAbilities(call);
  const [tray, setTray] = useState<'none' | 'keypad' | 'transfer' | 'consult'>('none');
  const now = useTicker(call.phase !== 'ended');
  const answerRef = useRef<HTMLButtonElement>(null);
  const held = call.hold === 'on' || call.hold === 'holding';

  // A ringing call takes the focus: Enter answers.
  useEffect(() => {
    if (call.phase === 'ringing') answerRef.current?.focus();
  }, [call.phase]);

  // Typing digits on the keyboard sends them while the keypad is open.
  useEffect(() => {
    if (tray !== 'keypad' || !can.keypad) return;
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement | null;
      if (target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' || target.isContentEditable)) return;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const tone = dtmfKey(e.key);
      if (!tone) return;
      e.preventDefault();
      phone.sendDtmf(tone);
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [tray, can.keypad, phone]);

  const phaseClass =
    call.phase === 'ringing' ? 'sp-call-ringing' : call.phase === 'ended' ? 'sp-call-ended' : held ? 'sp-call-held' : 'sp-call-active';
  const kicker =
    call.phase === 'ringing'
      ? 'Incoming call'
      : call.phase === 'dialing'
        ? 'Calling…'
        : call.phase === 'answering'
        ? 'Connecting…'
        : call.phase === 'ended'
          ? 'Call ended'
          : call.hold === 'on'
            ? 'On hold'
            : call.hold === 'holding'
              ? 'Putting on hold…'
              : call.hold === 'resuming'
                ? 'Resuming…'
                : 'Connected';

  return (
    <section
      className={`panel sp-call ${phaseClass}`}
      aria-labelledby="sp-call-title"
      data-testid="call-panel"
      data-phase={call.phase}
      data-hold={call.hold}
      data-call-id={call.sivoCallId ?? undefined}
    >
      <div className="sp-call-top">
        <span className="sp-avatar" aria-hidden="true">
          <PhoneIcon size={28} />
        </span>
        <h2 id="sp-call-title" className="sp-kicker" aria-live="polite">
          {kicker}
        </h2>
        <p className="sp-number" data-testid="caller-number">
          {call.number}
        </p>
        <p className="sp-meta">
          {call.queue ? (
            <span>
              Queue <strong data-testid="caller-queue">{call.queue}</strong>
            </span>
          ) : (
            <span>Direct call</span>
          )}
        </p>
        <p className="sp-timer" role="timer" aria-label={call.answeredAt ? 'Call duration' : 'Ringing for'} data-testid="call-timer">
          {callTimer(call, now)}
        </p>
      </div>

      <div className="sp-call-body">
        {call.phase === 'ringing' && (
          <>
            {(mic.status === 'denied' || mic.status === 'unavailable') && <MicProblem mic={mic} />}
            <div className="sp-answer-row">
              <button ref={answerRef} type="button" className="btn sp-big sp-btn-answer" onClick={phone.answer}>
                <PhoneIcon size={18} /> Answer
              </button>
              <button type="button" className="btn sp-big sp-btn-hangup" onClick={phone.decline}>
                <HangupIcon /> Decline
              </button>
            </div>
          </>
        )}

        {(call.phase === 'active' || call.phase === 'answering' || call.phase === 'dialing') && (
          <>
            <div className="sp-controls" role="group" aria-label="Call controls">
              <ControlButton label={call.muted ? 'Unmute' : 'Mute'} pressed={call.muted} disabled={!can.mute} onClick={phone.toggleMute} icon={<MicIcon off={call.muted} />} />
              <ControlButton
                label={call.hold === 'on' || call.hold === 'resuming' ? 'Resume' : 'Hold'}
                pressed={held}
                warn
                disabled={!can.hold}
                onClick={phone.toggleHold}
                icon={<PauseIcon />}
              />
              <ControlButton
                label="Keypad"
                pressed={tray === 'keypad'}
                disabled={call.phase !== 'active'}
                onClick={() => setTray((t) => (t === 'keypad' ? 'none' : 'keypad'))}
                icon={<KeypadIcon />}
              />
              <ControlButton
                label="Transfer"
                pressed={tray === 'transfer'}
                disabled={call.phase !== 'active'}
                onClick={() => setTray((t) => (t === 'transfer' ? 'none' : 'transfer'))}
                icon={<TransferIcon />}
              />
              {call.direction === 'inbound' && call.sivoCallId && (
                <ControlButton
                  label="Consult"
                  pressed={tray === 'consult'}
                  disabled={call.phase !== 'active'}
                  onClick={() => setTray((t) => (t === 'consult' ? 'none' : 'consult'))}
                  icon={<TransferIcon />}
                />
              )}
            </div>

            {call.notice && (
              <p className="alert alert-warning" role="status">
                {call.notice}
              </p>
            )}
            {tray === 'keypad' && <KeypadTray call={call} enabled={can.keypad} onKey={phone.sendDtmf} />}
            {tray === 'transfer' && <TransferTray call={call} enabled={can.transfer} onTransfer={phone.transfer} />}
            {tray === 'consult' && call.sivoCallId && <ConsultTray callId={call.sivoCallId} enabled={can.consult} />}
            {tray !== 'transfer' && call.transfer.phase === 'failed' && (
              <p className="alert alert-error" role="alert">
                Transfer to {call.transfer.target} failed: {call.transfer.reason}. The caller is still with you.
              </p>
            )}
            {call.phase === 'active' && <AudioLevels />}

            <button type="button" className="btn sp-big sp-btn-hangup" onClick={phone.hangup} disabled={!can.hangup}>
              <HangupIcon /> Hang up
            </button>
          </>
        )}

        {call.phase === 'ended' && (
          <>
            <p className={`alert ${call.answeredAt ? 'alert-info' : 'alert-warning'}`} role="status" data-testid="call-end-reason">
              {call.endReason}
            </p>
            <div className="button-row">
              <Button onClick={phone.dismiss}>Dismiss</Button>
            </div>
          </>
        )}
      </div>
    </section>
  );
}

function ControlButton({
  label,
  pressed,
  disabled,
  onClick,
  icon,
  warn,
}: {
  label: string;
  pressed: boolean;
  disabled: boolean;
  onClick: () => void;
  icon: ReactNode;
  warn?: boolean;
}) {
  return (
    <button type="button" className={`sp-control${warn ? ' sp-control-warn' : ''}`} aria-pressed={pressed} disabled={disabled} onClick={onClick}>
      {icon}
      <span>{label}</span>
    </button>
  );
}

function KeypadTray({ call, enabled, onKey }: { call: Call; enabled: boolean; onKey: (tone: string) => void }) {
  return (
    <div className="sp-tray" role="group" aria-label="Keypad">
      <p className="sp-dtmf-sent" aria-live="polite" data-testid="dtmf-sent">
        {call.dtmf || <span className="muted small">Keys you press are sent to the caller (RFC 4733)</span>}
      </p>
      <div className="sp-keypad">
        {KEYPAD.map(([key, letters]) => (
          <button key={key} type="button" className="sp-key" disabled={!enabled} onClick={() => onKey(key)} aria-label={`Key ${key}`}>
            <span className="sp-key-digit">{key}</span>
            <span className="sp-key-letters" aria-hidden="true">
              {letters}
            </span>
          </button>
        ))}
      </div>
      {!enabled && call.hold !== 'off' && <p className="muted small">Resume the call to use the keypad.</p>}
    </div>
  );
}

function TransferTray({ call, enabled, onTransfer }: { call: Call; enabled: boolean; onTransfer: (target: string) => string | null }) {
  const [target, setTarget] = useState('');
  const [error, setError] = useState<string | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  useEffect(() => inputRef.current?.focus(), []);
  const t = call.transfer;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const problem = onTransfer(target);
    setError(problem);
    if (problem) inputRef.current?.focus();
  };
  return (
    <div className="sp-tray">
      <p className="sp-tray-title">Blind transfer</p>
      <form className="sp-transfer-form" onSubmit={submit} noValidate aria-label="Blind transfer">
        <NumberField
          ref={inputRef}
          label="Extension or number"
          name="target"
          value={target}
          onChange={setTarget}
          error={error}
          hint="The caller goes straight to this destination; you leave the call."
        />
        <Button type="submit" variant="primary" disabled={!enabled} busy={t.phase === 'sending' || t.phase === 'trying'}>
          Transfer
        </Button>
      </form>
      <div aria-live="polite" data-testid="transfer-status">
        {t.phase === 'sending' && <p className="muted small">Asking the server to transfer to {t.target}…</p>}
        {t.phase === 'trying' && <p className="muted small">Calling {t.target}…</p>}
        {t.phase === 'done' && <p className="small">Transferred to {t.target}.</p>}
        {t.phase === 'failed' && (
          <p className="alert alert-error" role="alert">
            Transfer to {t.target} failed: {t.reason}. The caller is still with you.
          </p>
        )}
      </div>
    </div>
  );
}

type ConsultPhase = 'idle' | 'starting' | 'consulting' | 'conference' | 'busy';

/**
 * Attended transfer and 3-way, through SIVO's call-control API: the caller waits with music while
 * this phone talks to the person consulted; then hand the caller over, bring all three together,
 * or go back to the caller.
 */
function ConsultTray({ callId, enabled }: { callId: string; enabled: boolean }) {
  const [target, setTarget] = useState('');
  const [phase, setPhase] = useState<ConsultPhase>('idle');
  const [consulted, setConsulted] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const run = async (next: ConsultPhase, before: ConsultPhase, action: () => Promise<unknown>, done: string) => {
    setPhase('busy');
    setError(null);
    try {
      await action();
      setPhase(next);
      setInfo(done);
    } catch (err) {
      setPhase(before);
      setError(describeError(err));
    }
  };
  const start = (e: FormEvent) => {
    e.preventDefault();
    const text = target.trim().replace(/[\s\-.()]/g, '');
    if (!/^\+?[0-9]{2,32}$/.test(text)) {
      setError('Use digits only, e.g. 1001 or +4930123456.');
      return;
    }
    const body = text.length <= 6 && !text.startsWith('+') ? { extension: text } : { number: text };
    setConsulted(text);
    void run('consulting', 'idle', () => api.post('/api/v1/calls/{id}/consult', { path: { id: callId }, body }), `Calling ${text}; the caller hears hold music.`);
  };
  const path = { path: { id: callId } };
  return (
    <div className="sp-tray">
      <p className="sp-tray-title">Consult, then transfer or 3-way</p>
      {phase === 'idle' || (phase === 'busy' && !consulted) ? (
        <form className="sp-transfer-form" onSubmit={start} noValidate aria-label="Consult">
          {/* The reason for an error is the status line below (it may be the server's). */}
          <NumberField label="Extension or number to consult" value={target} onChange={setTarget} invalid={Boolean(error)} />
          <Button type="submit" variant="primary" disabled={!enabled} busy={phase === 'busy'}>
            Consult
          </Button>
        </form>
      ) : (
        <div className="button-row" role="group" aria-label="Consultation">
          <Button
            variant="primary"
            busy={phase === 'busy'}
            onClick={() => void run('idle', phase === 'busy' ? 'consulting' : phase, () => api.post('/api/v1/calls/{id}/consult/complete', path), `The caller is with ${consulted} now.`)}
          >
            Complete transfer
          </Button>
          {phase !== 'conference' && (
            <Button onClick={() => void run('conference', 'consulting', () => api.post('/api/v1/calls/{id}/conference', path), `3-way call with ${consulted}.`)}>
              3-way call
            </Button>
          )}
          <Button onClick={() => void run('idle', 'consulting', () => api.post('/api/v1/calls/{id}/consult/cancel', path), 'Back with the caller.')}>
            Cancel consult
          </Button>
        </div>
      )}
      <div aria-live="polite" data-testid="consult-status">
        {error ? (
          <p className="alert alert-error" role="alert">
            {error}
          </p>
        ) : (
          info && <p className="small">{info}</p>
        )}
      </div>
    </div>
  );
}

/** Caller and microphone levels from WebRTC stats: a quick check that audio flows both ways. */
function AudioLevels() {
  const phone = useSoftphone();
  const [levels, setLevels] = useState<{ inbound: number; outbound: number } | null>(null);
  useEffect(() => {
    let stop = false;
    let lastPackets = -1;
    const poll = async () => {
      const report = await phone.getStats().catch(() => null);
      if (stop || !report) return;
      let inbound = 0;
      let outbound = 0;
      let packets = 0;
      report.forEach((s: Record<string, unknown>) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          if (typeof s.audioLevel === 'number') inbound = s.audioLevel;
          packets = Number(s.packetsReceived ?? 0);
        }
        if (s.type === 'media-source' && s.kind === 'audio' && typeof s.audioLevel === 'number') outbound = s.audioLevel;
      });
      // The level stays at its last value when packets stop (on hold): nothing new is silence.
      if (packets === lastPackets) inbound = 0;
      lastPackets = packets;
      setLevels({ inbound, outbound });
    };
    void poll();
    const t = setInterval(() => void poll(), 500);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [phone]);
  const pct = (v: number) => `${Math.min(100, Math.round(Math.sqrt(v) * 100))}%`;
  return (
    <div className="sp-levels" aria-hidden="true">
      <span>Caller</span>
      <span className="sp-meter">
        <span style={{ width: pct(levels?.inbound ?? 0) }} />
      </span>
      <span>You</span>
      <span className="sp-meter">
        <span style={{ width: pct(levels?.outbound ?? 0) }} />
      </span>
    </div>
  );
}

export function MicProblem({ mic }: { mic: MicState }) {
  if (mic.status !== 'denied' && mic.status !== 'unavailable') return null;
  return (
    <div className="alert alert-error" role="alert" data-testid="mic-problem">
      <strong className="alert-title">{mic.status === 'denied' ? 'Microphone blocked' : 'Microphone unavailable'}</strong>
      <div>{mic.message}</div>
    </div>
  );
}

/** Re-renders every second while `running`; returns the time. */
function useTicker(running: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [running]);
  return now;
}

export function PhoneIcon({ size = 18 }: { size?: number }) {
  return (
    <svg viewBox="0 0 24 24" width={size} height={size} fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
      <path d="M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1 1 .4 1.9.7 2.8a2 2 0 0 1-.5 2.1L8 9.9a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.8.7a2 2 0 0 1 1.7 2z" />
    </svg>
  );
}

function HangupIcon() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
      <path d="M3 15.5c5-4.7 13-4.7 18 0l-2.3 2.3a1.5 1.5 0 0 1-2 .1l-1.9-1.5a1.5 1.5 0 0 1-.5-1.4l.2-1.3a10.6 10.6 0 0 0-5 0l.2 1.3a1.5 1.5 0 0 1-.5 1.4L7.3 18a1.5 1.5 0 0 1-2-.1z" />
    </svg>
  );
}

function MicIcon({ off }: { off: boolean }) {
  return (
    <svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
      <rect x="9" y="3" width="6" height="11" rx="3" />
      <path d="M5 11a7 7 0 0 0 14 0M12 18v3" />
      {off && <path d="M4 4l16 16" />}
    </svg>
  );
}

function PauseIcon() {
  return (
    <svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" aria-hidden="true">
      <path d="M9 5v14M15 5v14" />
    </svg>
  );
}

function KeypadIcon() {
  return (
    <svg viewBox="0 0 24 24" width="20" height="20" fill="currentColor" aria-hidden="true">
      {[5, 12, 19].flatMap((y) => [5, 12, 19].map((x) => <circle key={`${x}-${y}`} cx={x} cy={y} r="1.8" />))}
    </svg>
  );
}

function TransferIcon() {
  return (
    <svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
      <path d="M4 12h14M13 6l6 6-6 6" />
    </svg>
  );
}
