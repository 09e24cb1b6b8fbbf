// Client-side checks that mirror the server's rules (crates/domain/src/validate.rs), so most
// mistakes are caught before a round trip. The server stays the authority: its problem JSON field
// errors are shown next to the same fields.
import type { FieldErrors } from '../api/problem';

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 128;
export const NAME_MAX = 120;

const charCount = (s: string) => Array.from(s).length;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export function validateEmail(email: string): string | undefined {
  const value = email.trim();
  if (!value) return 'Enter an email address.';
  if (value.length > 254) return 'Email must be at most 254 characters.';
  const at = value.lastIndexOf('@');
  if (at < 0) return "Email must contain '@'.";
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (local.length < 1 || local.length > 64) return 'The part before @ must be 1 to 64 characters.';
  if (/[\s"(),:;<>@[\\\]]/.test(local)) return 'The part before @ contains an invalid character.';
  const labels = domain.split('.');
  if (labels.length < 2) return 'The domain must contain a dot, like example.com.';
  const labelOk = (l: string) => l.length > 0 && l.length <= 63 && /^[A-Za-z0-9-]+$/.test(l) && !l.startsWith('-') && !l.endsWith('-');
  if (!labels.every(labelOk)) return 'The domain is not a valid host name.';
  return undefined;
}

export function validatePassword(password: string): string | undefined {
  const n = charCount(password);
  if (n === 0) return 'Enter a password.';
  if (n < PASSWORD_MIN) return `Use at least ${PASSWORD_MIN} characters.`;
  if (n > PASSWORD_MAX) return `Use at most ${PASSWORD_MAX} characters.`;
  return undefined;
}

/** Display names are optional; when given they must be 1–120 characters without control codes. */
export function validateDisplayName(name: string, { required = false } = {}): string | undefined {
  const value = name.trim();
  if (!value) return required ? 'Enter a name.' : undefined;
  if (charCount(value) > NAME_MAX) return `Use at most ${NAME_MAX} characters.`;
  if (CONTROL.test(value)) return 'The name contains control characters.';
  return undefined;
}

export function validateSlug(slug: string): string | undefined {
  const value = slug.trim();
  if (!value) return 'Enter a slug.';
  if (value.length < 3 || value.length > 40 || !/^[a-z0-9-]+$/.test(value) || value.startsWith('-') || value.endsWith('-')) {
    return "Use 3 to 40 characters: a–z, 0–9 and '-' (not first or last).";
  }
  return undefined;
}

/** A 6-digit TOTP code; spaces and dashes typed by the user are ignored. */
export function validateTotpCode(code: string): string | undefined {
  const digits = code.replace(/[\s-]/g, '');
  if (!digits) return 'Enter the 6-digit code from your authenticator app.';
  if (!/^\d{6}$/.test(digits)) return 'The code is 6 digits.';
  return undefined;
}

export function validateRecoveryCode(code: string): string | undefined {
  const compact = code.replace(/[^A-Za-z0-9]/g, '');
  if (!compact) return 'Enter one of your recovery codes.';
  if (compact.length !== 10) return 'Recovery codes look like abcde-12345.';
  return undefined;
}

/** Drops undefined entries; an empty result means the form is valid. */
export function collectErrors(checks: Record<string, string | undefined>): FieldErrors {
  const errors: FieldErrors = {};
  for (const [field, message] of Object.entries(checks)) if (message) errors[field] = message;
  return errors;
}

export interface NewUserForm {
  email: string;
  display_name: string;
  role: string;
  password: string;
}

export function validateNewUser(form: NewUserForm): FieldErrors {
  return collectErrors({
    email: validateEmail(form.email),
    display_name: validateDisplayName(form.display_name),
    role: ['agent', 'supervisor', 'admin'].includes(form.role) ? undefined : 'Choose a role.',
    password: validatePassword(form.password),
  });
}

export interface EditUserForm {
  display_name: string;
  role: string;
  disabled: boolean;
  password: string;
}

export function validateEditUser(form: EditUserForm): FieldErrors {
  return collectErrors({
    display_name: validateDisplayName(form.display_name, { required: true }),
    role: ['agent', 'supervisor', 'admin'].includes(form.role) ? undefined : 'Choose a role.',
    password: form.password ? validatePassword(form.password) : undefined,
  });
}

export interface PasswordChangeForm {
  current_password: string;
  new_password: string;
  confirm: string;
}

export function validatePasswordChange(form: PasswordChangeForm): FieldErrors {
  return collectErrors({
    current_password: form.current_password ? undefined : 'Enter your current password.',
    new_password:
      validatePassword(form.new_password) ??
      (form.new_password === form.current_password ? 'Choose a password different from the current one.' : undefined),
    confirm: form.confirm === form.new_password ? undefined : 'The passwords do not match.',
  });
}

export interface TenantForm {
  slug: string;
  name: string;
  plan: string;
}

export function validateTenant(form: TenantForm, { creating }: { creating: boolean }): FieldErrors {
  return collectErrors({
    slug: creating ? validateSlug(form.slug) : undefined,
    name: validateDisplayName(form.name, { required: true }),
    plan: ['free', 'pro', 'enterprise'].includes(form.plan) ? undefined : 'Choose a plan.',
  });
}

/** A random password that passes the policy, for "Generate" buttons. */
export function generatePassword(length = 20): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_';
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}
