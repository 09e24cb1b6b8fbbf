import { describe, expect, it } from 'vitest';
import { cdrQuery, EMPTY_CDR_FILTERS, formatDuration, keyLabel, legView, outcome, readCdrFilters, recordingView, timelineView, validateCdrFilters } from './cdr';

describe('CDR filters', () => {
  it('reads the address, validates and builds the query', () => {
    const f = readCdrFilters(new URLSearchParams('direction=inbound&number=%2B49%2030&bogus=1'));
    expect(f).toEqual({ ...EMPTY_CDR_FILTERS, direction: 'inbound', number: '+49 30' });
    expect(cdrQuery(f)).toMatchObject({ direction: 'inbound', number: '4930', did: undefined });
    expect(readCdrFilters(new URLSearchParams('direction=sideways')).direction).toBe('');
    expect(validateCdrFilters({ ...EMPTY_CDR_FILTERS, number: 'abc' }).number).toMatch(/Digits/);
    expect(validateCdrFilters({ ...EMPTY_CDR_FILTERS, did: '030 123' }).did).toMatch(/E\.164/);
    expect(validateCdrFilters({ ...EMPTY_CDR_FILTERS, from: '2026-05-20T10:00:00Z', to: '2026-05-20T09:00:00Z' }).to).toMatch(/after/);
    expect(validateCdrFilters({ ...EMPTY_CDR_FILTERS, hangup_cause: 'normal clearing' }).hangup_cause).toBeDefined();
  });

  it('formats durations and outcomes', () => {
    expect(formatDuration(65_000)).toBe('1:05');
    expect(formatDuration(3_725_000)).toBe('1:02:05');
    expect(formatDuration(400)).toBe('0:00');
    expect(outcome({ answered_at: 'x', queued_at: 'x', hangup_cause: 'normal_clearing', hangup_side: 'caller' })).toEqual({ label: 'Answered', tone: 'success' });
    expect(outcome({ answered_at: null, queued_at: 'x', hangup_cause: 'cancelled', hangup_side: 'caller' }).label).toBe('Abandoned');
    expect(outcome({ answered_at: null, queued_at: null, hangup_cause: 'no_answer', hangup_side: 'system' }).label).toBe('No answer');
  });
});

describe('the Technical tab', () => {
  it('reads legs with top-level or nested RTP counters', () => {
    const a = legView({ id: 'a', role: 'caller', codec: 'PCMU/8000', packets_sent: 1000, packets_received: 990, packets_lost: 10, jitter_ms: 2.345, remote: '203.0.113.5:40000', rtcp_received: 4, note: 'x' }, 0);
    expect(a).toMatchObject({ title: 'A', role: 'caller', codec: 'PCMU/8000', remote: '203.0.113.5:40000' });
    expect(a.rtp).toMatchObject({ sent: 1000, received: 990, lost: 10, jitterMs: 2.345, rtcp: 4 });
    expect(a.rtp.lossPct).toBeCloseTo(1);
    expect(a.extra).toEqual([['note', 'x']]);
    expect(legView({ leg: 'agent', rtp: null, note: '' }, 0).extra).toEqual([]);
    const b = legView({ leg: 'B', stats: { codec: 'PCMA/8000', packets_received: 5, packets_lost: 0, jitter_ms: 0 }, sdp: { offer: 'x' } }, 1);
    expect(b).toMatchObject({ title: 'B', codec: 'PCMA/8000', rtp: { received: 5, lost: 0, lossPct: 0 } });
    expect(b.extra).toEqual([['sdp.offer', 'x']]);
    expect(legView('weird', 2).title).toBe('Leg 3');
  });

  it('reads the call engine’s legs: caller and agent with LegStats under rtp', () => {
    const rtp = { packets_received: 6198, packets_sent: 6250, bytes_received: 1, bytes_sent: 2, packets_lost: 52, jitter_ms: 4.25, remote: '185.45.152.14:31000', codec: 'PCMA/8000', dtmf_received: '12#', rtcp_received: 25 };
    const caller = legView({ leg: 'caller', from: '+4915112345678', transport: 'udp', sip_call_id: 'abc@carrier', codec: 'PCMA/8000', rtp }, 0);
    expect(caller).toMatchObject({ title: 'Caller', transport: 'UDP', codec: 'PCMA/8000', remote: '185.45.152.14:31000', rtp: { lost: 52, jitterMs: 4.25, rtcp: 25 } });
    expect(caller.extra).toEqual([
      ['from', '+4915112345678'],
      ['sip_call_id', 'abc@carrier'],
      ['rtp.dtmf_received', '12#'],
    ]);
    // An agent leg that never answered: no codec at the top, none in RTP either; its outcome says why.
    const agent = legView({ leg: 'agent', agent_id: 'u1', extension: '1000', transport: 'wss', sip_call_id: 'x', outcome: 'busy', codec: null, rtp: null }, 1);
    expect(agent).toMatchObject({ title: 'Agent', agentId: 'u1', extension: '1000', transport: 'WSS', outcome: 'busy', codec: undefined });
    // A null top-level codec does not hide the negotiated one in the RTP counters.
    expect(legView({ leg: 'agent', codec: null, rtp: { codec: 'PCMU/8000' } }, 0).codec).toBe('PCMU/8000');
  });

  it('turns the timeline into offsets, labels and kinds', () => {
    const items = timelineView(
      [
        { at: '2026-05-20T10:00:01.250Z', sip: 'INVITE', direction: 'in', leg: 'a' },
        { at: '2026-05-20T10:00:03Z', event: 'transcription_started', provider: 'deepgram' },
        { rtp: { packets: 10 } },
        { at: '2026-05-20T10:00:09Z', event: 'sf_push_error', error: '401' },
        'closed',
      ],
      '2026-05-20T10:00:00Z',
    );
    expect(items[0]).toMatchObject({ offset: '+1.250 s', label: 'INVITE (in)', kind: 'sip', leg: 'a', details: [] });
    expect(items[1]).toMatchObject({ label: 'transcription_started', kind: 'transcription', details: [['provider', 'deepgram']] });
    expect(items[2]).toMatchObject({ label: 'Rtp', kind: 'media', details: [['rtp.packets', 10]], offset: undefined });
    expect(items[3]).toMatchObject({ kind: 'error' });
    expect(items[4]).toMatchObject({ label: 'closed' });
    expect(timelineView(null, '2026-05-20T10:00:00Z')).toEqual([]);
  });

  it('reads the call engine’s timeline: {at, leg, kind, detail: {message, …}}', () => {
    const items = timelineView(
      [
        { at: '2026-05-20T10:00:00.010Z', leg: 'caller', kind: 'sip', detail: { message: 'INVITE received', transport: 'udp' } },
        { at: '2026-05-20T10:00:00.020Z', leg: 'caller', kind: 'codec', detail: { codec: 'PCMA/8000', payload_type: 8 } },
        { at: '2026-05-20T10:00:01Z', leg: 'caller', kind: 'queue', detail: { message: 'entered queue', queue: 'Support' } },
        { at: '2026-05-20T10:00:05Z', leg: 'agent', kind: 'sip', detail: { message: '486 Busy Here', agent_id: 'u1' } },
        { at: '2026-05-20T10:00:06Z', leg: 'agent', kind: 'queue', detail: { message: 'agent not reachable', reason: 'no binding' } },
        { at: '2026-05-20T10:00:09Z', leg: 'caller', kind: 'call', detail: { message: 'ended', cause: 'normal_clearing', side: 'caller' } },
      ],
      '2026-05-20T10:00:00Z',
    );
    expect(items.map((i) => [i.offset, i.label, i.kind, i.leg])).toEqual([
      ['+0.010 s', 'INVITE received', 'sip', 'caller'],
      ['+0.020 s', 'codec negotiated', 'media', 'caller'],
      ['+1.000 s', 'entered queue', 'queue', 'caller'],
      ['+5.000 s', '486 Busy Here', 'error', 'agent'],
      ['+6.000 s', 'agent not reachable', 'error', 'agent'],
      ['+9.000 s', 'ended', 'event', 'caller'],
    ]);
    expect(items[0]!.details).toEqual([['transport', 'udp']]);
    expect(items[1]!.details).toEqual([
      ['codec', 'PCMA/8000'],
      ['payload_type', 8],
    ]);
    expect(items[5]!.details).toEqual([
      ['cause', 'normal_clearing'],
      ['side', 'caller'],
    ]);
  });

  it('names fields for people', () => {
    expect(keyLabel('sip_call_id')).toBe('SIP Call-ID');
    expect(keyLabel('rtp.dtmf_received')).toBe('DTMF received');
    expect(keyLabel('queue')).toBe('Queue');
  });

  it('plays a recording only from an http(s) or same-origin URL', () => {
    expect(recordingView({ url: '/api/v1/recordings/x.wav?sig=1', duration_ms: 61000, bytes: 976000 })).toMatchObject({ url: '/api/v1/recordings/x.wav?sig=1', durationMs: 61000 });
    expect(recordingView({ url: 'javascript:alert(1)' })?.url).toBeUndefined();
    expect(recordingView(null)).toBeNull();
  });
});
