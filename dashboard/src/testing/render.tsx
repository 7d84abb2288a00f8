import { QueryClient } from '@tanstack/react-query';
import { render } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter } from 'react-router';

import { AppContent } from '@/app/app';
import { AppProvider } from '@/app/provider';

export function makeTestQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: { retry: false, gcTime: Infinity, refetchOnWindowFocus: false },
      mutations: { retry: false },
    },
  });
}

/** The whole app (session gate, live stream, routes) at `path`, with a fresh cache. */
export function renderApp(path = '/', { user = userEvent.setup() } = {}) {
  const queryClient = makeTestQueryClient();
  const result = render(
    <AppProvider queryClient={queryClient}>
      <MemoryRouter initialEntries={[path]}>
        <AppContent />
      </MemoryRouter>
    </AppProvider>,
  );
  return { ...result, user, queryClient };
}
