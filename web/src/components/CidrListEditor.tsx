import { useId, useLayoutEffect, useRef, useState, type ClipboardEvent } from 'react';
import { describeCidr, splitCidrText } from '../lib/cidr';

/**
 * The "Allowed CIDRs" list: one network per row, each with its own error (client check or the
 * server's `allowed_cidrs[i]`) or a note on how it will be saved. Pasting a list into a row splits
 * it into rows. Inputs are named `cidr-<row>` so focusFirstError can reach them.
 */
export function CidrListEditor({
  rows,
  onChange,
  errors,
  listError,
}: {
  rows: string[];
  onChange: (rows: string[]) => void;
  /** Keyed `cidr-<row>`. */
  errors: Record<string, string>;
  listError?: string;
}) {
  const id = useId();
  const inputs = useRef<(HTMLInputElement | null)[]>([]);
  const addButton = useRef<HTMLButtonElement>(null);
  const [focusRow, setFocusRow] = useState<number | 'add' | null>(null);

  useLayoutEffect(() => {
    if (focusRow === null) return;
    if (focusRow === 'add') addButton.current?.focus();
    else inputs.current[focusRow]?.focus();
    setFocusRow(null);
  }, [focusRow]);

  const set = (i: number, value: string) => onChange(rows.map((r, j) => (j === i ? value : r)));
  const remove = (i: number) => {
    const next = rows.filter((_, j) => j !== i);
    onChange(next.length ? next : ['']);
    setFocusRow(next.length ? Math.max(0, i - 1) : 0);
  };
  const add = () => {
    onChange([...rows, '']);
    setFocusRow(rows.length);
  };
  const paste = (i: number, e: ClipboardEvent<HTMLInputElement>) => {
    const parts = splitCidrText(e.clipboardData.getData('text'));
    if (parts.length < 2) return;
    e.preventDefault();
    const next = [...rows.slice(0, i), ...(rows[i]?.trim() ? [rows[i]!] : []), ...parts, ...rows.slice(i + 1)];
    onChange(next);
    setFocusRow(next.length - rows.slice(i + 1).length - 1);
  };

  const filled = rows.filter((r) => r.trim()).length;

  return (
    <fieldset className={`fieldset cidr-editor${listError ? ' field-invalid' : ''}`} aria-describedby={`${id}-hint${listError ? ` ${id}-error` : ''}`}>
      <legend className="field-label">Allowed CIDRs</legend>
      <p id={`${id}-hint`} className="field-hint">
        Calls are accepted only from these networks (the packet’s source address). Enter the carrier’s <strong>full range</strong>: Zadarma
        sends from 185.45.152.0/24, not only 185.45.152.180. Paste a list to add several at once.
      </p>
      <ol className="cidr-rows">
        {rows.map((value, i) => {
          const error = errors[`cidr-${i}`];
          const note = !error && value.trim() ? describeCidr(value) : undefined;
          const inputId = `${id}-row-${i}`;
          return (
            <li key={i} className={`cidr-row${error ? ' field-invalid' : ''}`}>
              <div className="cidr-row-line">
                <label htmlFor={inputId} className="cidr-index">
                  <span className="sr-only">Network </span>
                  {i + 1}
                </label>
                <input
                  ref={(el) => {
                    inputs.current[i] = el;
                  }}
                  id={inputId}
                  name={`cidr-${i}`}
                  className="input mono"
                  value={value}
                  placeholder={i === 0 ? '185.45.152.0/24' : '2001:db8::/32'}
                  autoComplete="off"
                  spellCheck={false}
                  aria-invalid={error ? true : undefined}
                  aria-describedby={error ? `${inputId}-error` : note ? `${inputId}-note` : undefined}
                  onChange={(e) => set(i, e.target.value)}
                  onPaste={(e) => paste(i, e)}
                />
                <button
                  type="button"
                  className="icon-btn"
                  aria-label={`Remove network ${i + 1}${value.trim() ? ` (${value.trim()})` : ''}`}
                  onClick={() => remove(i)}
                  disabled={rows.length === 1 && !value}
                >
                  <svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" strokeWidth="2" aria-hidden="true">
                    <path d="M6 6l12 12M18 6L6 18" />
                  </svg>
                </button>
              </div>
              {error ? (
                <p id={`${inputId}-error`} className="field-error">
                  <span aria-hidden="true">⚠ </span>
                  {error}
                </p>
              ) : (
                note && (
                  <p id={`${inputId}-note`} className="field-hint">
                    {note}
                  </p>
                )
              )}
            </li>
          );
        })}
      </ol>
      <div className="cidr-footer">
        <button ref={addButton} type="button" className="btn btn-secondary btn-sm" onClick={add}>
          <svg viewBox="0 0 24 24" width="14" height="14" fill="none" stroke="currentColor" strokeWidth="2.2" aria-hidden="true">
            <path d="M12 5v14M5 12h14" />
          </svg>
          Add network
        </button>
        <span className="muted cidr-count" aria-live="polite">
          {filled === 0 ? 'No networks: no inbound calls are accepted through this trunk.' : `${filled} ${filled === 1 ? 'network' : 'networks'}`}
        </span>
      </div>
      {listError && (
        <p id={`${id}-error`} className="field-error">
          {listError}
        </p>
      )}
    </fieldset>
  );
}
