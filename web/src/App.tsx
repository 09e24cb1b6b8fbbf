import type { ReactNode } from 'react';
import { BrowserRouter, Navigate, Route, Routes, useLocation } from 'react-router';
import { AuthProvider, SESSION_ENDED, useAuth } from './auth/session';
import { Shell } from './components/Shell';
import { Button, Spinner } from './components/ui';
import { describeError } from './api/problem';
import { canAccess, homeFor } from './lib/nav';
import { LoginPage } from './pages/Login';
import { EnrollPage } from './pages/Enroll';
import { ComingSoonPage } from './pages/ComingSoon';
import { UsersPage } from './pages/Users';
import { ApiKeysPage } from './pages/ApiKeys';
import { AuditPage } from './pages/Audit';
import { TenantsPage } from './pages/Tenants';
import { WebhooksPage } from './pages/Webhooks';
import { WebhookEndpointPage } from './pages/WebhookEndpoint';
import { ProfilePage } from './pages/Profile';
import { TrunksPage } from './pages/Trunks';
import { QueueDetailPage, QueuesPage } from './pages/Queues';
import { CallDetailPage, CdrsPage } from './pages/Cdrs';
import { NumbersPage } from './pages/Numbers';
import { AgentDetailPage, AgentsDashboardPage, AgentsSettingsPage } from './pages/Agents';
import { ForbiddenPage, NotFoundPage } from './pages/NotFound';
import { WallboardPage } from './pages/Wallboard';
import { SoftphonePage } from './pages/Softphone';
import { SoftphoneProvider } from './softphone/SoftphoneProvider';

export function App() {
  return (
    <BrowserRouter>
      <AuthProvider>
        <Gate>
          <Routes>
            <Route path="/login" element={<LoginPage />} />
            <Route
              path="/mfa/enroll"
              element={
                <RequireSession allowEnrolling>
                  <EnrollPage mode="required" />
                </RequireSession>
              }
            />
            <Route
              element={
                <RequireSession>
                  <SoftphoneProvider>
                    <Shell />
                  </SoftphoneProvider>
                </RequireSession>
              }
            >
              <Route index element={<Home />} />
              <Route path="softphone" element={<Allowed path="/softphone"><SoftphonePage /></Allowed>} />
              <Route path="dashboard/agents" element={<Allowed path="/dashboard/agents"><AgentsDashboardPage /></Allowed>} />
              <Route path="dashboard/agents/:id" element={<Allowed path="/dashboard/agents"><AgentDetailPage base="/dashboard/agents" /></Allowed>} />
              <Route path="dashboard/wallboard" element={<Allowed path="/dashboard/wallboard"><WallboardPage /></Allowed>} />
              <Route path="settings" element={<Navigate to="/settings/users" replace />} />
              {(
                [
                  '/settings/transcription-policies',
                  '/settings/transcription-providers',
                  '/settings/salesforce',
                ] as const
              ).map((path) => (
                <Route key={path} path={path.slice(1)} element={<Allowed path={path}><ComingSoonPage path={path} /></Allowed>} />
              ))}
              <Route path="settings/queues" element={<Allowed path="/settings/queues"><QueuesPage /></Allowed>} />
              <Route path="settings/queues/:id" element={<Allowed path="/settings/queues"><QueueDetailPage /></Allowed>} />
              <Route path="cdrs" element={<Allowed path="/cdrs"><CdrsPage /></Allowed>} />
              <Route path="cdrs/:id" element={<Allowed path="/cdrs"><CallDetailPage /></Allowed>} />
              <Route path="settings/sip-trunks" element={<Allowed path="/settings/sip-trunks"><TrunksPage /></Allowed>} />
              <Route path="settings/numbers" element={<Allowed path="/settings/numbers"><NumbersPage /></Allowed>} />
              <Route path="settings/agents" element={<Allowed path="/settings/agents"><AgentsSettingsPage /></Allowed>} />
              <Route path="settings/agents/:id" element={<Allowed path="/settings/agents"><AgentDetailPage base="/settings/agents" /></Allowed>} />
              <Route path="settings/users" element={<Allowed path="/settings/users"><UsersPage /></Allowed>} />
              <Route path="settings/developer/api-keys" element={<Allowed path="/settings/developer/api-keys"><ApiKeysPage /></Allowed>} />
              <Route path="settings/developer/webhooks" element={<Allowed path="/settings/developer/webhooks"><WebhooksPage /></Allowed>} />
              <Route path="settings/developer/webhooks/:id" element={<Allowed path="/settings/developer/webhooks"><WebhookEndpointPage /></Allowed>} />
              <Route path="audit" element={<Allowed path="/audit"><AuditPage /></Allowed>} />
              <Route path="platform/tenants" element={<Allowed path="/platform/tenants"><TenantsPage /></Allowed>} />
              <Route path="profile" element={<ProfilePage />} />
              <Route path="profile/mfa" element={<EnrollPage mode="optional" />} />
              <Route path="*" element={<NotFoundPage />} />
            </Route>
          </Routes>
        </Gate>
      </AuthProvider>
    </BrowserRouter>
  );
}

/** Waits for the first /me answer; if SIVO cannot be reached, says so with a retry. */
function Gate({ children }: { children: ReactNode }) {
  const { state, refresh } = useAuth();
  if (state.status === 'loading') {
    return (
      <div className="fullscreen-center">
        <Spinner label="Loading SIVO…" />
      </div>
    );
  }
  if (state.status === 'unreachable') {
    return (
      <div className="fullscreen-center">
        <div className="card card-narrow" role="alert">
          <h1 className="card-title">SIVO is not answering</h1>
          <p className="muted">{describeError(state.error)}</p>
          <Button variant="primary" onClick={() => void refresh()}>
            Try again
          </Button>
        </div>
      </div>
    );
  }
  return <>{children}</>;
}

function RequireSession({ children, allowEnrolling = false }: { children: ReactNode; allowEnrolling?: boolean }) {
  const { state } = useAuth();
  const location = useLocation();
  if (state.status === 'anonymous') {
    // After an explicit logout the next person starts fresh; otherwise come back here after login.
    const from = !state.notice || state.notice === SESSION_ENDED ? location.pathname + location.search : undefined;
    return <Navigate to="/login" replace state={from && from !== '/' ? { from } : undefined} />;
  }
  if (state.status === 'enrolling' && !allowEnrolling) return <Navigate to="/mfa/enroll" replace />;
  return <>{children}</>;
}

function Home() {
  const { state } = useAuth();
  if (state.status !== 'authenticated') return null;
  return <Navigate to={homeFor(state.me.role)} replace />;
}

function Allowed({ path, children }: { path: string; children: ReactNode }) {
  const { state } = useAuth();
  if (state.status !== 'authenticated') return null;
  return canAccess(state.me.role, path) ? <>{children}</> : <ForbiddenPage />;
}
