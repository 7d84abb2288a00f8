import { formatCount } from '@/lib/format';
import type { OutcomeCounts, Totals } from '@/lib/types';

const PERIODS: { key: keyof Totals; label: string }[] = [
  { key: 'last_minute', label: 'Last minute' },
  { key: 'last_hour', label: 'Last hour' },
  { key: 'today', label: 'Today' },
];

function Counter({ label, counts }: { label: string; counts: OutcomeCounts }) {
  const id = `totals-${label.toLowerCase().replace(/\s+/g, '-')}`;
  return (
    <section className="card counter" aria-labelledby={id}>
      <h2 id={id} className="counter__title">
        {label}
      </h2>
      <dl className="counter__values">
        <div className="counter__value counter__value--accepted">
          <dt>Accepted</dt>
          <dd>{formatCount(counts.accepted)}</dd>
        </div>
        <div className="counter__value counter__value--rejected">
          <dt>Rejected</dt>
          <dd>{formatCount(counts.rejected)}</dd>
        </div>
      </dl>
    </section>
  );
}

/** Accepted vs rejected for the last minute, the last hour and today; live from `stats` ticks. */
export function TotalsCards({ totals }: { totals: Totals }) {
  return (
    <div className="counters">
      {PERIODS.map(({ key, label }) => (
        <Counter key={key} label={label} counts={totals[key]} />
      ))}
    </div>
  );
}
