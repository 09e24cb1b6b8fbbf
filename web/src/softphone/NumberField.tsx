// The one "extension or number" input of the softphone: the dialer, the blind-transfer tray and
// the consult tray all ask for a destination the same way (telephone keyboard, no autofill, the
// same example), with the form field markup of the rest of the app.
import type { ReactNode, Ref } from 'react';
import { TextField } from '../components/ui';

export const NUMBER_PLACEHOLDER = '1001 or +4930123456';

export function NumberField({
  label,
  value,
  onChange,
  hint,
  error,
  invalid = false,
  name,
  ref,
}: {
  label: ReactNode;
  value: string;
  onChange: (value: string) => void;
  hint?: ReactNode;
  /** Shown under the field. */
  error?: string | null;
  /** Marks the field invalid when the reason is shown elsewhere (e.g. a status line). */
  invalid?: boolean;
  name?: string;
  ref?: Ref<HTMLInputElement>;
}) {
  return (
    <TextField
      ref={ref}
      label={label}
      name={name}
      inputMode="tel"
      autoComplete="off"
      placeholder={NUMBER_PLACEHOLDER}
      value={value}
      onChange={(e) => onChange(e.target.value)}
      hint={hint}
      error={error ?? undefined}
      aria-invalid={error || invalid ? true : undefined}
    />
  );
}
