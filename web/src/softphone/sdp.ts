// SDP touch-ups for what the browser offers SIVO.

const PREFERRED = ['PCMU/8000', 'PCMA/8000', 'TELEPHONE-EVENT/8000'];

/**
 * Reorders the payload types of every audio m-line so PCMU, PCMA and telephone-event/8000 come
 * first (in that order), the rest keeping their order. SIVO's carriers speak G.711, so when the
 * browser offers it first the media server relays instead of transcoding Opus. Nothing is removed:
 * another codec still works if the answer picks it.
 */
export function preferG711(sdp: string): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(eol);
  // Payload type → "NAME/RATE" (upper case), per media section.
  let section: number | null = null;
  const sections = new Map<number, Map<string, string>>();
  lines.forEach((line, i) => {
    if (line.startsWith('m=')) {
      section = line.startsWith('m=audio ') ? i : null;
      if (section !== null) sections.set(section, new Map());
      return;
    }
    const rtpmap = /^a=rtpmap:(\d+) ([^/\s]+\/\d+)/.exec(line);
    if (section !== null && rtpmap?.[1] && rtpmap[2]) sections.get(section)?.set(rtpmap[1], rtpmap[2].toUpperCase());
  });
  for (const [index, codecs] of sections) {
    const parts = (lines[index] ?? '').split(' ');
    if (parts.length < 4) continue;
    const head = parts.slice(0, 3);
    const pts = parts.slice(3);
    const rank = (pt: string) => {
      // Static types need no rtpmap: 0 is PCMU, 8 is PCMA.
      const codec = codecs.get(pt) ?? (pt === '0' ? 'PCMU/8000' : pt === '8' ? 'PCMA/8000' : '');
      const r = PREFERRED.indexOf(codec);
      return r === -1 ? PREFERRED.length : r;
    };
    const sorted = pts.map((pt, i) => ({ pt, i, r: rank(pt) })).sort((a, b) => a.r - b.r || a.i - b.i);
    lines[index] = [...head, ...sorted.map((s) => s.pt)].join(' ');
  }
  return lines.join(eol);
}

/** The payload types of the first audio m-line, in order (for tests and diagnostics). */
export function audioPayloadTypes(sdp: string): string[] {
  const m = /^m=audio \S+ \S+ (.*)$/m.exec(sdp);
  return m?.[1]?.trim().split(/\s+/) ?? [];
}
