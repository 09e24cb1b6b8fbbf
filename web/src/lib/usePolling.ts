import { useEffect, useRef } from 'react';

/**
 * Calls `tick` every `ms` while the tab is visible (and once when it becomes visible again), so
 * status columns stay current without a socket. `enabled: false` pauses it (a dialog is open).
 */
export function usePolling(tick: () => void, ms: number, enabled = true) {
  const ref = useRef(tick);
  useEffect(() => {
    ref.current = tick;
  });
  useEffect(() => {
    if (!enabled) return;
    const run = () => {
      if (document.visibilityState === 'visible') ref.current();
    };
    const timer = setInterval(run, ms);
    document.addEventListener('visibilitychange', run);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', run);
    };
  }, [ms, enabled]);
}

