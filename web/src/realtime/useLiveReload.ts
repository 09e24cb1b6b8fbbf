import { useEffect, useRef } from 'react';
import { createCoalescer, createResync, type LiveInterest } from './liveReload';
import { useRealtime, useRealtimeEvents, useRealtimeHints } from './RealtimeProvider';

/**
 * Keeps a page's REST data current over the shared realtime connection instead of polling:
 * `reload` runs when a pushed event or change hint concerns the page (`interest`), and when the
 * connection comes back after a gap (anything may have been missed). Requests within
 * `COALESCE_MS` become one reload. While `paused` (a dialog edits what would be reloaded) or the
 * tab is hidden, requests wait and are served once, when that ends.
 */
export function useLiveReload(reload: () => void, interest: LiveInterest, { paused = false }: { paused?: boolean } = {}) {
  const reloadRef = useRef(reload);
  const interestRef = useRef(interest);
  useEffect(() => {
    reloadRef.current = reload;
    interestRef.current = interest;
  });

  const coalescer = useRef<ReturnType<typeof createCoalescer> | null>(null);
  useEffect(() => {
    const c = createCoalescer(() => reloadRef.current());
    coalescer.current = c;
    const visibility = () => c.setPaused('hidden', document.visibilityState === 'hidden');
    visibility();
    document.addEventListener('visibilitychange', visibility);
    return () => {
      document.removeEventListener('visibilitychange', visibility);
      c.dispose();
      coalescer.current = null;
    };
  }, []);
  useEffect(() => {
    coalescer.current?.setPaused('page', paused);
  }, [paused]);

  useRealtimeEvents((event) => {
    if (interestRef.current.event?.(event)) coalescer.current?.request();
  });
  useRealtimeHints((hint) => {
    if (interestRef.current.hint?.(hint)) coalescer.current?.request();
  });

  const { status, connectionId } = useRealtime();
  const resync = useRef<ReturnType<typeof createResync> | null>(null);
  useEffect(() => {
    resync.current ??= createResync(status, connectionId);
    if (resync.current(status, connectionId)) coalescer.current?.request();
  }, [status, connectionId]);
}
