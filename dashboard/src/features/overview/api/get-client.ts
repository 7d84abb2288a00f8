import { useQuery } from '@tanstack/react-query';

import { api } from '@/lib/api-client';
import type { ClientState } from '@/lib/types';

export const clientQueryKey = (ip: string, to: string) => ['client', ip, to] as const;

export const getClient = (ip: string, to: string, signal?: AbortSignal): Promise<ClientState> =>
  api.get<ClientState>(`/api/clients/${encodeURIComponent(ip)}/${encodeURIComponent(to)}`, { signal });

/** The current windows of one client, fetched when asked for (`enabled`). */
export function useClient(ip: string, to: string, enabled: boolean) {
  return useQuery({
    queryKey: clientQueryKey(ip, to),
    queryFn: ({ signal }) => getClient(ip, to, signal),
    enabled,
    staleTime: 0,
  });
}
