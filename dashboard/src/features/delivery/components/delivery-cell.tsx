import { Link } from 'react-router';

import { messagePath } from '@/config/paths';
import { useMessage } from '@/features/delivery/api/get-message';
import { DeliveryStatusBadge } from '@/features/delivery/components/delivery-status-badge';
import { deliveryLabel } from '@/features/delivery/status';
import type { SmsEvent } from '@/lib/types';

/**
 * The delivery status of one accepted request, linking to its message page. Fetched once per
 * row; `status` SSE events keep it live. Rejected requests are never sent, so they have none.
 */
export function DeliveryCell({ event }: { event: SmsEvent }) {
  const accepted = event.outcome === 'accepted';
  const message = useMessage(event.id, { enabled: accepted });
  if (!accepted) return <span aria-label="not sent">—</span>;
  if (message.isPending) return <span className="muted">…</span>;
  if (message.isError) return <span className="muted">unknown</span>;
  if (!message.data) {
    return (
      <Link to={messagePath(event.id)} className="muted">
        not yet queued
      </Link>
    );
  }
  return (
    <Link to={messagePath(event.id)} aria-label={`${deliveryLabel(message.data.status)}: delivery of message ${event.id}`}>
      <DeliveryStatusBadge status={message.data.status} />
    </Link>
  );
}
