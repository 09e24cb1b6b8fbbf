import { describe, expect, it } from 'vitest';
import {
  callAbilities,
  callerNumber,
  callTimer,
  describeEnd,
  describeMicError,
  describeRegistrationFailure,
  dtmfKey,
  formatDuration,
  initialState,
  KEYPAD,
  parseTransferTarget,
  reducer,
  registrationView,
  type Action,
  type SoftphoneState,
} from './state';
import { audioPayloadTypes, preferG711 } from './sdp';

const run = (actions: Action[], from: SoftphoneState = initialState) => actions.reduce(reducer, from);
const incoming = (id = 's1', at = 1_000): Action => ({
  type: 'call/incoming',
  id,
  number: '+15550001111',
  queue: 'Support',
  sivoCallId: '0190f3c2-0000-7000-8000-000000000001',
  at,
});

describe('softphone registration', () => {
  it('goes connecting → registered (green) → failed (red, with the reason)', () => {
    let s = run([{ type: 'reg/connecting', detail: 'Connecting to wss://sip.example:8089…' }]);
    expect(registrationView(s.registration)).toMatchObject({ tone: 'amber', label: 'Connecting…' });
    s = reducer(s, { type: 'reg/registered', at: 5 });
    expect(s.registration).toEqual({ status: 'registered', since: 5 });
    expect(registrationView(s.registration).tone).toBe('green');
    s = reducer(s, { type: 'reg/failed', reason: 'The connection to the SIP server was lost.', retrying: true });
    const v = registrationView(s.registration);
    expect(v).toMatchObject({ tone: 'red', label: 'Not registered' });
    expect(v.detail).toBe('The connection to the SIP server was lost. Retrying…');
    expect(registrationView(reducer(s, { type: 'reg/stopped' }).registration).tone).toBe('red');
  });

  it('explains registration failures in words', () => {
    expect(describeRegistrationFailure('Authentication Error', 401)).toMatch(/refused the credentials/);
    expect(describeRegistrationFailure('Rejected', 403, 'Forbidden')).toMatch(/403 Forbidden.*banned/);
    expect(describeRegistrationFailure('Rejected', 503, 'Service Unavailable')).toBe('The SIP server refused the registration (503 Service Unavailable).');
    expect(describeRegistrationFailure('Connection Error')).toBe('Cannot reach the SIP server over WSS.');
    expect(describeRegistrationFailure('SIP Failure Code', 500, 'Server Error')).toBe('Registration failed: 500 Server Error (SIP Failure Code).');
  });
});

describe('softphone calls', () => {
  it('rings, answers, talks, ends and is dismissed', () => {
    let s = run([incoming()]);
    expect(s.call).toMatchObject({ phase: 'ringing', number: '+15550001111', queue: 'Support', answeredAt: null });
    expect(callAbilities(s.call)).toMatchObject({ answer: true, decline: true, hangup: false, mute: false, keypad: false });

    s = run([{ type: 'call/answering', id: 's1' }, { type: 'call/confirmed', id: 's1', at: 4_000 }], s);
    expect(s.call).toMatchObject({ phase: 'active', answeredAt: 4_000 });
    expect(callAbilities(s.call)).toMatchObject({ answer: false, hangup: true, mute: true, hold: true, keypad: true, transfer: true });
    expect(callTimer(s.call!, 65_500)).toBe('1:01');

    // A second confirmation (re-INVITE) does not restart the timer.
    s = reducer(s, { type: 'call/confirmed', id: 's1', at: 9_000 });
    expect(s.call?.answeredAt).toBe(4_000);

    s = reducer(s, { type: 'call/ended', id: 's1', at: 10_000, reason: 'The caller hung up.' });
    expect(s.call).toMatchObject({ phase: 'ended', endedAt: 10_000, endReason: 'The caller hung up.' });
    // The timer stops at the end.
    expect(callTimer(s.call!, 99_000)).toBe('0:06');
    expect(callAbilities(s.call)).toMatchObject({ hangup: false, mute: false });
    // Ending twice keeps the first reason.
    expect(reducer(s, { type: 'call/ended', id: 's1', at: 11_000, reason: 'x' }).call?.endReason).toBe('The caller hung up.');
    expect(reducer(s, { type: 'call/dismiss' }).call).toBeNull();
  });

  it('counts ringing time before the answer', () => {
    const s = run([incoming('s1', 1_000)]);
    expect(callTimer(s.call!, 8_200)).toBe('0:07');
  });

  it('ignores a second call while one is in progress, and events of other calls', () => {
    let s = run([incoming('s1'), { type: 'call/confirmed', id: 's1', at: 2_000 }]);
    const before = s;
    s = reducer(s, incoming('s2', 3_000));
    expect(s).toBe(before);
    expect(reducer(s, { type: 'call/muted', id: 's2', muted: true })).toBe(s);
    // After the first call ended, a new call replaces its summary.
    s = run([{ type: 'call/ended', id: 's1', at: 5_000, reason: 'You hung up.' }, incoming('s3', 6_000)], s);
    expect(s.call).toMatchObject({ id: 's3', phase: 'ringing', dtmf: '', endReason: null });
  });

  it('tracks mute, hold and the keys sent', () => {
    let s = run([incoming(), { type: 'call/confirmed', id: 's1', at: 2_000 }, { type: 'call/muted', id: 's1', muted: true }]);
    expect(s.call?.muted).toBe(true);
    s = reducer(s, { type: 'call/hold', id: 's1', hold: 'holding' });
    // While the re-INVITE is in flight, hold cannot be pressed again and the keypad is off.
    expect(callAbilities(s.call)).toMatchObject({ hold: false, keypad: false });
    s = reducer(s, { type: 'call/hold', id: 's1', hold: 'on' });
    expect(callAbilities(s.call)).toMatchObject({ hold: true, keypad: false, hangup: true });
    s = run([{ type: 'call/hold', id: 's1', hold: 'off' }, { type: 'call/dtmf', id: 's1', tones: '12' }, { type: 'call/dtmf', id: 's1', tones: '#' }], s);
    expect(s.call?.dtmf).toBe('12#');
    expect(callAbilities(s.call).keypad).toBe(true);
    s = reducer(s, { type: 'call/dtmf', id: 's1', tones: '9'.repeat(40) });
    expect(s.call?.dtmf).toHaveLength(32);
  });

  it('follows a blind transfer and keeps the call when it fails', () => {
    let s = run([incoming(), { type: 'call/confirmed', id: 's1', at: 2_000 }]);
    s = reducer(s, { type: 'transfer', id: 's1', transfer: { phase: 'sending', target: '1001' } });
    expect(callAbilities(s.call).transfer).toBe(false);
    s = reducer(s, { type: 'transfer', id: 's1', transfer: { phase: 'failed', target: '1001', reason: '405 Method Not Allowed' } });
    expect(s.call).toMatchObject({ phase: 'active', transfer: { phase: 'failed', reason: '405 Method Not Allowed' } });
    expect(callAbilities(s.call).transfer).toBe(true);
  });

  it('describes how calls end', () => {
    expect(describeEnd('remote', 'Terminated')).toBe('The caller hung up.');
    expect(describeEnd('local', 'Terminated')).toBe('You hung up.');
    expect(describeEnd('remote', 'Canceled')).toBe('The caller hung up before you answered.');
    expect(describeEnd('local', 'Rejected')).toBe('You declined the call.');
    expect(describeEnd('local', 'User Denied Media Access')).toMatch(/microphone/);
    expect(describeEnd('system', 'SIP Failure Code', 500)).toBe('The call ended (500 SIP Failure Code).');
  });
});

describe('softphone helpers', () => {
  it('formats call timers', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(7_999)).toBe('0:07');
    expect(formatDuration(754_000)).toBe('12:34');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
    expect(formatDuration(-5)).toBe('0:00');
  });

  it('has a phone keypad and maps typed keys to DTMF', () => {
    expect(KEYPAD.map(([k]) => k).join('')).toBe('123456789*0#');
    expect(KEYPAD[1]).toEqual(['2', 'ABC']);
    expect(dtmfKey('5')).toBe('5');
    expect(dtmfKey('#')).toBe('#');
    expect(dtmfKey('*')).toBe('*');
    expect(dtmfKey('a')).toBe('A');
    expect(dtmfKey('e')).toBeNull();
    expect(dtmfKey('Enter')).toBeNull();
  });

  it('reads transfer destinations', () => {
    expect(parseTransferTarget(' 1001 ')).toEqual({ target: '1001' });
    expect(parseTransferTarget('+49 (30) 123-456')).toEqual({ target: '+4930123456' });
    expect(parseTransferTarget('sip:1002@acme.sip.example.com')).toEqual({ target: 'sip:1002@acme.sip.example.com' });
    expect(parseTransferTarget('')).toEqual({ error: 'Enter an extension or a phone number.' });
    expect(parseTransferTarget('bob')).toHaveProperty('error');
    expect(parseTransferTarget('sip:nobody')).toEqual({ error: 'That SIP address is not valid.' });
  });

  it('shows the caller number from the From header', () => {
    expect(callerNumber('+15550001111', 'anonymous')).toBe('+15550001111');
    expect(callerNumber('"+15550001111"', null)).toBe('+15550001111');
    expect(callerNumber(undefined, '+4930123')).toBe('+4930123');
    expect(callerNumber('', '')).toBe('Unknown caller');
  });

  it('explains microphone problems', () => {
    const denied = describeMicError(new DOMException('Permission denied', 'NotAllowedError'));
    expect(denied.status).toBe('denied');
    expect(denied).toHaveProperty('message', expect.stringMatching(/Microphone access is blocked/));
    expect(describeMicError(new DOMException('none', 'NotFoundError'))).toMatchObject({ status: 'unavailable', message: expect.stringMatching(/No microphone/) });
    expect(describeMicError(new DOMException('busy', 'NotReadableError')).status).toBe('unavailable');
    expect(describeMicError('weird')).toMatchObject({ status: 'unavailable' });
  });
});

describe('SDP codec preference', () => {
  const chrome = [
    'v=0',
    'o=- 1 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126',
    'c=IN IP4 0.0.0.0',
    'a=rtpmap:111 opus/48000/2',
    'a=rtpmap:63 red/48000/2',
    'a=rtpmap:9 G722/8000',
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:13 CN/8000',
    'a=rtpmap:110 telephone-event/48000',
    'a=rtpmap:126 telephone-event/8000',
    '',
  ].join('\r\n');

  it('puts PCMU, PCMA and telephone-event/8000 first and keeps everything', () => {
    const out = preferG711(chrome);
    expect(audioPayloadTypes(out)).toEqual(['0', '8', '126', '111', '63', '9', '13', '110']);
    expect(out.split('\r\n').length).toBe(chrome.split('\r\n').length);
    expect(out.replace(/^m=audio.*$/m, '')).toBe(chrome.replace(/^m=audio.*$/m, ''));
  });

  it('knows the static payload types without rtpmap and leaves video alone', () => {
    const sdp = 'v=0\nm=audio 9 RTP/AVP 3 8 0\nm=video 9 RTP/AVP 96 0\na=rtpmap:96 VP8/90000\n';
    const out = preferG711(sdp);
    expect(audioPayloadTypes(out)).toEqual(['0', '8', '3']);
    expect(out).toContain('m=video 9 RTP/AVP 96 0');
  });
});

describe('outgoing calls', () => {
  it('dial → active → ended; hang-up allowed while dialing; consult only for inbound calls with a SIVO id', () => {
    let s = run([{ type: 'call/outgoing', id: 'o1', number: '+15557654321', at: 1_000 }]);
    expect(s.call).toMatchObject({ phase: 'dialing', direction: 'outbound', number: '+15557654321', queue: null });
    expect(callAbilities(s.call)).toMatchObject({ hangup: true, answer: false, mute: false });
    // A call arriving meanwhile does not replace it (the provider answers 486).
    s = reducer(s, incoming('s2'));
    expect(s.call?.id).toBe('o1');
    s = reducer(s, { type: 'call/confirmed', id: 'o1', at: 3_000 });
    expect(s.call).toMatchObject({ phase: 'active', answeredAt: 3_000 });
    expect(callAbilities(s.call)).toMatchObject({ transfer: true, consult: false });
    s = reducer(s, { type: 'call/ended', id: 'o1', at: 9_000, reason: 'You hung up.' });
    expect(callTimer(s.call!, 20_000)).toBe('0:06');

    const inbound = run([incoming('s3'), { type: 'call/answering', id: 's3' }, { type: 'call/confirmed', id: 's3', at: 2_000 }]);
    expect(callAbilities(inbound.call).consult).toBe(true);
  });
});
