import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, onAuthProblem, type Me } from '../api/client';
import { ApiError } from '../api/problem';

export const SESSION_ENDED = 'Your session ended, please log in again.';
export const LOGGED_OUT = 'You have logged out.';

export type AuthState =
  | { status: 'loading' }
  /** /me could not be reached at all; the app offers a retry instead of spinning forever. */
  | { status: 'unreachable'; error: unknown }
  | { status: 'anonymous'; notice?: string; email?: string }
  /** Logged in with an enrolment-only session: only TOTP enrolment is possible. */
  | { status: 'enrolling'; me: Me }
  | { status: 'authenticated'; me: Me };

interface AuthContextValue {
  state: AuthState;
  /** Reads /me and updates the state; returns the new state. */
  refresh: () => Promise<AuthState>;
  logout: () => Promise<void>;
  /** Forget the session locally (e.g. the server ended it); the login page shows `notice` and `email`. */
  endSession: (notice?: string, email?: string) => void;
  /** Another request returned 403 mfa_enrollment_required. */
  clearNotice: () => void;
}

const AuthContext = createContext<AuthContextValue | null>(null);

function fromMe(me: Me): AuthState {
  return me.mfa_enrollment_required ? { status: 'enrolling', me } : { status: 'authenticated', me };
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<AuthState>({ status: 'loading' });

  const refresh = useCallback(async (): Promise<AuthState> => {
    try {
      const me = await api.get('/api/v1/me');
      const next = fromMe(me);
      setState(next);
      return next;
    } catch (error) {
      // A session that expired or was revoked while the tab was closed deserves a word; no
      // cookie at all (code `unauthorized`) is just a visitor who has not signed in.
      const next: AuthState =
        error instanceof ApiError && error.status === 401
          ? { status: 'anonymous', notice: error.code === 'session_expired' || error.code === 'session_invalid' ? SESSION_ENDED : undefined }
          : { status: 'unreachable', error };
      setState(next);
      return next;
    }
  }, []);

  const endSession = useCallback((notice?: string, email?: string) => setState({ status: 'anonymous', notice, email }), []);

  const logout = useCallback(async () => {
    try {
      await api.post('/api/v1/auth/logout');
    } catch {
      // The session may already be gone; either way the user is logged out here.
    }
    setState({ status: 'anonymous', notice: LOGGED_OUT });
  }, []);

  const clearNotice = useCallback(() => {
    setState((s) => (s.status === 'anonymous' && s.notice ? { status: 'anonymous' } : s));
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  useEffect(
    () =>
      onAuthProblem((err) =>
        setState((current) => {
          if (err.status === 401 && (current.status === 'authenticated' || current.status === 'enrolling')) {
            return { status: 'anonymous', notice: SESSION_ENDED };
          }
          if (err.code === 'mfa_enrollment_required' && current.status === 'authenticated') {
            return { status: 'enrolling', me: { ...current.me, mfa_enrollment_required: true } };
          }
          return current;
        }),
      ),
    [],
  );

  const value = useMemo(
    () => ({ state, refresh, logout, endSession, clearNotice }),
    [state, refresh, logout, endSession, clearNotice],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthContextValue {
  const ctx = useContext(AuthContext);
  if (!ctx) throw new Error('useAuth outside AuthProvider');
  return ctx;
}

/** The signed-in principal; only for components under an authenticated route. */
export function useMe(): Me {
  const { state } = useAuth();
  if (state.status !== 'authenticated' && state.status !== 'enrolling') throw new Error('useMe without a session');
  return state.me;
}
