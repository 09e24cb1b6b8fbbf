import { describe, expect, it } from 'vitest';
import { checkCidrList, describeCidr, formatIpv6, parseCidr, parseIp, splitCidrText } from './cidr';

const norm = (t: string) => {
  const r = parseCidr(t);
  return r.ok ? r.normalized : `error: ${r.error}`;
};

describe('CIDR parsing (as the server normalises)', () => {
  it('keeps networks and widens single addresses', () => {
    expect(norm('185.45.152.0/24')).toBe('185.45.152.0/24');
    expect(norm(' 127.0.0.2 ')).toBe('127.0.0.2/32');
    expect(norm('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(norm('2001:db8::/32')).toBe('2001:db8::/32');
    expect(norm('::1')).toBe('::1/128');
  });

  it('drops host bits and says so', () => {
    const r = parseCidr('185.45.152.180/24');
    expect(r).toMatchObject({ ok: true, normalized: '185.45.152.0/24', hostBitsDropped: true, single: false, size: 256 });
    expect(norm('2001:db8::1/32')).toBe('2001:db8::/32');
    expect(norm('10.1.2.3/9')).toBe('10.0.0.0/9');
    expect(describeCidr('185.45.152.180/24')).toMatch(/Saved as 185\.45\.152\.0\/24/);
    expect(describeCidr('185.45.152.0/24')).toBe('256 addresses.');
    expect(describeCidr('185.45.152.180')).toBe('A single address, saved as 185.45.152.180/32.');
  });

  it('turns IPv4-mapped IPv6 networks into IPv4', () => {
    expect(norm('::ffff:10.1.2.3/120')).toBe('10.1.2.0/24');
    expect(norm('::ffff:10.1.2.3')).toBe('10.1.2.3/32');
  });

  it('prints IPv6 like RFC 5952 (and Rust)', () => {
    expect(norm('2001:0DB8:0000:0000:0000:0000:0000:0001/128')).toBe('2001:db8::1/128');
    expect(norm('2001:db8:0:1:0:0:0:1')).toBe('2001:db8:0:1::1/128');
    expect(norm('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1/128');
    expect(norm('1:0:1:1:1:1:1:1')).toBe('1:0:1:1:1:1:1:1/128');
    expect(norm('::')).toBe('::/128');
    expect(formatIpv6(new Array<number>(16).fill(0))).toBe('::');
  });

  it('names what is wrong', () => {
    expect(norm('')).toMatch(/Enter a network/);
    expect(norm('185.45.152.0/33')).toMatch(/0 to 32/);
    expect(norm('2001:db8::/129')).toMatch(/0 to 128/);
    expect(norm('185.45.152/24')).toMatch(/not an IPv4 address/);
    expect(norm('256.1.1.1')).toMatch(/not an IPv4 address/);
    expect(norm('010.1.1.1')).toMatch(/not an IPv4 address/);
    expect(norm('sip.zadarma.com')).toMatch(/not host names/);
    expect(norm('2001:db8:::1')).toMatch(/not an IPv6 address/);
    expect(norm('1:2:3:4:5:6:7:8:9')).toMatch(/not an IPv6 address/);
    expect(norm('10.0.0.0/8/8')).toMatch(/prefix/);
    expect(parseIp('1.2.3.4:5060')).toBeNull();
  });

  it('splits pasted lists', () => {
    expect(splitCidrText('185.45.152.0/24, 185.45.153.0/24\n2001:db8::/32;  10.0.0.1')).toEqual([
      '185.45.152.0/24',
      '185.45.153.0/24',
      '2001:db8::/32',
      '10.0.0.1',
    ]);
  });

  it('checks a list: rows, duplicates after normalising, what is sent', () => {
    const c = checkCidrList(['185.45.152.0/24', '', 'nope', '185.45.152.7/24']);
    expect(c.values).toEqual(['185.45.152.0/24', 'nope', '185.45.152.7/24']);
    expect(c.rows).toEqual([0, 2, 3]);
    expect(c.rowErrors[2]).toMatch(/not host names/);
    expect(c.rowErrors[3]).toBe('Same network as row 1 (185.45.152.0/24).');
    expect(c.rowErrors[1]).toBeUndefined();
    expect(checkCidrList(Array.from({ length: 101 }, (_, i) => `10.0.${i}.0/24`)).listError).toMatch(/at most 100/);
  });
});
