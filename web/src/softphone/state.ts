// The softphone's state, kept apart from JsSIP and React so it can be unit-tested: registration
// (the green/red top-right icon and why it is red), microphone permission, and the one call an
// agent handles at a time, from ringing to the summary shown after it ends.

/** Registration of the browser's SIP user agent (over WSS) at SIVO's registrar. */
export type Registration =
  /** Nothing started yet (credentials not asked for). */
  | { status: 'idle' }
  /** Fetching credentials, connecting the WebSocket or waiting for the REGISTER's answer. */
  | { status: 'connecting'; detail: string }
  | { status: 'registered'; since: number }
  /** Red, with the reason in words; `retrying` when JsSIP reconnects by itself. */
  | { status: 'failed'; reason: string; retrying: boolean };

export type MicState =
  /** Not asked yet. */
  | { status: 'unknown' }
  | { status: 'granted' }
  /** Blocked by the user or the browser: the page says how to allow it. */
  | { status: 'denied'; message: string }
  /** No device, a device in use elsewhere, or an insecure page. */
  | { status: 'unavailable'; message: string };

export type HoldState = 'off' | 'holding' | 'on' | 'resuming';

export type Transfer =
  | { phase: 'idle' }
  /** REFER sent, waiting for the server's answer and NOTIFY. */
  | { phase: 'sending'; target: string }
  /** The server took the REFER (202) and is calling the target. */
  | { phase: 'trying'; target: string }
  /** The target answered: the call is theirs now. */
  | { phase: 'done'; target: string }
  | { phase: 'failed'; target: string; reason: string };

/** `dialing`: an outgoing call not answered yet. */
export type CallPhase = 'dialing' | 'ringing' | 'answering' | 'active' | 'ended';

export interface Call {
  /** JsSIP's session id. */
  id: string;
  /** Whether the agent placed the call (then `number` is the one dialled). */
  direction: 'inbound' | 'outbound';
  /** The caller's number (the From display name the B2BUA sets, else the From user). */
  number: string;
  /** `X-Sivo-Queue`: which queue the call came through, if any. */
  queue: string | null;
  /** `X-Sivo-Call-Id`: SIVO's call id (the CDR's id). */
  sivoCallId: string | null;
  phase: CallPhase;
  receivedAt: number;
  answeredAt: number | null;
  endedAt: number | null;
  muted: boolean;
  hold: HoldState;
  transfer: Transfer;
  /** Keys sent with the keypad during this call. */
  dtmf: string;
  /** Why the call ended, in words (after `phase: 'ended'`). */
  endReason: string | null;
  /** A passing problem to show in the call panel (hold failed, keypad not ready...). */
  notice: string | null;
}

export interface SoftphoneState {
  registration: Registration;
  mic: MicState;
  call: Call | null;
}

export const initialState: SoftphoneState = {
  registration: { status: 'idle' },
  mic: { status: 'unknown' },
  call: null,
};

export type Action =
  | { type: 'reg/connecting'; detail: string }
  | { type: 'reg/registered'; at: number }
  | { type: 'reg/failed'; reason: string; retrying?: boolean }
  | { type: 'reg/stopped' }
  | { type: 'mic'; mic: MicState }
  | { type: 'call/incoming'; id: string; number: string; queue: string | null; sivoCallId: string | null; at: number }
  | { type: 'call/outgoing'; id: string; number: string; at: number }
  | { type: 'call/answering'; id: string }
  | { type: 'call/confirmed'; id: string; at: number }
  | { type: 'call/ended'; id: string; at: number; reason: string }
  | { type: 'call/muted'; id: string; muted: boolean }
  | { type: 'call/hold'; id: string; hold: HoldState }
  | { type: 'call/dtmf'; id: string; tones: string }
  | { type: 'call/notice'; id: string; notice: string | null }
  | { type: 'transfer'; id: string; transfer: Transfer }
  | { type: 'call/dismiss' };

/** Only actions about the current call change it; late events of an older call are ignored. */
function forCall(state: SoftphoneState, id: string, change: (call: Call) => Call): SoftphoneState {
  if (!state.call || state.call.id !== id) return state;
  return { ...state, call: change(state.call) };
}

export function reducer(state: SoftphoneState, action: Action): SoftphoneState {
  switch (action.type) {
    case 'reg/connecting':
      return { ...state, registration: { status: 'connecting', detail: action.detail } };
    case 'reg/registered':
      return { ...state, registration: { status: 'registered', since: action.at } };
    case 'reg/failed':
      return { ...state, registration: { status: 'failed', reason: action.reason, retrying: action.retrying ?? false } };
    case 'reg/stopped':
      return { ...state, registration: { status: 'idle' } };
    case 'mic':
      return { ...state, mic: action.mic };
    case 'call/incoming':
      // A call in progress keeps the panel (the provider answers the new one 486 Busy Here).
      if (state.call && state.call.phase !== 'ended') return state;
      return {
        ...state,
        call: {
          id: action.id,
          direction: 'inbound',
          number: action.number,
          queue: action.queue,
          sivoCallId: action.sivoCallId,
          phase: 'ringing',
          receivedAt: action.at,
          answeredAt: null,
          endedAt: null,
          muted: false,
          hold: 'off',
          transfer: { phase: 'idle' },
          dtmf: '',
          endReason: null,
          notice: null,
        },
      };
    case 'call/outgoing':
      if (state.call && state.call.phase !== 'ended') return state;
      return {
        ...state,
        call: {
          id: action.id,
          direction: 'outbound',
          number: action.number,
          queue: null,
          sivoCallId: null,
          phase: 'dialing',
          receivedAt: action.at,
          answeredAt: null,
          endedAt: null,
          muted: false,
          hold: 'off',
          transfer: { phase: 'idle' },
          dtmf: '',
          endReason: null,
          notice: null,
        },
      };
    case 'call/answering':
      return forCall(state, action.id, (c) => (c.phase === 'ringing' ? { ...c, phase: 'answering', notice: null } : c));
    case 'call/confirmed':
      return forCall(state, action.id, (c) =>
        c.phase === 'ended' ? c : { ...c, phase: 'active', answeredAt: c.answeredAt ?? action.at },
      );
    case 'call/ended':
      return forCall(state, action.id, (c) =>
        c.phase === 'ended' ? c : { ...c, phase: 'ended', endedAt: action.at, endReason: action.reason, hold: 'off', notice: null },
      );
    case 'call/muted':
      return forCall(state, action.id, (c) => ({ ...c, muted: action.muted }));
    case 'call/hold':
      return forCall(state, action.id, (c) => (c.phase === 'ended' ? c : { ...c, hold: action.hold }));
    case 'call/dtmf':
      // The last 32 keys are plenty for an IVR menu or a PIN.
      return forCall(state, action.id, (c) => ({ ...c, dtmf: (c.dtmf + action.tones).slice(-32) }));
    case 'call/notice':
      return forCall(state, action.id, (c) => ({ ...c, notice: action.notice }));
    case 'transfer':
      return forCall(state, action.id, (c) => ({ ...c, transfer: action.transfer }));
    case 'call/dismiss':
      return state.call?.phase === 'ended' ? { ...state, call: null } : state;
  }
}

/** What the call controls may do in a state (buttons are disabled otherwise). */
export function callAbilities(call: Call | null) {
  const live = call?.phase === 'active';
  const transferring = call?.transfer.phase === 'sending' || call?.transfer.phase === 'trying';
  return {
    answer: call?.phase === 'ringing',
    decline: call?.phase === 'ringing',
    hangup: call?.phase === 'active' || call?.phase === 'answering' || call?.phase === 'dialing',
    mute: live,
    hold: live && (call.hold === 'off' || call.hold === 'on'),
    keypad: live && call.hold === 'off',
    transfer: live && !transferring,
    /** Attended transfer and 3-way go through SIVO's API, which needs its call id. */
    consult: live && !transferring && call.direction === 'inbound' && !!call.sivoCallId,
  };
}

/** Seconds as `0:07`, `12:34` or `1:02:03` (a call timer). */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The timer shown for a call: ringing time before the answer, talk time after. */
export function callTimer(call: Call, now: number): string {
  if (call.answeredAt !== null) return formatDuration((call.endedAt ?? now) - call.answeredAt);
  return formatDuration((call.endedAt ?? now) - call.receivedAt);
}

/** The phone keypad: key and the letters under it. */
export const KEYPAD: readonly (readonly [string, string])[] = [
  ['1', ''],
  ['2', 'ABC'],
  ['3', 'DEF'],
  ['4', 'GHI'],
  ['5', 'JKL'],
  ['6', 'MNO'],
  ['7', 'PQRS'],
  ['8', 'TUV'],
  ['9', 'WXYZ'],
  ['*', ''],
  ['0', '+'],
  ['#', ''],
];

/** The DTMF tone for a key typed on the keyboard, or null (RFC 4733 events 0-9, *, #, A-D). */
export function dtmfKey(key: string): string | null {
  if (key.length !== 1) return null;
  const k = key.toUpperCase();
  return /^[0-9*#A-D]$/.test(k) ? k : null;
}

/**
 * A transfer destination as the agent typed it: an extension or a phone number (spaces, dashes,
 * dots and brackets ignored), or a SIP URI. Returns the target for REFER or an error message.
 */
export function parseTransferTarget(input: string): { target: string } | { error: string } {
  const text = input.trim();
  if (!text) return { error: 'Enter an extension or a phone number.' };
  if (/^sips?:/i.test(text)) {
    return /^sips?:[^\s@<>"]+@[^\s@<>"]+$/i.test(text) ? { target: text } : { error: 'That SIP address is not valid.' };
  }
  const compact = text.replace(/[\s\-.()]/g, '');
  if (!/^\+?[0-9*#]{2,32}$/.test(compact)) return { error: 'Use digits only, e.g. 1001 or +4930123456.' };
  return { target: compact };
}

/** The caller's number from the INVITE's From: the display name the B2BUA sets, else the URI user. */
export function callerNumber(displayName: string | null | undefined, user: string | null | undefined): string {
  const name = displayName?.trim().replace(/^"|"$/g, '');
  if (name) return name;
  const u = user?.trim();
  return u ? u : 'Unknown caller';
}

/** Words for why a call ended or failed, from JsSIP's originator and cause (and a SIP status). */
export function describeEnd(originator: string, cause: string, status?: number | null): string {
  const local = originator === 'local';
  switch (cause) {
    case 'Terminated':
      return local ? 'You hung up.' : 'The caller hung up.';
    case 'Canceled':
      return local ? 'Call cancelled.' : 'The caller hung up before you answered.';
    case 'Rejected':
      return local ? 'You declined the call.' : `The call was rejected${status ? ` (${status})` : ''}.`;
    case 'Busy':
      return 'Busy.';
    case 'No Answer':
      return 'Not answered in time.';
    case 'Expires':
      return 'The call stopped ringing.';
    case 'User Denied Media Access':
      return 'The microphone is not available, so the call could not be answered.';
    case 'No ACK':
      return 'The server never confirmed the answer (no ACK).';
    case 'Connection Error':
      return 'The connection to the SIP server was lost.';
    case 'Request Timeout':
      return 'The SIP server did not answer in time.';
    case 'WebRTC Error':
    case 'Bad Media Description':
    case 'Incompatible SDP':
    case 'Missing SDP':
      return `The audio could not be set up (${cause}).`;
    case 'RTP Timeout':
      return 'No audio arrived for too long.';
    case 'Dialog Error':
      return 'The call got out of step with the server (dialog error).';
    default:
      return status ? `The call ended (${status} ${cause}).` : `The call ended (${cause}).`;
  }
}

/** Why registration failed, for the red indicator (JsSIP cause plus the SIP status, if any). */
export function describeRegistrationFailure(cause: string, status?: number | null, reasonPhrase?: string | null): string {
  switch (cause) {
    case 'Authentication Error':
      return 'The SIP server refused the credentials (wrong password?). Log out and in again to fetch fresh ones.';
    case 'Connection Error':
      return 'Cannot reach the SIP server over WSS.';
    case 'Request Timeout':
      return 'The SIP server did not answer the registration in time.';
    case 'Rejected':
      return status === 403
        ? 'The SIP server refused the registration (403 Forbidden): too many failures may have banned this account for a few minutes.'
        : `The SIP server refused the registration${status ? ` (${status}${reasonPhrase ? ` ${reasonPhrase}` : ''})` : ''}.`;
    default:
      return status ? `Registration failed: ${status}${reasonPhrase ? ` ${reasonPhrase}` : ''} (${cause}).` : `Registration failed (${cause}).`;
  }
}

/** What to tell the agent about a failed getUserMedia, by the DOMException's name. */
export function describeMicError(error: unknown): MicState {
  const name = error instanceof Error || (typeof error === 'object' && error !== null && 'name' in error) ? String((error as { name: unknown }).name) : '';
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return {
        status: 'denied',
        message:
          'Microphone access is blocked, so you cannot answer calls. Allow the microphone for this site (the icon at the left of the address bar → Site settings → Microphone → Allow), then reload the page.',
      };
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return { status: 'unavailable', message: 'No microphone was found. Plug in a headset, then try again.' };
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return { status: 'unavailable', message: 'The microphone is in use by another application or could not be started. Close the other application, then try again.' };
    case 'TypeError':
      return { status: 'unavailable', message: 'This page cannot use a microphone: open SIVO over HTTPS.' };
    default:
      return { status: 'unavailable', message: `The microphone could not be opened${name ? ` (${name})` : ''}.` };
  }
}

/** The top-right indicator: green only when registered; red says why. */
export function registrationView(r: Registration): { tone: 'green' | 'amber' | 'red'; label: string; detail: string } {
  switch (r.status) {
    case 'registered':
      return { tone: 'green', label: 'Registered', detail: 'Your softphone is registered: queues can ring it.' };
    case 'connecting':
      return { tone: 'amber', label: 'Connecting…', detail: r.detail };
    case 'failed':
      return { tone: 'red', label: 'Not registered', detail: r.retrying ? `${r.reason} Retrying…` : r.reason };
    case 'idle':
      return { tone: 'red', label: 'Not registered', detail: 'The softphone is not started.' };
  }
}
