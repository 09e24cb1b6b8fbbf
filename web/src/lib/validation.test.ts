import { describe, expect, it } from 'vitest';
import { validateAuditFilters as validateAuditFiltersProxy } from './auditFilters';
import {
  generatePassword,
  validateDisplayName,
  validateEditUser,
  validateEmail,
  validateNewUser,
  validatePassword,
  validatePasswordChange,
  validateRecoveryCode,
  validateSlug,
  validateTenant,
  validateTotpCode,
} from './validation';

describe('field rules mirror the server', () => {
  it('emails', () => {
    expect(validateEmail('ada@example.com')).toBeUndefined();
    expect(validateEmail('  ada@example.com ')).toBeUndefined();
    expect(validateEmail('')).toMatch(/Enter/);
    expect(validateEmail('ada.example.com')).toMatch(/@/);
    expect(validateEmail('ada@localhost')).toMatch(/dot/);
    expect(validateEmail('@example.com')).toMatch(/1 to 64/);
    expect(validateEmail('a b@example.com')).toMatch(/invalid character/);
    expect(validateEmail('ada@-bad.com')).toMatch(/host name/);
    expect(validateEmail(`${'a'.repeat(250)}@x.io`)).toMatch(/254/);
  });

  it('passwords count characters, not bytes', () => {
    expect(validatePassword('')).toMatch(/Enter/);
    expect(validatePassword('short')).toMatch(/at least 12/);
    expect(validatePassword('ñññññññññññ')).toMatch(/at least 12/);
    expect(validatePassword('ñññññññññññññ')).toBeUndefined();
    expect(validatePassword('y'.repeat(129))).toMatch(/at most 128/);
  });

  it('names, slugs and codes', () => {
    expect(validateDisplayName('')).toBeUndefined();
    expect(validateDisplayName('', { required: true })).toMatch(/Enter/);
    expect(validateDisplayName('x'.repeat(121))).toMatch(/120/);
    expect(validateDisplayName('bad\u0007name')).toMatch(/control/);
    expect(validateSlug('acme')).toBeUndefined();
    for (const bad of ['ab', 'Acme', '-acme', 'acme-', 'ac_me', 'a'.repeat(41)]) expect(validateSlug(bad)).toBeDefined();
    expect(validateTotpCode('123 456')).toBeUndefined();
    expect(validateTotpCode('12345')).toMatch(/6 digits/);
    expect(validateTotpCode('')).toMatch(/Enter/);
    expect(validateRecoveryCode('abcde-12345')).toBeUndefined();
    expect(validateRecoveryCode('ABCDE12345')).toBeUndefined();
    expect(validateRecoveryCode('abc')).toMatch(/look like/);
  });
});

describe('forms', () => {
  it('new user', () => {
    expect(validateNewUser({ email: 'a@b.co', display_name: '', role: 'agent', password: 'long-enough-pw' })).toEqual({});
    expect(validateNewUser({ email: 'nope', display_name: '', role: 'superadmin', password: 'x' })).toEqual({
      email: expect.any(String),
      role: 'Choose a role.',
      password: expect.stringMatching(/12/),
    });
  });

  it('edit user: the password is optional, the name is not', () => {
    expect(validateEditUser({ display_name: 'Ada', role: 'admin', disabled: false, password: '' })).toEqual({});
    expect(Object.keys(validateEditUser({ display_name: ' ', role: 'admin', disabled: false, password: 'short' }))).toEqual([
      'display_name',
      'password',
    ]);
  });

  it('password change', () => {
    expect(validatePasswordChange({ current_password: 'old-password-1', new_password: 'new-password-12', confirm: 'new-password-12' })).toEqual({});
    expect(validatePasswordChange({ current_password: '', new_password: 'new-password-12', confirm: 'other' })).toEqual({
      current_password: expect.any(String),
      confirm: 'The passwords do not match.',
    });
    expect(validatePasswordChange({ current_password: 'same-password-1', new_password: 'same-password-1', confirm: 'same-password-1' }).new_password).toMatch(
      /different/,
    );
  });

  it('tenants: the slug only matters when creating', () => {
    expect(validateTenant({ slug: '', name: 'Acme', plan: 'pro' }, { creating: false })).toEqual({});
    expect(validateTenant({ slug: 'A', name: '', plan: 'gold' }, { creating: true })).toEqual({
      slug: expect.any(String),
      name: 'Enter a name.',
      plan: 'Choose a plan.',
    });
  });

  it('audit filters', () => {
    expect(validateAuditFiltersProxy({ user: '', resource: 'user', event: 'login', from: '', to: '' })).toEqual({});
    const errors = validateAuditFiltersProxy({
      user: 'not-a-uuid',
      resource: 'User Stuff',
      event: 'two words',
      from: '2026-01-02T00:00:00Z',
      to: '2026-01-01T00:00:00Z',
    });
    expect(Object.keys(errors).sort()).toEqual(['event', 'resource', 'to', 'user']);
    expect(validateAuditFiltersProxy({ user: '0190f3c2-0000-7000-8000-000000000000', resource: 'user:0190f3c2', event: '', from: '', to: '' })).toEqual({});
  });

  it('generated passwords pass the policy', () => {
    for (let i = 0; i < 20; i++) {
      const p = generatePassword();
      expect(validatePassword(p)).toBeUndefined();
    }
    expect(new Set(Array.from({ length: 20 }, () => generatePassword())).size).toBe(20);
  });
});
