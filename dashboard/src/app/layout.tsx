import type { ReactNode } from 'react';
import { NavLink } from 'react-router';

import { ThemeToggle } from '@/components/theme-toggle';
import { paths } from '@/config/paths';
import { useLogout, useSession } from '@/features/auth/api/session';
import { useLiveStatus } from '@/hooks/use-live';

const LIVE_LABEL = { connecting: 'Connecting…', open: 'Live', reconnecting: 'Reconnecting…', closed: 'Offline' } as const;

function LiveIndicator() {
  const status = useLiveStatus();
  return (
    <span className={`live live--${status}`} role="status" aria-label={`Live updates: ${LIVE_LABEL[status]}`}>
      <span className="live__dot" aria-hidden="true" />
      {LIVE_LABEL[status]}
    </span>
  );
}

function LogoutButton() {
  const session = useSession();
  const logout = useLogout();
  if (!session.data?.auth_required) return null;
  return (
    <button type="button" className="button" onClick={() => logout.mutate()} disabled={logout.isPending}>
      Sign out
    </button>
  );
}

export function Layout({ title, children }: { title: string; children: ReactNode }) {
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">
          sms<strong>gate</strong>
        </span>
        <nav className="nav" aria-label="Main">
          {Object.values(paths).map(({ path, label }) => (
            <NavLink key={path} to={path} end className="nav__link">
              {label}
            </NavLink>
          ))}
        </nav>
        <div className="topbar__tools">
          <LiveIndicator />
          <ThemeToggle />
          <LogoutButton />
        </div>
      </header>
      <main id="main" className="main" tabIndex={-1}>
        <h1 className="page-title">{title}</h1>
        {children}
      </main>
    </div>
  );
}
