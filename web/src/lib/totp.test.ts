import { describe, expect, it } from 'vitest';
import { groupSecret, normalizeTotpInput, parseOtpauthUri, recoveryCodesText, svgDataUri } from './totp';

describe('TOTP helpers', () => {
  it('keeps only six digits in the code input', () => {
    expect(normalizeTotpInput('12 34-56')).toBe('123456');
    expect(normalizeTotpInput('1234567')).toBe('123456');
    expect(normalizeTotpInput('abc')).toBe('');
  });

  it('groups the secret for manual entry', () => {
    expect(groupSecret('jbswy3dpehpk3pxp')).toBe('JBSW Y3DP EHPK 3PXP');
    expect(groupSecret('ABCDEF')).toBe('ABCD EF');
    expect(groupSecret('JBSW Y3DP')).toBe('JBSW Y3DP');
  });

  it('reads issuer and account from otpauth URIs', () => {
    expect(parseOtpauthUri('otpauth://totp/SIVO:admin%40acme.example?secret=JBSW&issuer=SIVO')).toEqual({
      issuer: 'SIVO',
      account: 'admin@acme.example',
    });
    expect(parseOtpauthUri('otpauth://totp/Acme%20Corp:ada?secret=X')).toEqual({ issuer: 'Acme Corp', account: 'ada' });
    expect(parseOtpauthUri('otpauth://totp/ada@x.io?secret=X')).toEqual({ issuer: null, account: 'ada@x.io' });
    expect(parseOtpauthUri('https://example.com')).toEqual({ issuer: null, account: null });
  });

  it('renders SVG only as an image data URI, UTF-8 safe', () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><text>ü</text><script>alert(1)</script></svg>';
    const uri = svgDataUri(svg);
    expect(uri.startsWith('data:image/svg+xml;base64,')).toBe(true);
    const decoded = Buffer.from(uri.split(',')[1]!, 'base64').toString('utf8');
    expect(decoded).toBe(svg);
  });

  it('writes a recovery codes file with every code', () => {
    const codes = Array.from({ length: 10 }, (_, i) => `abcd${i}-efgh${i}`);
    const text = recoveryCodesText(codes, { account: 'ada@acme.example', issuer: 'SIVO', createdAt: new Date('2026-01-01T00:00:00Z') });
    expect(text).toContain('SIVO – ada@acme.example recovery codes');
    expect(text).toContain('2026-01-01T00:00:00.000Z');
    for (const c of codes) expect(text).toContain(`\n${c}\n`);
  });
});
