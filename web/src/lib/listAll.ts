/**
 * Follows `next_cursor` to collect a whole (small) list: trunks for a select, agents for a
 * destination picker. Stops after `maxPages` pages so a huge tenant cannot hang the page.
 */
export async function listAll<T>(
  page: (cursor: string | undefined) => Promise<{ items: T[]; next_cursor?: string | null }>,
  maxPages = 10,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < maxPages; i++) {
    const p = await page(cursor);
    items.push(...p.items);
    if (!p.next_cursor) break;
    cursor = p.next_cursor;
  }
  return items;
}
