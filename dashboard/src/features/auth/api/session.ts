import { useMutation, useQuery, useQueryClient, type QueryClient } from '@tanstack/react-query';

import { api, isApiError } from '@/lib/api-client';
import type { Session } from '@/lib/types';

export const sessionQueryKey = ['session'] as const;

const OPEN_SESSION: Session = { auth_required: false, authenticated: true };

export async function getSession(signal?: AbortSignal): Promise<Session> {
  try {
    return await api.get<Session>('/api/session', { signal });
  } catch (error) {
    // A server without the session route has no login to offer.
    if (isApiError(error) && error.status === 404) return OPEN_SESSION;
    throw error;
  }
}

export function useSession() {
  return useQuery({
    queryKey: sessionQueryKey,
    queryFn: ({ signal }) => getSession(signal),
    staleTime: Infinity,
  });
}

/** Any 401 means the session is gone (or never was): show the login screen. */
export function markSignedOut(queryClient: QueryClient): void {
  queryClient.setQueryData<Session>(sessionQueryKey, { auth_required: true, authenticated: false });
}

export const login = (token: string): Promise<void> =>
  api.post<void>('/api/login', { token }, { ignoreUnauthorized: true });

export function useLogin() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: login,
    onSuccess: async () => {
      queryClient.setQueryData<Session>(sessionQueryKey, { auth_required: true, authenticated: true });
      // Everything fetched before the login failed with 401; fetch it again.
      await queryClient.invalidateQueries({ predicate: (q) => q.queryKey[0] !== sessionQueryKey[0] });
    },
  });
}

export const logout = (): Promise<void> => api.post<void>('/api/logout');

export function useLogout() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: logout,
    onSettled: () => {
      markSignedOut(queryClient);
      queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== sessionQueryKey[0] });
    },
  });
}
