import type { DeliveryStatus } from '@/lib/types';

const LABELS: Record<DeliveryStatus, string> = {
  queued: 'Queued',
  sending: 'Sending',
  sent: 'Sent',
  delivered: 'Delivered',
  undelivered: 'Undelivered',
  failed: 'Failed',
  expired: 'Expired',
};

/** Good news green, bad news red, on the way neutral: the colour only repeats the word. */
const TONE: Record<DeliveryStatus, 'accepted' | 'rejected' | 'pending'> = {
  queued: 'pending',
  sending: 'pending',
  sent: 'pending',
  delivered: 'accepted',
  undelivered: 'rejected',
  failed: 'rejected',
  expired: 'rejected',
};

export const deliveryLabel = (status: DeliveryStatus): string => LABELS[status];
export const deliveryTone = (status: DeliveryStatus): 'accepted' | 'rejected' | 'pending' => TONE[status];
