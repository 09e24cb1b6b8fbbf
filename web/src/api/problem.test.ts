import { describe, expect, it } from 'vitest';
import { ApiError, NetworkError, describeError, parseProblem, toSentence } from './problem';

describe('parseProblem', () => {
  it('reads a full problem document with field errors', () => {
    const body = JSON.stringify({
      type: 'https://sivo.dev/problems/validation-failed',
      title: 'Unprocessable Entity',
      status: 422,
      code: 'validation_failed',
      detail: 'the request has invalid fields',
      request_id: 'req-1',
      errors: [
        { field: 'email', message: 'email must contain a dot' },
        { field: 'password', message: 'password must be at least 12 characters' },
        { field: 'email', message: 'is taken' },
      ],
    });
    const err = parseProblem(422, body);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('validation_failed');
    expect(err.status).toBe(422);
    expect(err.requestId).toBe('req-1');
    expect(err.fieldErrors).toEqual({
      email: 'Email must contain a dot. This is taken.',
      password: 'Password must be at least 12 characters.',
    });
    expect(err.hasFieldErrors).toBe(true);
  });

  it('keeps the code that the UI branches on', () => {
    const err = parseProblem(401, '{"type":"x","title":"Unauthorized","status":401,"code":"mfa_required","detail":"a code is needed"}');
    expect(err.code).toBe('mfa_required');
    expect(err.hasFieldErrors).toBe(false);
  });

  it('survives bodies that are not problem JSON', () => {
    const html = parseProblem(502, '<html>Bad gateway</html>', 'rid-9');
    expect(html.code).toBe('http_502');
    expect(html.title).toBe('Bad gateway');
    expect(html.requestId).toBe('rid-9');
    expect(parseProblem(404, '').code).toBe('http_404');
    expect(parseProblem(500, '[1,2]').code).toBe('http_500');
  });

  it('ignores malformed entries in errors', () => {
    const err = parseProblem(422, JSON.stringify({ code: 'validation_failed', errors: [null, 3, { field: 'x' }, { field: 'name', message: 'too long' }] }));
    expect(err.fieldErrors).toEqual({ name: 'Too long.' });
  });
});

describe('toSentence', () => {
  it('makes field message fragments read as sentences', () => {
    expect(toSentence('this email is already in use')).toBe('This email is already in use.');
    expect(toSentence('is not your current password')).toBe('This is not your current password.');
    expect(toSentence('must be between 1 and 200')).toBe('Must be between 1 and 200.');
    expect(toSentence('Already fine!')).toBe('Already fine!');
    expect(toSentence('  ')).toBe('');
  });
});

describe('describeError', () => {
  it('turns errors into one sentence for people', () => {
    expect(describeError(new NetworkError('timeout'))).toMatch(/too long/);
    expect(describeError(new NetworkError('unreachable'))).toMatch(/Cannot reach SIVO/);
    expect(describeError(parseProblem(409, '{"code":"cannot_delete_self","detail":"you cannot delete your own account"}'))).toBe(
      'You cannot delete your own account.',
    );
    expect(describeError(parseProblem(503, '{"code":"x","detail":"db down","request_id":"r1"}'))).toBe(
      'SIVO had a problem answering (503). Request id: r1.',
    );
    expect(describeError(parseProblem(403, '{"code":"forbidden","detail":"needs admin"}'))).toMatch(/permission/);
    expect(describeError(undefined)).toBe('Something went wrong.');
  });
});
