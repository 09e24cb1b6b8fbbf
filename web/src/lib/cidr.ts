// IPv4/IPv6 networks as a trunk's "Allowed CIDRs" take them. Mirrors the server's
// `telephony::normalize_cidr` (a bare address is a /32 or /128, host bits are dropped, an
// IPv4-mapped IPv6 network becomes IPv4) so the form can say what will be saved before it is sent.
// The server stays the authority; its per-entry errors (`allowed_cidrs[2]`) land on the same rows.

export type IpBytes = { v: 4; bytes: number[] } | { v: 6; bytes: number[] };

export type CidrResult =
  | {
      ok: true;
      /** As the server will store it: `185.45.152.0/24`, `2001:db8::/32`. */
      normalized: string;
      /** The address had bits set beyond the prefix (`185.45.152.180/24`): they are dropped. */
      hostBitsDropped: boolean;
      /** Exactly one address (/32 or /128). */
      single: boolean;
      /** How many addresses the network holds, for IPv4 (IPv6 ranges are too large to count usefully). */
      size?: number;
    }
  | { ok: false; error: string };

export const MAX_CIDRS = 100;

function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const p of parts) {
    // Like Rust's parser: decimal only, no leading zeros ("010" could be read as octal).
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p.startsWith('0'))) return null;
    const n = Number(p);
    if (n > 255) return null;
    bytes.push(n);
  }
  return bytes;
}

function parseIpv6(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  const head = groupsOf(halves[0]!);
  if (!head) return null;
  let groups: number[];
  if (halves.length === 2) {
    const tail = groupsOf(halves[1]!);
    if (!tail) return null;
    // An embedded IPv4 address may only end the address.
    if (halves[0]!.includes('.')) return null;
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    groups = head;
    if (groups.length !== 8) return null;
  }
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** An IPv4 or IPv6 address (no brackets, no zone), or null. */
export function parseIp(text: string): IpBytes | null {
  const t = text.trim();
  if (t.includes(':')) {
    const bytes = parseIpv6(t);
    return bytes ? { v: 6, bytes } : null;
  }
  const bytes = parseIpv4(t);
  return bytes ? { v: 4, bytes } : null;
}

/** RFC 5952 text (as Rust prints it): lowercase, the longest run of two or more zero groups as `::`. */
export function formatIpv6(bytes: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // IPv4-mapped addresses print their last 32 bits as a dotted quad.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.slice(12).join('.')}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

function mask(bytes: number[], prefix: number): { masked: number[]; changed: boolean } {
  let changed = false;
  const masked = bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    const m = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    if ((b & m) !== b) changed = true;
    return b & m;
  });
  return { masked, changed };
}

/** Checks one entry of the list and says how the server will store it. */
export function parseCidr(text: string): CidrResult {
  const t = text.trim();
  if (!t) return { ok: false, error: 'Enter a network such as 185.45.152.0/24, or remove this row.' };
  const slash = t.indexOf('/');
  const addrText = slash >= 0 ? t.slice(0, slash) : t;
  const prefixText = slash >= 0 ? t.slice(slash + 1) : null;
  const ip = parseIp(addrText);
  if (!ip) {
    return {
      ok: false,
      error: addrText.includes(':')
        ? `“${addrText}” is not an IPv6 address.`
        : /[a-z]/i.test(addrText)
          ? 'Use IP addresses, not host names: carriers publish the networks they send from.'
          : `“${addrText}” is not an IPv4 address.`,
    };
  }
  const max = ip.v === 4 ? 32 : 128;
  let prefix = max;
  if (prefixText !== null) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      return { ok: false, error: `The prefix after “/” must be 0 to ${max} for an ${ip.v === 4 ? 'IPv4' : 'IPv6'} network.` };
    }
    prefix = Number(prefixText);
  }
  let v: 4 | 6 = ip.v;
  let bytes = ip.bytes;
  // ::ffff:a.b.c.d/N (N ≥ 96) is the IPv4 network a.b.c.d/(N-96).
  if (v === 6 && prefix >= 96 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    v = 4;
    bytes = bytes.slice(12);
    prefix -= 96;
  }
  const { masked, changed } = mask(bytes, prefix);
  const addr = v === 4 ? masked.join('.') : formatIpv6(masked);
  const bits = v === 4 ? 32 : 128;
  return {
    ok: true,
    normalized: `${addr}/${prefix}`,
    hostBitsDropped: changed,
    single: prefix === bits,
    size: v === 4 ? 2 ** (32 - prefix) : undefined,
  };
}

/** Splits pasted text (lines, commas, spaces, semicolons) into entries. */
export function splitCidrText(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

export interface CidrListCheck {
  /** Row index → message. */
  rowErrors: Record<number, string>;
  /** About the list as a whole. */
  listError?: string;
  /** The entries to send (rows left empty are skipped) and, for each, the row it came from. */
  values: string[];
  rows: number[];
}

/** Checks the editor's rows: each a valid network, no duplicates after normalising, at most 100. */
export function checkCidrList(entries: string[]): CidrListCheck {
  const rowErrors: Record<number, string> = {};
  const seen = new Map<string, number>();
  const values: string[] = [];
  const rows: number[] = [];
  entries.forEach((raw, i) => {
    if (!raw.trim()) return;
    const r = parseCidr(raw);
    if (!r.ok) {
      rowErrors[i] = r.error;
    } else {
      const first = seen.get(r.normalized);
      if (first !== undefined) rowErrors[i] = `Same network as row ${first + 1} (${r.normalized}).`;
      else seen.set(r.normalized, i);
    }
    values.push(raw.trim());
    rows.push(i);
  });
  const listError = values.length > MAX_CIDRS ? `Use at most ${MAX_CIDRS} networks.` : undefined;
  return { rowErrors, listError, values, rows };
}

/** A short note under a valid row: what is saved, when it differs from what was typed. */
export function describeCidr(text: string): string | undefined {
  const r = parseCidr(text);
  if (!r.ok) return undefined;
  if (r.hostBitsDropped) return `Saved as ${r.normalized}: the whole network, not just the address typed.`;
  if (r.single) return r.normalized === text.trim() ? 'A single address.' : `A single address, saved as ${r.normalized}.`;
  if (r.size !== undefined) return `${r.size.toLocaleString('en-GB')} addresses.`;
  return undefined;
}
