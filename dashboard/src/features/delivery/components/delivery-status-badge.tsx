import { deliveryLabel, deliveryTone } from '@/features/delivery/status';
import type { DeliveryStatus } from '@/lib/types';

export function DeliveryStatusBadge({ status }: { status: DeliveryStatus }) {
  return <span className={`badge badge--${deliveryTone(status)}`}>{deliveryLabel(status)}</span>;
}
