// DIDs (the tenant's phone numbers): E.164 input, destinations, and the request bodies.
import type { Schemas } from '../api/client';
import type { FieldErrors } from '../api/problem';

export type Did = Schemas['DidOut'];
export type DestinationType = Schemas['DestinationType'];

export const DESTINATION_LABELS: Record<DestinationType, string> = {
  none: 'Not routed',
  agent: 'Agent',
  queue: 'Queue',
  flow: 'Flow',
};

/**
 * What people type → E.164: spaces, dashes, dots and brackets go, a leading 00 becomes +.
 * "+49 (30) 123-456" → "+4930123456". Anything else is left for validation to name.
 */
export function normalizeNumber(text: string): string {
  let t = text.trim().replace(/[\s\-.()/]/g, '');
  if (t.startsWith('00')) t = `+${t.slice(2)}`;
  return t;
}

/** The server's rule: + and 2 to 15 digits, not starting with 0. */
export function validateNumber(text: string): string | undefined {
  const n = normalizeNumber(text);
  if (!n) return 'Enter the number in international format, e.g. +49 30 1234567.';
  if (!n.startsWith('+')) return 'Start with + and the country code, e.g. +49 30 1234567.';
  const digits = n.slice(1);
  if (!/^\d+$/.test(digits)) return 'Use digits only after the +.';
  if (digits.startsWith('0')) return 'The country code never starts with 0: drop the 0 after the +.';
  if (digits.length < 2 || digits.length > 15) return 'E.164 numbers have 2 to 15 digits after the +.';
  return undefined;
}

export interface DidForm {
  number: string;
  trunk_id: string;
  destination_type: DestinationType;
  destination_id: string;
}

export function didToForm(d: Did): DidForm {
  return {
    number: d.number,
    trunk_id: d.trunk_id,
    destination_type: d.destination_type,
    destination_id: d.destination_id ?? '',
  };
}

export function validateDid(form: DidForm): FieldErrors {
  const errors: FieldErrors = {};
  const number = validateNumber(form.number);
  if (number) errors.number = number;
  if (!form.trunk_id) errors.trunk_id = 'Choose the trunk this number arrives on.';
  if (form.destination_type !== 'none' && !form.destination_id) {
    errors.destination_id = `Choose the ${DESTINATION_LABELS[form.destination_type].toLowerCase()} that answers this number.`;
  }
  return errors;
}

export function didBody(form: DidForm): Schemas['DidIn'] {
  return {
    number: normalizeNumber(form.number),
    trunk_id: form.trunk_id,
    destination_type: form.destination_type,
    destination_id: form.destination_type === 'none' ? null : form.destination_id || null,
  };
}

export function didPatch(form: DidForm, d: Did): Schemas['DidPatch'] {
  const patch: Schemas['DidPatch'] = {};
  const number = normalizeNumber(form.number);
  if (number !== d.number) patch.number = number;
  if (form.trunk_id !== d.trunk_id) patch.trunk_id = form.trunk_id;
  const destId = form.destination_type === 'none' ? null : form.destination_id || null;
  if (form.destination_type !== d.destination_type || destId !== (d.destination_id ?? null)) {
    patch.destination_type = form.destination_type;
    if (destId) patch.destination_id = destId;
  }
  return patch;
}
