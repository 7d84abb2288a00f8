import { QueryClient } from '@tanstack/react-query';

import { queryConfig } from '@/config/query';
import { isApiError, NETWORK_ERROR_STATUS } from '@/lib/api-client';

/** 4xx answers will not change on retry; network errors and 5xx may. */
function shouldRetry(failureCount: number, error: unknown): boolean {
  if (isApiError(error) && error.status !== NETWORK_ERROR_STATUS && error.status < 500) return false;
  return failureCount < 2;
}

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: queryConfig.staleTime,
        refetchOnWindowFocus: false,
        retry: shouldRetry,
      },
      mutations: { retry: false },
    },
  });
}
