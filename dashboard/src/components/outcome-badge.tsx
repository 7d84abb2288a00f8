import type { Outcome } from '@/lib/types';

export function OutcomeBadge({ outcome }: { outcome: Outcome }) {
  return <span className={`badge badge--${outcome}`}>{outcome === 'accepted' ? 'Accepted' : 'Rejected'}</span>;
}
