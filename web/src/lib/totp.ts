// Helpers for the TOTP enrolment and MFA screens. Codes themselves are computed by the user's
// authenticator app; the browser never needs the algorithm.

/** Keeps digits only, at most 6: what a one-time-code input should hold. */
export function normalizeTotpInput(value: string): string {
  return value.replace(/\D/g, '').slice(0, 6);
}

/** "JBSWY3DPEHPK3PXP" → "JBSW Y3DP EHPK 3PXP", easier to type into an app by hand. */
export function groupSecret(secret: string, size = 4): string {
  const clean = secret.replace(/\s/g, '').toUpperCase();
  const groups: string[] = [];
  for (let i = 0; i < clean.length; i += size) groups.push(clean.slice(i, i + size));
  return groups.join(' ');
}

export interface OtpauthInfo {
  issuer: string | null;
  account: string | null;
}

/** Reads issuer and account from `otpauth://totp/Issuer:account?secret=…&issuer=Issuer`. */
export function parseOtpauthUri(uri: string): OtpauthInfo {
  const match = /^otpauth:\/\/totp\/([^?]*)(?:\?(.*))?$/i.exec(uri.trim());
  if (!match) return { issuer: null, account: null };
  let label = match[1] ?? '';
  try {
    label = decodeURIComponent(label);
  } catch {
    /* keep the raw label */
  }
  const params = new URLSearchParams(match[2] ?? '');
  const colon = label.indexOf(':');
  const labelIssuer = colon >= 0 ? label.slice(0, colon).trim() : null;
  const account = (colon >= 0 ? label.slice(colon + 1) : label).trim() || null;
  return { issuer: params.get('issuer') || labelIssuer || null, account };
}

/**
 * The server's QR code is SVG markup. It is shown through an <img> with a data: URI, so any
 * script or external reference in it can never run or load (images are sandboxed).
 */
export function svgDataUri(svg: string): string {
  const bytes = new TextEncoder().encode(svg);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return `data:image/svg+xml;base64,${btoa(binary)}`;
}

/** The text file offered by "Download" next to the recovery codes. */
export function recoveryCodesText(codes: string[], info: { account?: string | null; issuer?: string | null; createdAt: Date }): string {
  const who = [info.issuer ?? 'SIVO', info.account].filter(Boolean).join(' – ');
  return [
    `${who} recovery codes`,
    `Generated ${info.createdAt.toISOString()}`,
    '',
    'Each code works once, in place of a code from your authenticator app.',
    'Keep them somewhere safe and private.',
    '',
    ...codes,
    '',
  ].join('\n');
}
