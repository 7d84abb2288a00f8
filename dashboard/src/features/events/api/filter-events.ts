import type { SmsEvent } from '@/lib/types';

export interface TextFilters {
  number: string;
  ip: string;
}

/** Phone numbers are matched on digits (and a leading +), so "+1 (415) 555" finds "+1415555…". */
const digits = (s: string) => s.replace(/[^\d+]/g, '');

/** Client-side filters over loaded events: substring match on number and IP. */
export function matchesFilters(event: SmsEvent, { number, ip }: TextFilters): boolean {
  const wantNumber = digits(number.trim());
  const wantIp = ip.trim().toLowerCase();
  if (wantNumber && !event.to.includes(wantNumber)) return false;
  if (wantIp && !event.ip.toLowerCase().includes(wantIp)) return false;
  return true;
}

/** What was on screen when the operator pressed pause. */
export interface PauseAnchor {
  /** Newest event time on screen, ms; events at or after it that were not on screen are new. */
  since: number;
  seen: ReadonlySet<string>;
}

export function pauseAnchor(events: SmsEvent[]): PauseAnchor {
  const since = events.reduce((max, e) => Math.max(max, Date.parse(e.at) || 0), Number.NEGATIVE_INFINITY);
  return { since, seen: new Set(events.map((e) => e.id)) };
}

export const arrivedSince = (event: SmsEvent, anchor: PauseAnchor): boolean =>
  !anchor.seen.has(event.id) && (Date.parse(event.at) || 0) >= anchor.since;
