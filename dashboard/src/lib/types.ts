/**
 * Wire types of the smsgate operator API, exactly as documented in docs/operator-api.md.
 * All times are RFC 3339 UTC strings.
 */

export type Outcome = 'accepted' | 'rejected';

/** One decision of the limiter, as recorded on the event stream. */
export interface SmsEvent {
  id: string;
  stream_id: string;
  at: string;
  ip: string;
  to: string;
  from: string | null;
  message: string;
  segments: number;
  outcome: Outcome;
  /** Names of the violated windows; empty for accepted events. */
  violated: string[];
  /** Whole seconds; 0 for accepted events. */
  retry_after: number;
}

export interface OutcomeCounts {
  accepted: number;
  rejected: number;
}

export interface Totals {
  last_minute: OutcomeCounts;
  last_hour: OutcomeCounts;
  today: OutcomeCounts;
}

export interface PolicyWindow {
  name: string;
  limit: number;
  window_seconds: number;
}

export interface MinuteBucket extends OutcomeCounts {
  /** Start of the minute, RFC 3339. */
  minute: string;
}

export interface TopClient {
  ip: string;
  to: string;
  rejections: number;
}

export interface TopNumber {
  to: string;
  rejections: number;
}

export interface Stats {
  now: string;
  policy: PolicyWindow[];
  totals: Totals;
  /** Oldest first, one entry per minute, zeros included. */
  per_minute: MinuteBucket[];
  top_clients: TopClient[];
  top_numbers: TopNumber[];
}

/** Payload of the `stats` SSE event, sent once a second. */
export interface StatsTick {
  now: string;
  totals: Totals;
}

export interface EventsPage {
  /** Newest first. */
  events: SmsEvent[];
  next_before: string | null;
}

export interface LimitState {
  name: string;
  limit: number;
  remaining: number;
  reset_after: number;
}

export interface ViolatedWindow {
  name: string;
  limit: number;
  window: number;
  retry_after: number;
}

export interface SmsAccepted {
  id: string;
  status: 'accepted';
  to: string;
  segments: number;
  limits: LimitState[];
}

export interface Session {
  auth_required: boolean;
  authenticated: boolean;
}

export type HistoryBucketSize = 'hour' | 'day';

export interface HistoryBucket extends OutcomeCounts {
  start: string;
}

export interface History {
  bucket: HistoryBucketSize;
  /** Oldest first. */
  buckets: HistoryBucket[];
}

export interface AuditResult {
  /** Oldest first. */
  events: SmsEvent[];
}

export interface ClientWindow {
  name: string;
  limit: number;
  used: number;
  remaining: number;
  frees_in: number;
}

export interface ClientState {
  ip: string;
  to: string;
  windows: ClientWindow[];
}
