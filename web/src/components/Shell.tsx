import { useEffect, useRef, useState } from 'react';
import { Link, NavLink, Outlet, useLocation } from 'react-router';
import { api } from '../api/client';
import { useAuth, useMe } from '../auth/session';
import { navFor } from '../lib/nav';
import { ROLE_LABELS } from '../lib/format';
import { Logo } from './Logo';
import { ConnectionIndicator } from '../realtime/ConnectionIndicator';
import { RealtimeProvider } from '../realtime/RealtimeProvider';

/** The signed-in app: one live connection for all pages (platform users have no tenant to hear from). */
export function Shell() {
  const me = useMe();
  return (
    <RealtimeProvider enabled={!!me.tenant_id}>
      <ShellLayout />
    </RealtimeProvider>
  );
}

function ShellLayout() {
  const me = useMe();
  const { logout } = useAuth();
  const location = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  const [tenantName, setTenantName] = useState<string | null>(null);
  const [loggingOut, setLoggingOut] = useState(false);

  const menuButton = useRef<HTMLButtonElement>(null);
  const sidebar = useRef<HTMLElement>(null);

  // Close the mobile menu on navigation.
  useEffect(() => setMenuOpen(false), [location.pathname]);

  // Narrow screens: the open menu takes focus, and Escape closes it and returns focus.
  useEffect(() => {
    if (!menuOpen) return;
    sidebar.current?.querySelector<HTMLElement>('.nav-link')?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape') return;
      setMenuOpen(false);
      menuButton.current?.focus();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [menuOpen]);

  useEffect(() => {
    if (!me.tenant_id) return;
    const controller = new AbortController();
    api.get('/api/v1/tenants/{id}', { path: { id: me.tenant_id }, signal: controller.signal }).then(
      (t) => setTenantName(t.name),
      () => setTenantName(null), // the name is decoration; the app works without it
    );
    return () => controller.abort();
  }, [me.tenant_id]);

  const sections = navFor(me.role);
  const name = me.user?.display_name || me.user?.email || 'Signed in';
  const context = me.role === 'superadmin' ? 'Platform' : tenantName;

  return (
    <div className={`app${menuOpen ? ' menu-open' : ''}`}>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <button
          ref={menuButton}
          type="button"
          className="icon-btn menu-btn"
          aria-expanded={menuOpen}
          aria-controls="sidebar"
          aria-label={menuOpen ? 'Close menu' : 'Open menu'}
          onClick={() => setMenuOpen((o) => !o)}
        >
          <svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" strokeWidth="2" aria-hidden="true">
            {menuOpen ? <path d="M6 6l12 12M18 6L6 18" /> : <path d="M4 7h16M4 12h16M4 17h16" />}
          </svg>
        </button>
        <Link to="/" className="brand brand-top">
          <Logo /> SIVO
        </Link>
        <ConnectionIndicator className="topbar-live" />
      </header>
      <div className="scrim" onClick={() => setMenuOpen(false)} aria-hidden="true" />
      <aside id="sidebar" className="sidebar" ref={sidebar}>
        <Link to="/" className="brand">
          <Logo />
          <span className="brand-text">
            <span className="brand-name">SIVO</span>
            {context && <span className="brand-context">{context}</span>}
          </span>
        </Link>
        <ConnectionIndicator className="sidebar-live" />
        <nav aria-label="Main" className="nav">
          {sections.map((section) => (
            <div key={section.label ?? 'top'} className="nav-section">
              {section.label && <p className="nav-section-label">{section.label}</p>}
              <ul>
                {section.items.map((item) => (
                  <li key={item.path}>
                    <NavLink to={item.path} className="nav-link">
                      <span>{item.label}</span>
                      {item.comingSoon && <span className="nav-soon">Soon</span>}
                    </NavLink>
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </nav>
        <div className="sidebar-footer">
          <NavLink to="/profile" className="user-card">
            <span className="avatar" aria-hidden="true">
              {name.slice(0, 1).toUpperCase()}
            </span>
            <span className="user-card-text">
              <span className="user-card-name">{name}</span>
              <span className="user-card-role">{ROLE_LABELS[me.role] ?? me.role} · Profile</span>
            </span>
          </NavLink>
          <button
            type="button"
            className="btn btn-ghost btn-block"
            disabled={loggingOut}
            onClick={() => {
              setLoggingOut(true);
              void logout();
            }}
          >
            <svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" strokeWidth="2" aria-hidden="true">
              <path d="M15 4h3a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2h-3M10 17l5-5-5-5M15 12H3" />
            </svg>
            Log out
          </button>
        </div>
      </aside>
      <main id="main" className="main" tabIndex={-1}>
        <div className="content">
          <Outlet />
        </div>
      </main>
    </div>
  );
}
