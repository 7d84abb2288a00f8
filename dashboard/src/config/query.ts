/** How the dashboard trades freshness for load; SSE keeps most data live between fetches. */
export const queryConfig = {
  /** Live data arrives over SSE, so refetching on focus would only repeat it. */
  staleTime: 30_000,
  /** The one periodic resync of /api/stats: corrects per-minute buckets and top lists as the hour slides. */
  statsResyncMs: 60_000,
  /** How many events one /api/events page asks for. */
  eventsPageSize: 50,
  /** How many live events the first cached page keeps before the oldest are dropped. */
  maxLiveEvents: 500,
  /** Minutes of per-minute stats on the overview chart. */
  overviewMinutes: 60,
  /** Most events one audit search asks for. */
  auditLimit: 1000,
} as const;
