import { describe, expect, it } from 'vitest';
import { describeAttempt, endpointBody, groupEventTypes, mapEndpointErrors, validateEndpoint, type EndpointForm } from './webhooks';

const base: EndpointForm = { url: 'https://hooks.example.com/sivo', description: '', allEvents: true, eventTypes: [], enabled: true };

describe('webhook endpoint form', () => {
  it('accepts https URLs only', () => {
    expect(validateEndpoint(base)).toEqual({});
    expect(validateEndpoint({ ...base, url: '' }).url).toMatch(/Enter/);
    expect(validateEndpoint({ ...base, url: 'http://hooks.example.com' }).url).toMatch(/HTTPS only/);
    expect(validateEndpoint({ ...base, url: 'hooks.example.com' }).url).toMatch(/full URL/);
    expect(validateEndpoint({ ...base, url: 'https://u:p@hooks.example.com' }).url).toMatch(/credentials/);
  });

  it('needs at least one event unless all are wanted', () => {
    expect(validateEndpoint({ ...base, allEvents: false }).event_types).toMatch(/at least one/);
    expect(validateEndpoint({ ...base, allEvents: false, eventTypes: ['call.created'] })).toEqual({});
    expect(validateEndpoint({ ...base, description: 'x'.repeat(501) }).description).toMatch(/500/);
  });

  it('sends an empty list for all events', () => {
    expect(endpointBody({ ...base, eventTypes: ['call.created'] }).event_types).toEqual([]);
    expect(endpointBody({ ...base, allEvents: false, eventTypes: ['call.created'] }).event_types).toEqual(['call.created']);
  });

  it('maps indexed server errors to the picker', () => {
    expect(mapEndpointErrors({ 'event_types[0]': 'Unknown a.', 'event_types[3]': 'Unknown b.', url: 'private' })).toEqual({
      event_types: 'Unknown a. Unknown b.',
      url: 'private',
    });
  });

  it('groups event types and describes attempts', () => {
    expect(groupEventTypes(['call.created', 'call.ended', 'queue.abandoned'])).toEqual([
      ['call', ['call.created', 'call.ended']],
      ['queue', ['queue.abandoned']],
    ]);
    expect(describeAttempt({ succeeded: true, http_status: 204, latency_ms: 12 })).toBe('Delivered: HTTP 204 in 12 ms');
    expect(describeAttempt({ succeeded: false, http_status: 500, latency_ms: 40 })).toBe('Failed: HTTP 500 after 40 ms');
    expect(describeAttempt({ succeeded: false, error: 'timeout: 10 s', latency_ms: 10000 })).toBe('Failed: timeout: 10 s');
  });
});
