/**
 * Wire types of the smsgate API, named as the dashboard uses them. Every shape comes from
 * api.gen.ts, which `npm run api-types` generates from the server's own OpenAPI document
 * (`smsgate openapi`, generated from the handlers): none is written by hand, so none can drift.
 * All times are RFC 3339 UTC strings.
 */
import type { components } from './api.gen';

type Schemas = components['schemas'];

export type Outcome = Schemas['Outcome'];
/** One decision of the limiter, as recorded on the event stream. */
export type SmsEvent = Schemas['Event'];
export type OutcomeCounts = Schemas['Counts'];
export type Totals = Schemas['Totals'];
export type PolicyWindow = Schemas['PolicyWindow'];
export type MinuteBucket = Schemas['MinuteBucket'];
export type TopClient = Schemas['TopClient'];
export type TopNumber = Schemas['TopNumber'];
export type Stats = Schemas['Stats'];
/** Payload of the `stats` SSE event, sent once a second. */
export type StatsTick = Schemas['StatsTick'];
export type EventsPage = Schemas['EventPage'];
export type LimitState = Schemas['LimitState'];
export type SmsAccepted = Schemas['Accepted'];
export type Session = Schemas['Session'];
export type HistoryBucket = Schemas['HistoryBucket'];
export type History = Schemas['History'];
export type HistoryBucketSize = Schemas['HistoryBucketSize'];
export type AuditResult = Schemas['Audit'];
export type ClientWindow = Schemas['ClientWindow'];
export type ClientState = Schemas['ClientUsage'];
export type Problem = Schemas['Problem'];
/** The 429 of `POST /api/sms`: a problem with the decision beside the standard members. */
export type RateLimitedProblem = Schemas['RateLimited'];
export type ViolatedWindow = Schemas['ViolatedWindow'];
/** How an event keeps the SMS body; absent on events recorded before smsgate said (full). */
export type MessageStored = Schemas['MessageStored'];
/** What the archive keeps apart (`SMSGATE_RETENTION`); `delivery` is the status changes. */
export type RetentionKind = Schemas['RetentionKind'];
/** A range an answer reaches into that retention dropped: `kind` before `before`. */
export type NotHeld = Schemas['NotHeld'];

/** Where a message is on its way to the phone (DESIGN.md, "Delivery"). */
export type DeliveryStatus = Schemas['DeliveryStatus'];

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

export type DeliveryHistoryEntry = Schemas['DeliveryHistoryEntry'];
/** `GET /api/sms/{id}`: a message's delivery, without its body. */
export type SmsDelivery = Schemas['Message'];
/** Payload of the `status` SSE event: one status change (the client callback's JSON). */
export type StatusChange = Schemas['StatusChange'];
export type DeliveryCounts = Schemas['DeliveryCounts'];
export type DeliveryMinute = Schemas['DeliveryMinute'];
/** `GET /api/stats/delivery`: status changes per minute and the dispatcher's backlog. */
export type DeliveryStats = Schemas['DeliveryStats'];
