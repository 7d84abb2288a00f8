/**
 * Pure updates of a cached {@link Stats} from the live stream. They keep the shape the server
 * sends (oldest-first minutes, a fixed number of them; top lists of at most 10, most first),
 * so a component cannot tell a fetched value from a live one.
 */

import type { MinuteBucket, SmsEvent, Stats, StatsTick, TopClient, TopNumber } from '@/lib/types';

const MINUTE_MS = 60_000;
const TOP_N = 10;

const minuteStart = (ms: number): number => Math.floor(ms / MINUTE_MS) * MINUTE_MS;
const minuteIso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

/** Slides the per-minute window so its newest bucket is the minute holding `nowMs`. */
export function slideMinutes(buckets: MinuteBucket[], nowMs: number): MinuteBucket[] {
  if (buckets.length === 0 || Number.isNaN(nowMs)) return buckets;
  const newest = Date.parse(buckets[buckets.length - 1]!.minute);
  const target = minuteStart(nowMs);
  if (Number.isNaN(newest) || target <= newest) return buckets;
  const missing = Math.round((target - newest) / MINUTE_MS);
  const count = buckets.length;
  const added: MinuteBucket[] = [];
  for (let i = Math.max(1, missing - count + 1); i <= missing; i++) {
    added.push({ minute: minuteIso(newest + i * MINUTE_MS), accepted: 0, rejected: 0 });
  }
  return [...buckets, ...added].slice(-count);
}

export function withTick(stats: Stats, tick: StatsTick): Stats {
  return {
    ...stats,
    now: tick.now,
    totals: tick.totals,
    per_minute: slideMinutes(stats.per_minute, Date.parse(tick.now)),
  };
}

function bumpTopClients(list: TopClient[], event: SmsEvent): TopClient[] {
  const found = list.some((c) => c.ip === event.ip && c.to === event.to);
  const next = found
    ? list.map((c) => (c.ip === event.ip && c.to === event.to ? { ...c, rejections: c.rejections + 1 } : c))
    : [...list, { ip: event.ip, to: event.to, rejections: 1 }];
  return next.sort((a, b) => b.rejections - a.rejections).slice(0, TOP_N);
}

function bumpTopNumbers(list: TopNumber[], event: SmsEvent): TopNumber[] {
  const found = list.some((n) => n.to === event.to);
  const next = found
    ? list.map((n) => (n.to === event.to ? { ...n, rejections: n.rejections + 1 } : n))
    : [...list, { to: event.to, rejections: 1 }];
  return next.sort((a, b) => b.rejections - a.rejections).slice(0, TOP_N);
}

/**
 * Counts one event into its minute. Totals are left alone: the once-a-second `stats` tick
 * carries the server's exact totals, and adding here as well would count twice.
 */
export function withEvent(stats: Stats, event: SmsEvent): Stats {
  const at = Date.parse(event.at);
  if (Number.isNaN(at)) return stats;
  const perMinute = slideMinutes(stats.per_minute, at);
  const minute = minuteStart(at);
  // A blocked request was neither accepted nor rate limited: it has no place in these counts.
  const index = event.outcome === 'blocked' ? -1 : perMinute.findIndex((b) => Date.parse(b.minute) === minute);
  const rejected = event.outcome === 'rejected';
  return {
    ...stats,
    per_minute:
      index === -1
        ? perMinute
        : perMinute.map((b, i) =>
            i !== index ? b : rejected ? { ...b, rejected: b.rejected + 1 } : { ...b, accepted: b.accepted + 1 },
          ),
    top_clients: rejected ? bumpTopClients(stats.top_clients, event) : stats.top_clients,
    top_numbers: rejected ? bumpTopNumbers(stats.top_numbers, event) : stats.top_numbers,
  };
}
