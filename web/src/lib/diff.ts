// Before/after comparison for audit entries.

export type DiffKind = 'added' | 'removed' | 'changed' | 'unchanged';

export interface DiffRow {
  /** Dotted path, e.g. `role` or `settings.plan`; `(value)` when the values are not objects. */
  key: string;
  kind: DiffKind;
  before?: unknown;
  after?: unknown;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function flatten(value: Record<string, unknown>, prefix = '', out: Map<string, unknown> = new Map()) {
  for (const [k, v] of Object.entries(value)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isPlainObject(v) && Object.keys(v).length > 0) flatten(v, key, out);
    else out.set(key, v);
  }
  return out;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Rows for every field present on either side, changed ones first, keys sorted within a kind. */
export function diffValues(before: unknown, after: unknown): DiffRow[] {
  const hasBefore = before !== undefined && before !== null;
  const hasAfter = after !== undefined && after !== null;
  if (!hasBefore && !hasAfter) return [];
  if ((hasBefore && !isPlainObject(before)) || (hasAfter && !isPlainObject(after))) {
    if (!hasBefore) return [{ key: '(value)', kind: 'added', after }];
    if (!hasAfter) return [{ key: '(value)', kind: 'removed', before }];
    return [{ key: '(value)', kind: same(before, after) ? 'unchanged' : 'changed', before, after }];
  }
  const b = hasBefore ? flatten(before as Record<string, unknown>) : new Map<string, unknown>();
  const a = hasAfter ? flatten(after as Record<string, unknown>) : new Map<string, unknown>();
  const keys = [...new Set([...b.keys(), ...a.keys()])].sort();
  const rows: DiffRow[] = keys.map((key) => {
    if (!b.has(key)) return { key, kind: 'added', after: a.get(key) };
    if (!a.has(key)) return { key, kind: 'removed', before: b.get(key) };
    const bv = b.get(key);
    const av = a.get(key);
    return { key, kind: same(bv, av) ? 'unchanged' : 'changed', before: bv, after: av };
  });
  const order: Record<DiffKind, number> = { changed: 0, added: 1, removed: 2, unchanged: 3 };
  return rows.sort((x, y) => order[x.kind] - order[y.kind] || x.key.localeCompare(y.key));
}

export function formatValue(v: unknown): string {
  if (v === undefined) return '—';
  if (v === null) return 'null';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
