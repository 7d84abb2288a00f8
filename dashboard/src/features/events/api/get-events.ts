import { useInfiniteQuery, type InfiniteData, type QueryClient } from '@tanstack/react-query';

import { queryConfig } from '@/config/query';
import { api } from '@/lib/api-client';
import type { EventsPage, Outcome, SmsEvent } from '@/lib/types';

/** `all` asks for every event; `rejected` reads the (longer-kept) violations list. */
export type OutcomeFilter = Outcome | 'all';

export const eventsQueryKey = (outcome: OutcomeFilter) => ['events', { outcome }] as const;

export interface GetEventsParams {
  outcome: OutcomeFilter;
  before?: string | null;
  limit?: number;
  signal?: AbortSignal;
}

export const getEvents = ({ outcome, before, limit, signal }: GetEventsParams): Promise<EventsPage> =>
  api.get<EventsPage>('/api/events', {
    query: { outcome: outcome === 'all' ? undefined : outcome, limit: limit ?? queryConfig.eventsPageSize, before },
    signal,
  });

export type EventsData = InfiniteData<EventsPage, string | null>;

/** Newest first; further pages reach back with `before=`. New events come from SSE. */
export function useEvents(outcome: OutcomeFilter) {
  return useInfiniteQuery({
    queryKey: eventsQueryKey(outcome),
    queryFn: ({ pageParam, signal }) => getEvents({ outcome, before: pageParam, signal }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_before ?? undefined,
    // SSE keeps these current; a refetch would only repeat what it already delivered.
    staleTime: Infinity,
  });
}

export const flattenEvents = (data: { pages: EventsPage[] } | undefined): SmsEvent[] =>
  data ? data.pages.flatMap((page) => page.events) : [];

/** Prepends one live event to the first page of every cached list it belongs in. */
export function withLiveEvent(data: EventsData, event: SmsEvent, max: number = queryConfig.maxLiveEvents): EventsData {
  const [first, ...rest] = data.pages;
  if (!first) return data;
  if (data.pages.some((page) => page.events.some((e) => e.id === event.id))) return data;
  const events = [event, ...first.events];
  if (events.length + rest.reduce((n, page) => n + page.events.length, 0) <= max) {
    return { ...data, pages: [{ ...first, events }, ...rest] };
  }
  // Over the cap: keep the newest, and let "load older" continue right below the last kept one.
  const kept = [...events, ...rest.flatMap((page) => page.events)].slice(0, max);
  return {
    pages: [{ events: kept, next_before: kept[kept.length - 1]?.stream_id ?? null }],
    pageParams: data.pageParams.slice(0, 1),
  };
}

export function applyEventToEvents(queryClient: QueryClient, event: SmsEvent): void {
  for (const query of queryClient.getQueryCache().findAll({ queryKey: ['events'] })) {
    const filter = (query.queryKey[1] as { outcome?: OutcomeFilter } | undefined)?.outcome ?? 'all';
    if (filter !== 'all' && filter !== event.outcome) continue;
    queryClient.setQueryData<EventsData>(query.queryKey, (data) => data && withLiveEvent(data, event));
  }
}
