// The agent's browser phone: one JsSIP user agent per signed-in tab, registered over WSS with the
// SIP credentials the session fetches (never typed). It lives above the pages, so a call keeps
// going (and a new one still rings) while the agent looks at another page; it starts when the
// Softphone page first opens and stops (un-registers) at logout.
//
// Calls from SIVO's B2BUA arrive WITHOUT SDP (delayed offer): JsSIP puts our offer in the 200 OK
// and takes the B2BUA's answer from the ACK (RTCSession handles a body-less INVITE by itself).
// `rtcOfferConstraints.offerToReceiveAudio` matters there: without an offer to look at, JsSIP
// would otherwise drop `audio: true` from the media constraints.
import { createContext, useCallback, useContext, useEffect, useMemo, useReducer, useRef, useState, type ReactNode } from 'react';
import type { EndEvent, RTCSession } from 'jssip/lib/RTCSession';
import type { UA } from 'jssip/lib/UA';
import { Link, useLocation } from 'react-router';
import { api } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { useAuth } from '../auth/session';
import { createRinger } from './ringtone';
import { preferG711 } from './sdp';
import {
  callerNumber,
  describeEnd,
  describeMicError,
  describeRegistrationFailure,
  initialState,
  parseTransferTarget,
  reducer,
  type Call,
  type SoftphoneState,
} from './state';
import './softphone.css';

export const SOFTPHONE_PATH = '/softphone';

/** What the agent may see of their SIP account (the password stays inside the provider). */
export interface SipAccount {
  extension: string;
  domain: string;
  wssUrl: string | null;
}

export interface SoftphoneValue {
  state: SoftphoneState;
  account: SipAccount | null;
  /** Whether this user can have a softphone at all (agents and supervisors of a tenant). */
  eligible: boolean;
  /** Starts the phone if it is not running (the Softphone page calls it when it opens). */
  start: () => void;
  /** Fetches fresh credentials and registers again. */
  restart: () => void;
  /** Asks for the microphone now (so the first call does not wait on a prompt). */
  checkMic: () => Promise<void>;
  answer: () => void;
  decline: () => void;
  hangup: () => void;
  toggleMute: () => void;
  toggleHold: () => void;
  sendDtmf: (tone: string) => void;
  /** Blind transfer (REFER); returns an error message for an unusable target. */
  transfer: (input: string) => string | null;
  /** Calls an extension or an external number (through the tenant's trunk); returns an error
   * message for unusable input or when the phone cannot call now. */
  dial: (input: string) => string | null;
  dismiss: () => void;
  /** The current call's RTCPeerConnection stats (audio levels, packets), or null. */
  getStats: () => Promise<RTCStatsReport | null>;
}

const SoftphoneContext = createContext<SoftphoneValue | null>(null);

export function useSoftphone(): SoftphoneValue {
  const v = useContext(SoftphoneContext);
  if (!v) throw new Error('useSoftphone outside SoftphoneProvider');
  return v;
}

const ANSWER_OPTIONS = {
  mediaConstraints: { audio: true, video: false },
  // The B2BUA's INVITE has no SDP: we make the offer. Audio only.
  rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
  // SIVO's media server is ICE-lite on a reachable address: host candidates are enough, and
  // gathering without STUN finishes at once.
  pcConfig: { iceServers: [] as RTCIceServer[] },
};

/** Retry delays after a failed registration: 5 s doubling to 60 s. */
const retryDelay = (attempt: number) => Math.min(60_000, 5_000 * 2 ** attempt);

export function SoftphoneProvider({ children }: { children: ReactNode }) {
  const { state: auth } = useAuth();
  const me = auth.status === 'authenticated' ? auth.me : null;
  const userId = me?.user?.id ?? null;
  const eligible = !!userId && !!me?.tenant_id && (me.role === 'agent' || me.role === 'supervisor');

  const [state, dispatch] = useReducer(reducer, initialState);
  const [account, setAccount] = useState<SipAccount | null>(null);
  const [wanted, setWanted] = useState(false);
  const [generation, setGeneration] = useState(0);

  const ua = useRef<UA | null>(null);
  const session = useRef<RTCSession | null>(null);
  const callRef = useRef<Call | null>(null);
  /** The session that a blind transfer just handed over (its end is "Transferred to …"). */
  const transferred = useRef<{ id: string; target: string } | null>(null);
  const audio = useRef<HTMLAudioElement>(null);
  // Allocates two closures per render and nothing else until it rings.
  const ringer = useRef(createRinger());

  useEffect(() => {
    callRef.current = state.call;
  });

  /** Follows a session (incoming or outgoing) to its end: audio, SDP, mute, the end reason. */
  const follow = useCallback((s: RTCSession, id: string, direction: 'inbound' | 'outbound') => {
    let micFailed = false;

    const play = (pc: RTCPeerConnection) =>
      pc.addEventListener('track', (ev: RTCTrackEvent) => {
        const el = audio.current;
        if (!el) return;
        el.srcObject = ev.streams[0] ?? new MediaStream([ev.track]);
        void el.play().catch(() => undefined);
      });
    // An outgoing session made its RTCPeerConnection inside `ua.call()`, before we could listen
    // for 'peerconnection'; its remote track arrives later, with the answer.
    if (s.connection) play(s.connection);
    else s.on('peerconnection', (e: { peerconnection: RTCPeerConnection }) => play(e.peerconnection));
    // Offer G.711 first: carriers speak it, so the media server relays instead of transcoding.
    s.on('sdp', (e: { originator: string; type: string; sdp: string }) => {
      if (e.originator === 'local') e.sdp = preferG711(e.sdp);
    });
    s.on('getusermediafailed', (err: unknown) => {
      micFailed = true;
      dispatch({ type: 'mic', mic: describeMicError(err) });
    });
    s.on('accepted', () => ringer.current.stop());
    s.on('confirmed', () => {
      ringer.current.stop();
      dispatch({ type: 'mic', mic: { status: 'granted' } });
      dispatch({ type: 'call/confirmed', id, at: Date.now() });
    });
    s.on('muted', () => dispatch({ type: 'call/muted', id, muted: true }));
    s.on('unmuted', () => dispatch({ type: 'call/muted', id, muted: false }));
    const finish = (e: EndEvent) => {
      ringer.current.stop();
      if (session.current === s) session.current = null;
      const el = audio.current;
      if (el) el.srcObject = null;
      const call = callRef.current?.id === id ? callRef.current : null;
      const status = e.message && 'status_code' in e.message ? e.message.status_code : null;
      let reason = describeEnd(e.originator, e.cause, status);
      if (direction === 'outbound' && e.originator === 'remote' && e.cause === 'Terminated') reason = 'The other party hung up.';
      const handedOver = transferred.current?.id === id ? transferred.current.target : null;
      if (handedOver) reason = `Transferred to ${handedOver}.`;
      else if (micFailed) reason = 'The call could not be answered: the microphone is not available.';
      else if (e.cause === 'WebRTC Error' && (call?.hold === 'holding' || call?.hold === 'resuming'))
        reason = 'Hold failed (the server refused the re-INVITE), so the call ended.';
      dispatch({ type: 'call/ended', id, at: Date.now(), reason });
    };
    s.on('ended', finish);
    s.on('failed', finish);
  }, []);

  /** A new INVITE: show it, ring, follow the session to its end. */
  const onIncoming = useCallback((s: RTCSession, request: IncomingInviteLike) => {
    const busy = session.current && !session.current.isEnded();
    if (busy) {
      try {
        s.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      } catch {
        /* gone */
      }
      return;
    }
    const id = s.id;
    session.current = s;
    const number = callerNumber(request.from?.display_name, request.from?.uri?.user);
    const queue = header(request, 'X-Sivo-Queue');
    const sivoCallId = header(request, 'X-Sivo-Call-Id');
    dispatch({ type: 'call/incoming', id, number, queue, sivoCallId, at: Date.now() });
    ringer.current.start();
    follow(s, id, 'inbound');
  }, [follow]);

  // The user agent: (re)built when started, on restart, and for another user.
  useEffect(() => {
    if (!wanted || !eligible || !userId) return;
    const ring = ringer.current;
    let stopped = false;
    let attempt = 0;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    const controller = new AbortController();
    let current: UA | null = null;

    const stopUa = () => {
      const u = current;
      current = null;
      if (ua.current === u) ua.current = null;
      if (u) {
        u.removeAllListeners();
        try {
          u.stop();
        } catch {
          /* already stopped */
        }
      }
    };

    const scheduleRetry = () => {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => {
        if (stopped) return;
        // A call in progress keeps its connection; retry after it.
        if (session.current) return scheduleRetry();
        stopUa();
        void boot();
      }, retryDelay(attempt++));
    };

    const boot = async () => {
      dispatch({ type: 'reg/connecting', detail: 'Fetching your SIP credentials…' });
      let creds;
      try {
        creds = await api.get('/api/v1/agents/{id}/sip-credentials', { path: { id: userId }, signal: controller.signal });
      } catch (err) {
        if (stopped) return;
        const reason =
          err instanceof ApiError && err.status === 404
            ? 'Your account has no SIP extension (only agents and supervisors have one).'
            : `Could not fetch your SIP credentials: ${describeError(err)}`;
        dispatch({ type: 'reg/failed', reason, retrying: !(err instanceof ApiError && err.status === 404) });
        if (!(err instanceof ApiError && err.status < 500)) scheduleRetry();
        return;
      }
      if (stopped) return;
      setAccount({ extension: creds.extension, domain: creds.domain, wssUrl: creds.wss_url ?? null });
      if (!creds.wss_url) {
        dispatch({
          type: 'reg/failed',
          reason: 'This SIVO server has no secure WebSocket address for browser phones (sip.wss_url is not set). Ask your administrator.',
        });
        return;
      }
      const wss = creds.wss_url;
      let JsSIP: typeof import('jssip');
      try {
        JsSIP = await import('jssip');
      } catch (err) {
        if (stopped) return;
        dispatch({ type: 'reg/failed', reason: `The phone could not load: ${describeError(err)}`, retrying: true });
        scheduleRetry();
        return;
      }
      if (stopped) return;
      dispatch({ type: 'reg/connecting', detail: `Connecting to ${wss}…` });
      let u: UA;
      try {
        u = new JsSIP.UA({
          sockets: [new JsSIP.WebSocketInterface(wss)],
          uri: creds.uri,
          authorization_user: creds.username,
          password: creds.password,
          realm: creds.domain,
          display_name: me?.user?.display_name || undefined,
          register: true,
          register_expires: 300,
          session_timers: true,
          no_answer_timeout: 120,
          connection_recovery_min_interval: 2,
          connection_recovery_max_interval: 30,
          user_agent: `SIVO Softphone (JsSIP ${JsSIP.version})`,
        });
      } catch (err) {
        dispatch({ type: 'reg/failed', reason: `The phone could not start: ${describeError(err)}` });
        return;
      }
      current = u;
      ua.current = u;

      u.on('connecting', () => {
        if (!u.isRegistered()) dispatch({ type: 'reg/connecting', detail: `Connecting to ${wss}…` });
      });
      u.on('connected', () => dispatch({ type: 'reg/connecting', detail: `Registering extension ${creds.extension}…` }));
      u.on('disconnected', (e: { error?: boolean; code?: number; reason?: string }) => {
        if (stopped) return;
        const detail = e.code && e.code !== 1006 ? ` (${e.code}${e.reason ? ` ${e.reason}` : ''})` : '';
        console.warn(`[SIP] WSS connection to ${wss} closed${detail}; JsSIP reconnects by itself`);
        dispatch({ type: 'reg/failed', reason: `No connection to the SIP server at ${wss}${detail}.`, retrying: true });
      });
      u.on('registered', () => {
        attempt = 0;
        dispatch({ type: 'reg/registered', at: Date.now() });
      });
      u.on('unregistered', () => {
        if (!stopped) dispatch({ type: 'reg/failed', reason: 'The registration ended.', retrying: true });
      });
      u.on('registrationFailed', (e: { cause?: string; response?: { status_code?: number; reason_phrase?: string } | null }) => {
        if (stopped) return;
        const reason = describeRegistrationFailure(e.cause ?? 'Unknown', e.response?.status_code, e.response?.reason_phrase);
        console.warn(`[SIP] REGISTER over WSS failed: ${reason}`);
        // The connection drop is reported (and recovered) by the socket; other failures are
        // retried with fresh credentials (a rotated password is picked up so).
        dispatch({ type: 'reg/failed', reason, retrying: true });
        if (e.cause !== 'Connection Error') scheduleRetry();
      });
      u.on('newRTCSession', (e: { originator: string; session: RTCSession; request: IncomingInviteLike }) => {
        if (e.originator !== 'remote') return;
        onIncoming(e.session, e.request);
      });
      u.start();
    };

    void boot();
    return () => {
      stopped = true;
      controller.abort();
      clearTimeout(retryTimer);
      const s = session.current;
      session.current = null;
      if (s && !s.isEnded()) {
        try {
          s.terminate();
        } catch {
          /* ended meanwhile */
        }
      }
      stopUa();
      ring.stop();
      dispatch({ type: 'reg/stopped' });
    };
    // `me` is read once per start for the display name; a new user changes `userId`.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [wanted, eligible, userId, generation, onIncoming]);

  const current = () => {
    const s = session.current;
    return s && !s.isEnded() ? s : null;
  };

  const answer = useCallback(() => {
    const s = current();
    const call = callRef.current;
    if (!s || !call || call.phase !== 'ringing') return;
    ringer.current.stop();
    dispatch({ type: 'call/answering', id: call.id });
    try {
      s.answer(ANSWER_OPTIONS);
    } catch (err) {
      dispatch({ type: 'call/notice', id: call.id, notice: `Could not answer: ${describeError(err)}` });
    }
  }, []);

  const decline = useCallback(() => {
    const s = current();
    if (!s) return;
    ringer.current.stop();
    try {
      // 603 Decline: the queue offers the call to the next agent.
      s.terminate({ status_code: 603, reason_phrase: 'Decline' });
    } catch {
      /* ended meanwhile */
    }
  }, []);

  const hangup = useCallback(() => {
    const s = current();
    if (!s) return;
    try {
      s.terminate();
    } catch {
      /* ended meanwhile */
    }
  }, []);

  const toggleMute = useCallback(() => {
    const s = current();
    if (!s) return;
    if (s.isMuted().audio) s.unmute({ audio: true });
    else s.mute({ audio: true });
  }, []);

  const toggleHold = useCallback(() => {
    const s = current();
    const call = callRef.current;
    if (!s || !call || call.phase !== 'active') return;
    const id = call.id;
    if (call.hold === 'off') {
      dispatch({ type: 'call/hold', id, hold: 'holding' });
      // re-INVITE with a=sendonly: the B2BUA plays hold music to the caller.
      const sent = s.hold({}, () => dispatch({ type: 'call/hold', id, hold: 'on' }));
      if (!sent) {
        dispatch({ type: 'call/hold', id, hold: 'off' });
        dispatch({ type: 'call/notice', id, notice: 'Hold is not possible right now; try again in a moment.' });
      }
    } else if (call.hold === 'on') {
      dispatch({ type: 'call/hold', id, hold: 'resuming' });
      const sent = s.unhold({}, () => dispatch({ type: 'call/hold', id, hold: 'off' }));
      if (!sent) {
        dispatch({ type: 'call/hold', id, hold: 'on' });
        dispatch({ type: 'call/notice', id, notice: 'Resume is not possible right now; try again in a moment.' });
      }
    }
  }, []);

  const sendDtmf = useCallback((tone: string) => {
    const s = current();
    const call = callRef.current;
    if (!s || !call || call.phase !== 'active') return;
    try {
      // RFC 4733 events in the RTP stream (JsSIP calls it RFC2833), through RTCDTMFSender.
      s.sendDTMF(tone, { transportType: 'RFC2833' as never, duration: 120, interToneGap: 70 });
      dispatch({ type: 'call/dtmf', id: call.id, tones: tone });
    } catch (err) {
      dispatch({ type: 'call/notice', id: call.id, notice: `The key could not be sent: ${describeError(err)}` });
    }
  }, []);

  const transfer = useCallback((input: string): string | null => {
    const s = current();
    const call = callRef.current;
    if (!s || !call || call.phase !== 'active') return 'There is no call to transfer.';
    const parsed = parseTransferTarget(input);
    if ('error' in parsed) return parsed.error;
    const { target } = parsed;
    const id = call.id;
    dispatch({ type: 'transfer', id, transfer: { phase: 'sending', target } });
    const fail = (reason: string) => {
      console.warn(`[SIP] blind transfer to ${target} failed: ${reason}`);
      dispatch({ type: 'transfer', id, transfer: { phase: 'failed', target, reason } });
    };
    try {
      s.refer(target, {
        eventHandlers: {
          requestSucceeded: () => dispatch({ type: 'transfer', id, transfer: { phase: 'trying', target } }),
          requestFailed: (e: { response?: { status_code?: number; reason_phrase?: string } | null; cause?: string }) =>
            fail(e.response?.status_code ? `${e.response.status_code} ${e.response.reason_phrase ?? ''}`.trim() : (e.cause ?? 'no answer')),
          trying: () => dispatch({ type: 'transfer', id, transfer: { phase: 'trying', target } }),
          progress: () => dispatch({ type: 'transfer', id, transfer: { phase: 'trying', target } }),
          accepted: () => {
            transferred.current = { id, target };
            dispatch({ type: 'transfer', id, transfer: { phase: 'done', target } });
            // The caller is with the target now: leave the call (the server may already have).
            const still = session.current === s && !s.isEnded();
            if (still) {
              try {
                s.terminate();
              } catch {
                /* ended meanwhile */
              }
            }
          },
          failed: (e: { status_line?: { status_code?: number; reason_phrase?: string } }) =>
            fail(e.status_line?.status_code ? `${e.status_line.status_code} ${e.status_line.reason_phrase ?? ''}`.trim() : 'the transfer failed'),
        },
      });
    } catch (err) {
      fail(describeError(err));
    }
    return null;
  }, []);

  const dial = useCallback(
    (input: string): string | null => {
      const u = ua.current;
      if (!u || !u.isRegistered() || !account) return 'The phone is not registered yet.';
      if (session.current && !session.current.isEnded()) return 'Finish the current call first.';
      const parsed = parseTransferTarget(input);
      if ('error' in parsed) return parsed.error;
      const number = parsed.target.replace(/^sips?:/i, '').split('@')[0] ?? parsed.target;
      const target = /^sips?:/i.test(parsed.target) ? parsed.target : `sip:${parsed.target}@${account.domain}`;
      let s: RTCSession;
      try {
        // SIVO challenges the INVITE (407) and JsSIP answers with the same credentials.
        s = u.call(target, { ...ANSWER_OPTIONS, rtcOfferConstraints: undefined }) as RTCSession;
      } catch (err) {
        return `The call could not start: ${describeError(err)}`;
      }
      session.current = s;
      dispatch({ type: 'call/outgoing', id: s.id, number, at: Date.now() });
      follow(s, s.id, 'outbound');
      return null;
    },
    [account, follow],
  );

  const dismiss = useCallback(() => dispatch({ type: 'call/dismiss' }), []);

  const start = useCallback(() => setWanted(true), []);
  const restart = useCallback(() => {
    setWanted(true);
    setGeneration((g) => g + 1);
  }, []);

  const checkMic = useCallback(async () => {
    if (!navigator.mediaDevices?.getUserMedia) {
      dispatch({ type: 'mic', mic: describeMicError(new TypeError('no mediaDevices')) });
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      for (const t of stream.getTracks()) t.stop();
      dispatch({ type: 'mic', mic: { status: 'granted' } });
    } catch (err) {
      dispatch({ type: 'mic', mic: describeMicError(err) });
    }
  }, []);

  // Follow the browser's microphone permission where it tells us (Chromium does).
  useEffect(() => {
    if (!wanted || !eligible) return;
    let status: PermissionStatus | null = null;
    let cancelled = false;
    const apply = () => {
      if (!status) return;
      if (status.state === 'denied') dispatch({ type: 'mic', mic: describeMicError({ name: 'NotAllowedError' }) });
      else if (status.state === 'granted') dispatch({ type: 'mic', mic: { status: 'granted' } });
    };
    navigator.permissions
      ?.query({ name: 'microphone' as PermissionName })
      .then((s) => {
        if (cancelled) return;
        status = s;
        apply();
        s.addEventListener('change', apply);
      })
      .catch(() => undefined);
    return () => {
      cancelled = true;
      status?.removeEventListener('change', apply);
    };
  }, [wanted, eligible]);

  const getStats = useCallback(async () => {
    const pc = current()?.connection;
    return pc ? pc.getStats() : null;
  }, []);

  const value = useMemo<SoftphoneValue>(
    () => ({
      state,
      account,
      eligible,
      start,
      restart,
      checkMic,
      answer,
      decline,
      hangup,
      toggleMute,
      toggleHold,
      sendDtmf,
      transfer,
      dial,
      dismiss,
      getStats,
    }),
    [state, account, eligible, start, restart, checkMic, answer, decline, hangup, toggleMute, toggleHold, sendDtmf, transfer, dial, dismiss, getStats],
  );

  return (
    <SoftphoneContext.Provider value={value}>
      {children}
      {/* The caller's voice; outside the pages so it keeps playing while the agent navigates. */}
      <audio ref={audio} autoPlay className="sp-remote-audio" data-testid="softphone-remote-audio" />
      <IncomingBanner call={state.call} onAnswer={answer} onDecline={decline} />
    </SoftphoneContext.Provider>
  );
}

/** On another page, a ringing call shows here with Answer/Decline and a link to the softphone. */
function IncomingBanner({ call, onAnswer, onDecline }: { call: Call | null; onAnswer: () => void; onDecline: () => void }) {
  const location = useLocation();
  if (!call || location.pathname === SOFTPHONE_PATH) return null;
  if (call.phase !== 'ringing' && call.phase !== 'active' && call.phase !== 'answering') return null;
  return (
    <div className="sp-banner" role="region" aria-label="Softphone call">
      <span className={`sp-banner-dot${call.phase === 'ringing' ? ' sp-ringing' : ''}`} aria-hidden="true" />
      <span className="sp-banner-text">
        <strong>{call.phase === 'ringing' ? 'Incoming call' : 'On a call'}</strong> {call.number}
        {call.queue && <span className="muted"> · {call.queue}</span>}
      </span>
      {call.phase === 'ringing' && (
        <>
          <button type="button" className="btn btn-sm sp-btn-answer" onClick={onAnswer}>
            Answer
          </button>
          <button type="button" className="btn btn-sm btn-danger" onClick={onDecline}>
            Decline
          </button>
        </>
      )}
      <Link to={SOFTPHONE_PATH} className="btn btn-sm btn-ghost">
        Open softphone
      </Link>
    </div>
  );
}

/** The parts of JsSIP's IncomingRequest we read. */
interface IncomingInviteLike {
  from?: { display_name?: string | null; uri?: { user?: string | null } | null } | null;
  getHeader?: (name: string) => string | undefined;
  hasHeader?: (name: string) => boolean;
}

function header(request: IncomingInviteLike, name: string): string | null {
  try {
    if (request.hasHeader && !request.hasHeader(name)) return null;
    const v = request.getHeader?.(name)?.trim();
    return v ? v : null;
  } catch {
    return null;
  }
}
