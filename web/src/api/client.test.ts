import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, NetworkError, api, buildUrl, onAuthProblem } from './client';

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

function respond(status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  return vi.fn(async () => new Response(status === 204 ? null : text, { status, headers: { 'content-type': 'application/json', ...headers } }));
}

describe('buildUrl', () => {
  it('fills path parameters and drops empty query values', () => {
    expect(buildUrl('/api/v1/users/{id}', { id: 'a b/c' })).toBe('/api/v1/users/a%20b%2Fc');
    expect(buildUrl('/api/v1/users', undefined, { role: 'agent', cursor: undefined, limit: 25, event: '' })).toBe('/api/v1/users?role=agent&limit=25');
    expect(() => buildUrl('/api/v1/users/{id}', {})).toThrow(/missing path parameter id/);
  });
});

describe('api client', () => {
  it('sends JSON with the session cookie and returns the parsed body', async () => {
    const fetch = respond(201, { id: 'u1', email: 'a@b.co' });
    vi.stubGlobal('fetch', fetch);
    const user = await api.post('/api/v1/users', { body: { email: 'a@b.co', role: 'agent', password: 'x'.repeat(12) } });
    expect(user.id).toBe('u1');
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/api/v1/users');
    expect(init.method).toBe('POST');
    expect(init.credentials).toBe('same-origin');
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
    expect(JSON.parse(init.body as string)).toMatchObject({ email: 'a@b.co', role: 'agent' });
  });

  it('returns undefined for 204', async () => {
    vi.stubGlobal('fetch', respond(204, undefined));
    await expect(api.delete('/api/v1/users/{id}', { path: { id: 'u1' } })).resolves.toBeUndefined();
  });

  it('throws typed problems and tells listeners about 401s, except at login', async () => {
    const seen: string[] = [];
    const off = onAuthProblem((e) => seen.push(e.code));
    vi.stubGlobal('fetch', respond(401, { code: 'session_expired', detail: 'gone', status: 401, title: 'Unauthorized', type: 't' }));
    await expect(api.get('/api/v1/me')).rejects.toMatchObject({ code: 'session_expired', status: 401 });
    vi.stubGlobal('fetch', respond(401, { code: 'invalid_credentials', detail: 'no', status: 401, title: 'Unauthorized', type: 't' }));
    const err = await api.post('/api/v1/auth/login', { body: { email: 'a', password: 'b' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    vi.stubGlobal('fetch', respond(403, { code: 'mfa_enrollment_required', detail: 'enrol', status: 403, title: 'Forbidden', type: 't' }));
    await expect(api.get('/api/v1/users')).rejects.toBeInstanceOf(ApiError);
    off();
    expect(seen).toEqual(['session_expired', 'mfa_enrollment_required']);
  });

  it('maps network failures and timeouts to NetworkError', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))));
    await expect(api.get('/api/v1/me')).rejects.toMatchObject({ kind: 'unreachable' });

    vi.useFakeTimers();
    vi.stubGlobal(
      'fetch',
      vi.fn(
        (_url: string, init: RequestInit) =>
          new Promise((_resolve, reject) => init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))),
      ),
    );
    const pending = api.get('/api/v1/me').catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(21_000);
    const err = await pending;
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).kind).toBe('timeout');
  });

  it('lets a caller abort without turning it into an error message', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(
        (_url: string, init: RequestInit) =>
          new Promise((_resolve, reject) => init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))),
      ),
    );
    const controller = new AbortController();
    const pending = api.get('/api/v1/me', { signal: controller.signal }).catch((e: unknown) => e);
    controller.abort();
    const err = await pending;
    expect(err).toBeInstanceOf(DOMException);
  });
});
