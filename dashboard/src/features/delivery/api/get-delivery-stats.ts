import { useQuery, type QueryClient } from '@tanstack/react-query';

import { queryConfig } from '@/config/query';
import { api } from '@/lib/api-client';
import type { DeliveryStats, StatusChange } from '@/lib/types';

// Not under ['stats']: `stats` ticks rewrite every query there with the decision totals.
export const deliveryStatsQueryKey = (minutes: number) => ['delivery-stats', { minutes }] as const;

export const getDeliveryStats = (minutes: number, signal?: AbortSignal): Promise<DeliveryStats> =>
  api.get<DeliveryStats>('/api/stats/delivery', { query: { minutes }, signal });

/** Status changes per minute, live from `status` SSE events, resynced as slowly as the stats. */
export function useDeliveryStats(minutes: number = queryConfig.overviewMinutes) {
  return useQuery({
    queryKey: deliveryStatsQueryKey(minutes),
    queryFn: ({ signal }) => getDeliveryStats(minutes, signal),
    refetchInterval: queryConfig.statsResyncMs,
  });
}

const minuteOf = (iso: string) => Math.floor(Date.parse(iso) / 60_000);

/** `stats` with one more status change counted into its minute and the totals (when that minute is on the chart). */
export function withStatusCounted(stats: DeliveryStats, change: StatusChange): DeliveryStats {
  const minute = minuteOf(change.at);
  if (!stats.per_minute.some((bucket) => minuteOf(bucket.minute) === minute)) return stats;
  return {
    ...stats,
    per_minute: stats.per_minute.map((bucket) =>
      minuteOf(bucket.minute) === minute ? { ...bucket, [change.status]: bucket[change.status] + 1 } : bucket,
    ),
    totals: { ...stats.totals, [change.status]: stats.totals[change.status] + 1 },
  };
}

export function applyStatusToDeliveryStats(queryClient: QueryClient, change: StatusChange): void {
  queryClient.setQueriesData<DeliveryStats>({ queryKey: ['delivery-stats'] }, (stats) => stats && withStatusCounted(stats, change));
}
