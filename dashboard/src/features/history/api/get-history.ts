import { keepPreviousData, useQuery } from '@tanstack/react-query';

import { api } from '@/lib/api-client';
import type { History, HistoryBucketSize } from '@/lib/types';

export interface HistoryParams {
  bucket: HistoryBucketSize;
  /** RFC 3339 */
  since?: string;
  /** RFC 3339 */
  until?: string;
}

export const historyQueryKey = (params: HistoryParams) => ['history', params] as const;

export const getHistory = ({ bucket, since, until }: HistoryParams, signal?: AbortSignal): Promise<History> =>
  api.get<History>('/api/history', { query: { bucket, since, until }, signal });

export function useHistory(params: HistoryParams) {
  return useQuery({
    queryKey: historyQueryKey(params),
    queryFn: ({ signal }) => getHistory(params, signal),
    placeholderData: keepPreviousData,
  });
}
