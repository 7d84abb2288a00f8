import { useQuery, type QueryClient } from '@tanstack/react-query';

import { queryConfig } from '@/config/query';
import { api, isApiError } from '@/lib/api-client';
import type { SmsDelivery, StatusChange } from '@/lib/types';

export const messageQueryKey = (id: string) => ['sms', id] as const;

/**
 * `GET /api/sms/{id}`; `null` when the server knows no delivery for the id (404: rejected,
 * not yet taken on by the dispatcher, or older than the delivery state is kept).
 */
export async function getMessage(id: string, signal?: AbortSignal): Promise<SmsDelivery | null> {
  try {
    return await api.get<SmsDelivery>(`/api/sms/${encodeURIComponent(id)}`, { signal });
  } catch (error) {
    if (isApiError(error) && error.status === 404) return null;
    throw error;
  }
}

/** One message's delivery: fetched once, then kept live by `status` SSE events ({@link applyStatusChange}). */
export function useMessage(id: string, { enabled = true }: { enabled?: boolean } = {}) {
  return useQuery({
    queryKey: messageQueryKey(id),
    queryFn: ({ signal }) => getMessage(id, signal),
    enabled,
    staleTime: queryConfig.staleTime,
  });
}

/** `message` with `change` applied: the newest status, attempts so far, and one more history line. */
export function withStatusChange(message: SmsDelivery, change: StatusChange): SmsDelivery {
  // A change already in the history (the fetch raced the event) is not added twice.
  if (message.history.some((h) => h.status === change.status && h.at === change.at)) return message;
  const history = [...message.history, { status: change.status, at: change.at, detail: change.detail }].sort((a, b) =>
    a.at.localeCompare(b.at),
  );
  const newest = history[history.length - 1] ?? change;
  return {
    ...message,
    status: newest.status,
    provider: change.provider || message.provider,
    provider_id: change.provider_id ?? message.provider_id,
    attempts: Math.max(message.attempts, change.attempt),
    history,
  };
}

/**
 * A `status` SSE event. A message in the cache takes the change at once; one that is watched
 * but was not known yet (fetched before the dispatcher took it on) is fetched again.
 */
export function applyStatusChange(queryClient: QueryClient, change: StatusChange): void {
  const key = messageQueryKey(change.id);
  const cached = queryClient.getQueryData<SmsDelivery | null>(key);
  if (cached) {
    queryClient.setQueryData<SmsDelivery>(key, withStatusChange(cached, change));
  } else if (queryClient.getQueryState(key)) {
    void queryClient.invalidateQueries({ queryKey: key, exact: true });
  }
}
