import type { SmsEvent } from '@/lib/types';

/** One API client's requests among a list of events. */
export interface ClientUsage {
  client: string;
  accepted: number;
  rejected: number;
  blocked: number;
  /** Requests that named no end user's IP (`ip_unattributed`). */
  unattributed: number;
}

/**
 * Requests per API client (the Twilio-compatible API's account SID), most requests first;
 * events of `POST /api/sms` (no `api_client`) are left out.
 */
export function usageByClient(events: SmsEvent[]): ClientUsage[] {
  const usage = new Map<string, ClientUsage>();
  for (const event of events) {
    if (!event.api_client) continue;
    const row = usage.get(event.api_client) ?? { client: event.api_client, accepted: 0, rejected: 0, blocked: 0, unattributed: 0 };
    row[event.outcome] += 1;
    if (event.ip_unattributed) row.unattributed += 1;
    usage.set(event.api_client, row);
  }
  const total = (u: ClientUsage) => u.accepted + u.rejected + u.blocked;
  return [...usage.values()].sort((a, b) => total(b) - total(a) || a.client.localeCompare(b.client));
}
