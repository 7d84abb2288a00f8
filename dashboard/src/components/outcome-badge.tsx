import type { Outcome } from '@/lib/types';

const LABELS: Record<Outcome, string> = { accepted: 'Accepted', rejected: 'Rejected', blocked: 'Blocked' };

export function OutcomeBadge({ outcome }: { outcome: Outcome }) {
  return <span className={`badge badge--${outcome}`}>{LABELS[outcome]}</span>;
}
