import { useQuery, type QueryClient } from '@tanstack/react-query';

import { queryConfig } from '@/config/query';
import { withEvent, withTick } from '@/features/overview/api/live-stats';
import { api } from '@/lib/api-client';
import type { SmsEvent, Stats, StatsTick } from '@/lib/types';

export const statsQueryKey = (minutes: number) => ['stats', { minutes }] as const;

export const getStats = (minutes: number, signal?: AbortSignal): Promise<Stats> =>
  api.get<Stats>('/api/stats', { query: { minutes }, signal });

/**
 * Last known stats at once, then kept live by SSE (see {@link applyStatsTick} and
 * {@link applyEventToStats}); one slow resync corrects what slides out of the hour.
 */
export function useStats(minutes: number = queryConfig.overviewMinutes) {
  return useQuery({
    queryKey: statsQueryKey(minutes),
    queryFn: ({ signal }) => getStats(minutes, signal),
    refetchInterval: queryConfig.statsResyncMs,
  });
}

/** A `stats` SSE tick: new totals, and the per-minute window slid to `now`. */
export function applyStatsTick(queryClient: QueryClient, tick: StatsTick): void {
  queryClient.setQueriesData<Stats>({ queryKey: ['stats'] }, (stats) => stats && withTick(stats, tick));
}

/** An `sms` SSE event: counted into its minute, and into the top offenders when rejected. */
export function applyEventToStats(queryClient: QueryClient, event: SmsEvent): void {
  queryClient.setQueriesData<Stats>({ queryKey: ['stats'] }, (stats) => stats && withEvent(stats, event));
}
