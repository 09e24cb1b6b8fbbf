import { useCallback, useEffect, useState } from 'react';

/**
 * Keyset pagination for `{items, next_cursor}` lists: a stack of the cursors that led to each
 * page, reset when `resetKey` (the filters) changes.
 */
export function useCursorPages(resetKey: string) {
  const [stack, setStack] = useState<string[]>([]);
  const [key, setKey] = useState(resetKey);
  useEffect(() => {
    if (key !== resetKey) {
      setKey(resetKey);
      setStack([]);
    }
  }, [key, resetKey]);
  const effective = key === resetKey ? stack : [];
  const next = useCallback((cursor: string) => setStack((s) => [...s, cursor]), []);
  const prev = useCallback(() => setStack((s) => s.slice(0, -1)), []);
  return { cursor: effective[effective.length - 1], page: effective.length + 1, next, prev };
}
