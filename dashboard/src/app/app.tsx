import { BrowserRouter } from 'react-router';

import { LiveProvider } from '@/app/live-provider';
import { AppProvider } from '@/app/provider';
import { AppRoutes } from '@/app/router';
import { AuthGate } from '@/features/auth/components/auth-gate';

/** Providers outside in: query cache, then the session gate, then the one live stream. */
export function App() {
  return (
    <AppProvider>
      <AuthGate>
        <LiveProvider>
          <BrowserRouter>
            <AppRoutes />
          </BrowserRouter>
        </LiveProvider>
      </AuthGate>
    </AppProvider>
  );
}
