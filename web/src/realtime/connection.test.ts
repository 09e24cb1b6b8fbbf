import { describe, expect, it } from 'vitest';
import { isSivoEvent } from './events';
import { parseRefusal, retryDelayMs } from './connection';

describe('realtime connection', () => {
  it('reads the server’s refusal as a problem code and a message for people', () => {
    expect(parseRefusal('session_expired: session has expired; log in again')).toEqual({
      code: 'session_expired',
      message: 'session has expired; log in again',
      sessionEnded: true,
    });
    expect(parseRefusal('unauthorized: invalid or revoked API key').sessionEnded).toBe(true);
    expect(parseRefusal('shutting_down: the server is shutting down')).toMatchObject({ code: 'shutting_down', sessionEnded: false });
    // socket.io-client's own errors are not refusals by the server.
    expect(parseRefusal('websocket error')).toMatchObject({ code: 'connect_failed', message: 'websocket error', sessionEnded: false });
  });

  it('backs off exponentially to 30 s with jitter', () => {
    expect(retryDelayMs(0, () => 0.5)).toBe(1_000);
    expect(retryDelayMs(1, () => 0.5)).toBe(2_000);
    expect(retryDelayMs(4, () => 0.5)).toBe(16_000);
    expect(retryDelayMs(50, () => 0.5)).toBe(30_000);
    expect(retryDelayMs(0, () => 0)).toBe(500);
    expect(retryDelayMs(50, () => 0.999)).toBeLessThanOrEqual(45_000);
  });

  it('accepts only event envelopes', () => {
    expect(isSivoEvent({ id: 'e', type: 'agent.paused', tenant_id: 't', created_at: '2026-01-01T00:00:00Z', data: {} })).toBe(true);
    expect(isSivoEvent({ id: 'e', type: 'agent.paused' })).toBe(false);
    expect(isSivoEvent('agent.paused')).toBe(false);
    expect(isSivoEvent(null)).toBe(false);
  });
});
