// One Socket.IO connection per signed-in tab, shared by every page: the server pushes the tenant's
// events (`event`) and change hints (`changed`: `{resource, id}`, "re-read this over REST") to it. The handshake is authenticated like a REST request: the HttpOnly session
// cookie travels with it (same origin), so no token is kept in script; a caller that has a token
// (an API key on a wall display) can pass it as `token` and it goes in `auth: { token }`.
//
// Reconnection: socket.io-client retries lost connections by itself (1 s, doubling to 10 s, with
// jitter). When the server refuses the handshake or disconnects us on purpose it does not, so we
// retry with our own backoff, and when the refusal says the session is over we ask /me, which
// sends an ended session to the login page. Pages never wait on the socket: they load from
// REST and show the indicator's state; `connectionId` changes on every (re)connect so they can
// resynchronise what they may have missed.
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { io, type Socket } from 'socket.io-client';
import { useAuth } from '../auth/session';
import { parseRefusal, retryDelayMs, type RealtimeStatus } from './connection';
import { isChangeHint, isSivoEvent, type ChangeHint, type SivoEvent } from './events';

type Listener = (event: SivoEvent) => void;
type HintListener = (hint: ChangeHint) => void;

export interface RealtimeValue {
  status: RealtimeStatus;
  /** Why the last attempt failed, for the indicator's tooltip. */
  error?: string;
  /** Increments on every successful (re)connect. */
  connectionId: number;
  /** Calls `listener` for every event pushed; returns the unsubscribe function. */
  subscribe: (listener: Listener) => () => void;
  /** Calls `listener` for every change hint pushed; returns the unsubscribe function. */
  subscribeHints: (listener: HintListener) => () => void;
}

const RealtimeContext = createContext<RealtimeValue | null>(null);

interface State {
  status: Exclude<RealtimeStatus, 'idle'>;
  error?: string;
  connectionId: number;
}

export function RealtimeProvider({ enabled, token, children }: { enabled: boolean; token?: string; children: ReactNode }) {
  const { refresh } = useAuth();
  const [state, setState] = useState<State>({ status: 'connecting', connectionId: 0 });
  const listeners = useRef(new Set<Listener>());
  const hintListeners = useRef(new Set<HintListener>());
  const refreshRef = useRef(refresh);
  useEffect(() => {
    refreshRef.current = refresh;
  });

  useEffect(() => {
    if (!enabled) return;
    setState((s) => ({ status: 'connecting', connectionId: s.connectionId }));
    const socket: Socket = io({
      path: '/socket.io/',
      auth: token ? { token } : undefined,
      withCredentials: true,
      reconnectionDelay: 1_000,
      reconnectionDelayMax: 10_000,
      randomizationFactor: 0.5,
      timeout: 10_000,
    });
    let retries = 0;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    let closed = false;

    // After a refusal or a server-side disconnect socket.io-client stops; we retry ourselves,
    // once /me has had the chance to end the session (then this provider unmounts).
    const retryLater = () => {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => {
        if (!closed && !socket.connected) socket.connect();
      }, retryDelayMs(retries++));
    };

    socket.on('connect', () => {
      retries = 0;
      setState((s) => ({ status: 'connected', connectionId: s.connectionId + 1 }));
    });
    socket.on('disconnect', (reason) => {
      if (closed) return;
      setState((s) => ({ ...s, status: 'reconnecting', error: `connection lost (${reason})` }));
      // The server closed it (restart, or a `session_ended` just handled below): retry; an ended
      // session is refused at the next handshake and handled there.
      if (reason === 'io server disconnect') retryLater();
    });
    socket.on('connect_error', (err: Error) => {
      if (closed) return;
      if (socket.active) {
        // A network problem: socket.io-client retries by itself.
        setState((s) => ({ ...s, status: s.status === 'connected' ? 'reconnecting' : s.status, error: err.message }));
        return;
      }
      const refusal = parseRefusal(err.message);
      setState((s) => ({ ...s, status: 'reconnecting', error: refusal.message }));
      if (refusal.sessionEnded) void refreshRef.current();
      retryLater();
    });
    socket.io.on('reconnect_attempt', () => setState((s) => ({ ...s, status: 'reconnecting' })));
    socket.on('session_ended', () => void refreshRef.current());
    socket.on('event', (value: unknown) => {
      if (isSivoEvent(value)) notify(listeners.current, value);
    });
    socket.on('changed', (value: unknown) => {
      if (isChangeHint(value)) notify(hintListeners.current, value);
    });

    return () => {
      closed = true;
      clearTimeout(retryTimer);
      socket.removeAllListeners();
      socket.io.removeAllListeners();
      socket.disconnect();
    };
  }, [enabled, token]);

  const subscribe = useCallback((listener: Listener) => {
    listeners.current.add(listener);
    return () => {
      listeners.current.delete(listener);
    };
  }, []);
  const subscribeHints = useCallback((listener: HintListener) => {
    hintListeners.current.add(listener);
    return () => {
      hintListeners.current.delete(listener);
    };
  }, []);

  const value = useMemo<RealtimeValue>(
    () =>
      enabled
        ? { status: state.status, error: state.error, connectionId: state.connectionId, subscribe, subscribeHints }
        : { status: 'idle', connectionId: state.connectionId, subscribe, subscribeHints },
    [enabled, state, subscribe, subscribeHints],
  );
  return <RealtimeContext.Provider value={value}>{children}</RealtimeContext.Provider>;
}

/** The shared live connection; outside a provider it is idle and delivers nothing. */
export function useRealtime(): RealtimeValue {
  return useContext(RealtimeContext) ?? IDLE;
}

function notify<T>(listeners: Set<(value: T) => void>, value: T) {
  for (const listener of listeners) {
    try {
      listener(value);
    } catch (e) {
      console.error('realtime listener failed', e);
    }
  }
}

const IDLE: RealtimeValue = { status: 'idle', connectionId: 0, subscribe: () => () => {}, subscribeHints: () => () => {} };

/** Calls `listener` for each pushed event while mounted (the latest `listener` is always used). */
export function useRealtimeEvents(listener: Listener) {
  const { subscribe } = useRealtime();
  const ref = useRef(listener);
  useEffect(() => {
    ref.current = listener;
  });
  useEffect(() => subscribe((e) => ref.current(e)), [subscribe]);
}

/** Calls `listener` for each pushed change hint while mounted (the latest `listener` is always used). */
export function useRealtimeHints(listener: HintListener) {
  const { subscribeHints } = useRealtime();
  const ref = useRef(listener);
  useEffect(() => {
    ref.current = listener;
  });
  useEffect(() => subscribeHints((h) => ref.current(h)), [subscribeHints]);
}
