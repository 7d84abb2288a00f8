import type { ReactNode } from 'react';

import { OutcomeBadge } from '@/components/outcome-badge';
import { Time } from '@/components/time';
import { DeliveryCell } from '@/features/delivery/components/delivery-cell';
import { formatSeconds } from '@/lib/format';
import type { SmsEvent } from '@/lib/types';

export type EventColumn =
  | 'time'
  | 'outcome'
  | 'delivery'
  | 'ip'
  | 'api_client'
  | 'to'
  | 'from'
  | 'message'
  | 'segments'
  | 'violated'
  | 'retry_after';

const HEADERS: Record<EventColumn, string> = {
  time: 'Time',
  outcome: 'Outcome',
  delivery: 'Delivery',
  ip: 'IP',
  api_client: 'API client',
  to: 'Number',
  from: 'From',
  message: 'Message',
  segments: 'Segments',
  violated: 'Violated window',
  retry_after: 'Retry after',
};

function cell(event: SmsEvent, column: EventColumn, fullTime: boolean): ReactNode {
  switch (column) {
    case 'time':
      return <Time at={event.at} full={fullTime} />;
    case 'outcome':
      return <OutcomeBadge outcome={event.outcome} />;
    case 'delivery':
      return <DeliveryCell event={event} />;
    case 'ip':
      return event.ip_unattributed ? (
        <span className="mono" title="The API client's own address: it named no end user's IP">
          {event.ip} (client)
        </span>
      ) : (
        <span className="mono">{event.ip}</span>
      );
    case 'api_client':
      return event.api_client ? <span className="mono">{event.api_client}</span> : '—';
    case 'to':
      return <span className="mono">{event.to}</span>;
    case 'from':
      return event.from ?? '—';
    case 'message':
      return (
        <span className="truncate" title={event.message}>
          {event.message}
        </span>
      );
    case 'segments':
      return event.segments;
    case 'violated':
      return event.violated.length ? event.violated.join(', ') : '—';
    case 'retry_after':
      return event.outcome === 'rejected' ? formatSeconds(event.retry_after) : '—';
  }
}

const NUMERIC: ReadonlySet<EventColumn> = new Set(['segments', 'retry_after']);

/** Events as a table. Scrolls sideways on narrow screens; the scroller is keyboard-focusable. */
export function EventsTable({
  label,
  events,
  columns,
  fullTime = false,
  empty = 'No events yet.',
}: {
  label: string;
  events: SmsEvent[];
  columns: EventColumn[];
  fullTime?: boolean;
  empty?: string;
}) {
  return (
    <div className="table-scroll" role="region" aria-label={label} tabIndex={0}>
      <table className="table">
        <caption className="visually-hidden">{label}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c} scope="col" className={NUMERIC.has(c) ? 'num' : undefined}>
                {HEADERS[c]}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {events.length === 0 ? (
            <tr>
              <td colSpan={columns.length} className="table__empty">
                {empty}
              </td>
            </tr>
          ) : (
            events.map((event) => (
              <tr key={event.id} className={event.outcome === 'rejected' ? 'row--rejected' : undefined}>
                {columns.map((c) => (
                  <td key={c} className={NUMERIC.has(c) ? 'num' : undefined}>
                    {cell(event, c, fullTime)}
                  </td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}
