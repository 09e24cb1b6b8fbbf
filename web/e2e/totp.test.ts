import { describe, expect, it } from 'vitest';
import { base32Decode, hotp, stepAt, totpAtStep } from './totp';

// RFC 6238 appendix B, SHA-1 column (8 digits), key "12345678901234567890".
describe('TOTP used by the end-to-end tests', () => {
  const key = Buffer.from('12345678901234567890');
  it.each([
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ])('matches the RFC 6238 vector at t=%i', (t, code) => {
    expect(hotp(key, stepAt(t * 1000), 8)).toBe(code);
  });

  it('decodes base32 as authenticator apps do', () => {
    expect(base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ').toString()).toBe('12345678901234567890');
    expect(base32Decode('gezd gnbv gy3t qojq gezd gnbv gy3t qojq').toString()).toBe('12345678901234567890');
  });

  it('gives 6-digit codes from a base32 secret', () => {
    expect(totpAtStep('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 1)).toBe('287082');
  });
});
