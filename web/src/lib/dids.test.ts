import { describe, expect, it } from 'vitest';
import { didBody, didPatch, didToForm, normalizeNumber, validateDid, validateNumber, type Did } from './dids';

const did: Did = {
  id: 'd1',
  number: '+4930123456',
  trunk_id: 't1',
  destination_type: 'agent',
  destination_id: 'a1',
  created_at: '2026-05-20T09:00:00Z',
  updated_at: '2026-05-20T09:00:00Z',
};

describe('DID numbers', () => {
  it('normalises what people type to E.164', () => {
    expect(normalizeNumber(' +49 (30) 123-456 ')).toBe('+4930123456');
    expect(normalizeNumber('0049 30 123456')).toBe('+4930123456');
    expect(normalizeNumber('+1.415.555.0100')).toBe('+14155550100');
  });

  it('says what is wrong with a number', () => {
    expect(validateNumber('+49 30 123456')).toBeUndefined();
    expect(validateNumber('')).toMatch(/international format/);
    expect(validateNumber('030 123456')).toMatch(/Start with \+/);
    expect(validateNumber('+049301')).toMatch(/never starts with 0/);
    expect(validateNumber('+49 30 12a')).toMatch(/digits only/);
    expect(validateNumber('+1234567890123456')).toMatch(/2 to 15 digits/);
    expect(validateNumber('+1')).toMatch(/2 to 15 digits/);
  });

  it('needs a trunk, and a destination unless not routed', () => {
    const form = { number: '+4930123456', trunk_id: 't1', destination_type: 'none' as const, destination_id: '' };
    expect(validateDid(form)).toEqual({});
    expect(validateDid({ ...form, trunk_id: '' }).trunk_id).toMatch(/trunk/);
    expect(validateDid({ ...form, destination_type: 'agent' }).destination_id).toBe('Choose the agent that answers this number.');
  });

  it('builds bodies: no destination id when not routed, only changes in a patch', () => {
    expect(didBody({ number: '0049 30 123456', trunk_id: 't1', destination_type: 'none', destination_id: 'stale' })).toEqual({
      number: '+4930123456',
      trunk_id: 't1',
      destination_type: 'none',
      destination_id: null,
    });
    expect(didPatch(didToForm(did), did)).toEqual({});
    expect(didPatch({ ...didToForm(did), destination_type: 'none' }, did)).toEqual({ destination_type: 'none' });
    expect(didPatch({ ...didToForm(did), destination_id: 'a2', number: '+49 30 123457' }, did)).toEqual({
      number: '+4930123457',
      destination_type: 'agent',
      destination_id: 'a2',
    });
  });
});
