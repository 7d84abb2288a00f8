import { useId, useMemo, useState } from 'react';

import { TimeSeriesChart, type ChartSeries } from '@/components/chart/time-series-chart';
import { ErrorAlert } from '@/components/error-alert';
import { Panel } from '@/components/panel';
import { useHistory } from '@/features/history/api/get-history';
import { dateInputToIso, formatBucketStart, formatCount, toDateInputValue } from '@/lib/format';
import type { HistoryBucketSize, NotHeld } from '@/lib/types';

const DAY_MS = 86_400_000;

/**
 * What the archive keeps, and what of the range shown it no longer holds: old days are dropped
 * per kind (`SMSGATE_RETENTION`), so a short bar may be a dropped day, not a quiet one.
 */
function Retention({ notHeld }: { notHeld: NotHeld[] }) {
  return (
    <p className="muted" role="note">
      Kept: message bodies in the stored form (by default digits runs of 4+ as •; refused requests only a short
      preview); each kind for its retention.
      {notHeld.length > 0 && (
        <>
          {' '}
          No longer held:{' '}
          {notHeld.map((n, i) => (
            <span key={n.kind}>
              {i > 0 && ', '}
              {n.kind} before <time dateTime={n.before}>{formatBucketStart(n.before, 'day')}</time>
            </span>
          ))}
          .
        </>
      )}
    </p>
  );
}

/** Accepted and rejected volumes per hour or per day from the Postgres archive. */
export function Volumes() {
  const [bucket, setBucket] = useState<HistoryBucketSize>('hour');
  const [from, setFrom] = useState(() => toDateInputValue(new Date(Date.now() - DAY_MS)));
  const [to, setTo] = useState(() => toDateInputValue(new Date()));
  const ids = { bucket: useId(), from: useId(), to: useId(), range: useId() };

  const since = dateInputToIso(from);
  const until = dateInputToIso(to, 1);
  const badRange = since !== undefined && until !== undefined && since >= until;
  const history = useHistory({ bucket, since, until });

  const buckets = useMemo(() => history.data?.buckets ?? [], [history.data]);
  const shownBucket = history.data?.bucket ?? bucket;
  const times = useMemo(() => buckets.map((b) => b.start), [buckets]);
  const series = useMemo<ChartSeries[]>(
    () => [
      { label: 'Accepted', colorVar: '--color-accepted', values: buckets.map((b) => b.accepted) },
      { label: 'Rejected', colorVar: '--color-rejected', values: buckets.map((b) => b.rejected) },
    ],
    [buckets],
  );
  const sum = buckets.reduce((acc, b) => ({ accepted: acc.accepted + b.accepted, rejected: acc.rejected + b.rejected }), {
    accepted: 0,
    rejected: 0,
  });
  const label = `Volumes per ${shownBucket}`;

  return (
    <Panel title="Volumes" className="panel--wide">
      <form className="filters" aria-label="Volume range" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor={ids.bucket}>Per</label>
          <select id={ids.bucket} value={bucket} onChange={(e) => setBucket(e.target.value as HistoryBucketSize)}>
            <option value="hour">Hour</option>
            <option value="day">Day</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor={ids.from}>From</label>
          <input id={ids.from} type="date" value={from} max={to} onChange={(e) => setFrom(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={ids.to}>To</label>
          <input
            id={ids.to}
            type="date"
            value={to}
            min={from}
            onChange={(e) => setTo(e.target.value)}
            aria-invalid={badRange || undefined}
            aria-describedby={badRange ? ids.range : undefined}
          />
        </div>
      </form>
      {badRange && (
        <p id={ids.range} className="field__error">
          The end date must not be before the start date.
        </p>
      )}

      {history.isError && <ErrorAlert error={history.error} title="Could not load history" />}
      {history.isPending && !history.isError && (
        <p role="status" className="muted">
          Loading history…
        </p>
      )}
      {history.data && (
        <>
          <Retention notHeld={history.data.not_held ?? []} />
          <p className="muted" role="status">
            {formatCount(sum.accepted)} accepted, {formatCount(sum.rejected)} rejected in {buckets.length}{' '}
            {shownBucket === 'day' ? 'days' : 'hours'}.
          </p>
          <TimeSeriesChart
            title={label}
            times={times}
            series={series}
            kind="bars"
            formatTime={(iso) => formatBucketStart(iso, shownBucket)}
          />
          <div className="table-scroll table-scroll--tall" role="region" aria-label={label} tabIndex={0}>
            <table className="table">
              <caption className="visually-hidden">{label}</caption>
              <thead>
                <tr>
                  <th scope="col">{shownBucket === 'day' ? 'Day' : 'Hour'}</th>
                  <th scope="col" className="num">
                    Accepted
                  </th>
                  <th scope="col" className="num">
                    Rejected
                  </th>
                </tr>
              </thead>
              <tbody>
                {buckets.length === 0 ? (
                  <tr>
                    <td colSpan={3} className="table__empty">
                      Nothing archived in this range.
                    </td>
                  </tr>
                ) : (
                  [...buckets].reverse().map((b) => (
                    <tr key={b.start}>
                      <th scope="row">
                        <time dateTime={b.start}>{formatBucketStart(b.start, shownBucket)}</time>
                      </th>
                      <td className="num">{formatCount(b.accepted)}</td>
                      <td className="num">{formatCount(b.rejected)}</td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
        </>
      )}
    </Panel>
  );
}
