import { describe, expect, it } from 'vitest';
import { listAll } from './listAll';

describe('listAll', () => {
  it('follows cursors and stops at the last page or the page cap', async () => {
    const pages: Record<string, { items: number[]; next_cursor?: string | null }> = {
      start: { items: [1, 2], next_cursor: 'b' },
      b: { items: [3], next_cursor: 'c' },
      c: { items: [4], next_cursor: null },
    };
    const seen: (string | undefined)[] = [];
    const load = async (cursor: string | undefined) => {
      seen.push(cursor);
      return pages[cursor ?? 'start']!;
    };
    expect(await listAll(load)).toEqual([1, 2, 3, 4]);
    expect(seen).toEqual([undefined, 'b', 'c']);
    expect(await listAll(load, 2)).toEqual([1, 2, 3]);
  });
});
