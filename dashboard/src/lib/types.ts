/**
 * Wire types of the smsgate operator API, exactly as documented in docs/operator-api.md.
 * All times are RFC 3339 UTC strings.
 */

/** `blocked`: refused by the policy's destinations or client deny list (403), nothing counted. */
export type Outcome = 'accepted' | 'rejected' | 'blocked';

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
  /** Windows of shadow rules that would have refused (absent when none would have). */
  shadow_violated?: string[];
  /** Why a `blocked` event was refused: `destination-country`, `number-type` or `client`. */
  reason?: string;
  /** ISO 3166 alpha-2 of the destination, when known. */
  country?: string;
  /** The policy text in force when it was decided (README, "Policy"), when the API includes it. */
  policy?: string;
  /** The API client (account SID) of a request through the Twilio-compatible API. */
  api_client?: string;
  /** True when `ip` is the API client's own address: it named no end user's IP. */
  ip_unattributed?: boolean;
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
  /** `1m` for the rule `client`, else `rule.1m`. */
  name: string;
  /** The rule the window belongs to (absent from servers before rules). */
  rule?: string;
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

/** Where a message is on its way to the phone (DESIGN.md, "Delivery"). */
export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'delivered' | 'undelivered' | 'failed' | 'expired';

export const DELIVERY_STATUSES: readonly DeliveryStatus[] = [
  'queued',
  'sending',
  'sent',
  'delivered',
  'undelivered',
  'failed',
  'expired',
];

/** Statuses after which nothing changes any more. */
export const FINAL_STATUSES: ReadonlySet<DeliveryStatus> = new Set(['delivered', 'undelivered', 'failed', 'expired']);

export interface DeliveryHistoryEntry {
  status: DeliveryStatus;
  at: string;
  detail: string | null;
}

/** `GET /api/sms/{id}`: a message's delivery, without its body. */
export interface SmsDelivery {
  id: string;
  to: string;
  status: DeliveryStatus;
  provider: string;
  provider_id: string | null;
  attempts: number;
  /** Oldest first. */
  history: DeliveryHistoryEntry[];
}

/** Payload of the `status` SSE event: one status change (the client callback's JSON). */
export interface StatusChange {
  id: string;
  to: string;
  status: DeliveryStatus;
  at: string;
  provider: string;
  provider_id: string | null;
  attempt: number;
  detail: string | null;
}

export type DeliveryCounts = Record<DeliveryStatus, number>;

export interface DeliveryMinute extends DeliveryCounts {
  /** Start of the minute, RFC 3339. */
  minute: string;
}

/** `GET /api/stats/delivery`: status changes per minute; latency and backlog when the server has them. */
export interface DeliveryStats {
  now: string;
  totals: DeliveryCounts;
  /** Oldest first, one entry per minute, zeros included. */
  per_minute: DeliveryMinute[];
  /** Provider call latency in seconds. */
  latency?: { p50: number | null; p99: number | null };
  /** Accepted messages not yet taken on, the age of the oldest, and messages waiting for a retry. */
  backlog?: { entries: number; oldest_seconds: number; scheduled: number };
}
