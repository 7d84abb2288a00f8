import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState, type ReactNode } from 'react';

import { env } from '@/config/env';
import { sessionQueryKey } from '@/features/auth/api/session';
import { applyStatusToDeliveryStats } from '@/features/delivery/api/get-delivery-stats';
import { applyStatusChange } from '@/features/delivery/api/get-message';
import { applyEventToEvents } from '@/features/events/api/get-events';
import { applyEventToStats, applyStatsTick } from '@/features/overview/api/get-stats';
import { LiveContext, type LiveStatus } from '@/hooks/use-live';
import { apiUrl } from '@/lib/api-client';
import type { SmsEvent, StatsTick, StatusChange } from '@/lib/types';

/** After the browser gives up on the stream (e.g. a 401 or 5xx), try again this much later. */
const RECONNECT_MS = 5_000;

function parse<T>(data: unknown): T | null {
  if (typeof data !== 'string') return null;
  try {
    return JSON.parse(data) as T;
  } catch {
    return null;
  }
}

/**
 * The app's one EventSource on `/api/live`. `sms` events go into every cached event list and
 * the per-minute stats; `stats` ticks replace the totals; `status` events (delivery status
 * changes) go into the message they are about and the delivery stats. After a gap (reconnect), the cached
 * lists are refetched so nothing missed in between stays missing.
 */
export function LiveProvider({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const source = new EventSource(apiUrl(env.livePath), { withCredentials: true });
    let retry: number | undefined;
    // A new connection after a failed one may have missed events: refetch once it opens.
    let missedSome = attempt > 0;

    source.onopen = () => {
      setStatus('open');
      if (missedSome) {
        missedSome = false;
        void queryClient.invalidateQueries({ queryKey: ['events'] });
        void queryClient.invalidateQueries({ queryKey: ['stats'] });
        void queryClient.invalidateQueries({ queryKey: ['delivery-stats'] });
        void queryClient.invalidateQueries({ queryKey: ['sms'] });
      }
    };
    source.addEventListener('sms', (e: MessageEvent) => {
      const event = parse<SmsEvent>(e.data);
      if (!event) return;
      applyEventToEvents(queryClient, event);
      applyEventToStats(queryClient, event);
    });
    source.addEventListener('status', (e: MessageEvent) => {
      const change = parse<StatusChange>(e.data);
      if (!change) return;
      applyStatusChange(queryClient, change);
      applyStatusToDeliveryStats(queryClient, change);
    });
    source.addEventListener('stats', (e: MessageEvent) => {
      const tick = parse<StatsTick>(e.data);
      if (tick) applyStatsTick(queryClient, tick);
    });
    source.onerror = () => {
      missedSome = true;
      if (source.readyState === EventSource.CLOSED) {
        // The browser will not retry by itself; a 401 would also end up here, so ask the session.
        setStatus('closed');
        void queryClient.invalidateQueries({ queryKey: sessionQueryKey });
        retry = window.setTimeout(() => setAttempt((n) => n + 1), RECONNECT_MS);
      } else {
        setStatus('reconnecting');
      }
    };

    return () => {
      window.clearTimeout(retry);
      source.close();
    };
  }, [queryClient, attempt]);

  return <LiveContext.Provider value={status}>{children}</LiveContext.Provider>;
}
