import { BrowserRouter } from 'react-router';

import { LiveProvider } from '@/app/live-provider';
import { AppProvider } from '@/app/provider';
import { AppRoutes } from '@/app/router';
import { AuthGate } from '@/features/auth/components/auth-gate';

/** Everything inside the router: the session gate, then the one live stream, then the pages. */
export function AppContent() {
  return (
    <AuthGate>
      <LiveProvider>
        <AppRoutes />
      </LiveProvider>
    </AuthGate>
  );
}

export function App() {
  return (
    <AppProvider>
      <BrowserRouter>
        <AppContent />
      </BrowserRouter>
    </AppProvider>
  );
}
