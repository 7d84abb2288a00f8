import type {
  DeliveryCounts,
  DeliveryStats,
  EventsPage,
  History,
  SmsDelivery,
  SmsEvent,
  Stats,
  StatusChange,
  Totals,
} from '@/lib/types';

let seq = 0;

/** An event; every call gets a fresh id and stream id, one second after the last. */
export function makeEvent(overrides: Partial<SmsEvent> = {}): SmsEvent {
  seq += 1;
  const at = new Date(Date.UTC(2026, 10, 28, 7, 0, 0) + seq * 1000).toISOString();
  const rejected = overrides.outcome === 'rejected';
  return {
    id: `0193a000-0000-7000-8000-${seq.toString().padStart(12, '0')}`,
    stream_id: `${Date.parse(at)}-0`,
    at,
    ip: '203.0.113.7',
    to: '+14155550123',
    from: null,
    message: 'hello',
    segments: 1,
    outcome: 'accepted',
    violated: rejected ? ['1m'] : [],
    retry_after: rejected ? 37 : 0,
    ...overrides,
  };
}

export function makeTotals(overrides: Partial<Totals> = {}): Totals {
  return {
    last_minute: { accepted: 3, rejected: 1 },
    last_hour: { accepted: 42, rejected: 7 },
    today: { accepted: 1234, rejected: 56 },
    ...overrides,
  };
}

/** Stats whose last minute is 07:59 on 2026-11-28, 60 minutes of buckets. */
export function makeStats(overrides: Partial<Stats> = {}): Stats {
  const end = Date.UTC(2026, 10, 28, 7, 59, 0);
  const per_minute = Array.from({ length: 60 }, (_, i) => ({
    minute: new Date(end - (59 - i) * 60_000).toISOString().replace('.000Z', 'Z'),
    accepted: i === 59 ? 3 : 0,
    rejected: i === 59 ? 1 : 0,
  }));
  return {
    now: '2026-11-28T07:59:30Z',
    policy: [
      { name: '1m', limit: 3, window_seconds: 60 },
      { name: '1d', limit: 10, window_seconds: 86_400 },
    ],
    totals: makeTotals(),
    per_minute,
    top_clients: [{ ip: '198.51.100.23', to: '+447700900123', rejections: 12 }],
    top_numbers: [{ to: '+447700900123', rejections: 12 }],
    ...overrides,
  };
}

export const page = (events: SmsEvent[], next_before: string | null = null): EventsPage => ({ events, next_before });

export function makeHistory(overrides: Partial<History> = {}): History {
  return {
    bucket: 'hour',
    buckets: [
      { start: '2026-11-28T05:00:00Z', accepted: 120, rejected: 4 },
      { start: '2026-11-28T06:00:00Z', accepted: 98, rejected: 11 },
    ],
    retained_from: {},
    not_held: [],
    ...overrides,
  };
}

const zeroCounts = (): DeliveryCounts => ({
  queued: 0,
  sending: 0,
  sent: 0,
  delivered: 0,
  undelivered: 0,
  failed: 0,
  expired: 0,
});

/** Delivery stats over the same 60 minutes as {@link makeStats}: a little traffic in the last one. */
export function makeDeliveryStats(overrides: Partial<DeliveryStats> = {}): DeliveryStats {
  const end = Date.UTC(2026, 10, 28, 7, 59, 0);
  const last = { ...zeroCounts(), queued: 3, sending: 3, sent: 3, delivered: 2, failed: 1 };
  const per_minute = Array.from({ length: 60 }, (_, i) => ({
    minute: new Date(end - (59 - i) * 60_000).toISOString().replace('.000Z', 'Z'),
    ...(i === 59 ? last : zeroCounts()),
  }));
  return {
    now: '2026-11-28T07:59:30Z',
    totals: { ...last },
    per_minute,
    latency: { p50: 0.05, p99: 0.2, calls: 3 },
    backlog: { entries: 0, oldest_seconds: 0, scheduled: 0 },
    ...overrides,
  };
}

/** A message the log provider delivered at once (queued → sending → sent → delivered). */
export function makeMessage(id: string, overrides: Partial<SmsDelivery> = {}): SmsDelivery {
  return {
    id,
    to: '+14155550123',
    status: 'delivered',
    provider: 'log',
    provider_id: `log-${id.slice(-4)}`,
    attempts: 1,
    history: [
      { status: 'queued', at: '2026-11-28T07:59:01.000100Z', detail: null },
      { status: 'sending', at: '2026-11-28T07:59:01.000200Z', detail: null },
      { status: 'sent', at: '2026-11-28T07:59:01.000300Z', detail: null },
      { status: 'delivered', at: '2026-11-28T07:59:01.000400Z', detail: null },
    ],
    ...overrides,
  };
}

/** One `status` SSE event for message `id`. */
export function makeStatusChange(id: string, overrides: Partial<StatusChange> = {}): StatusChange {
  return {
    id,
    to: '+14155550123',
    status: 'sent',
    at: '2026-11-28T07:59:10Z',
    provider: 'twilio',
    provider_id: 'SM0123456789abcdef0123456789abcdef',
    attempt: 1,
    detail: null,
    ...overrides,
  };
}
