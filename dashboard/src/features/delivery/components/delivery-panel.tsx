import { useMemo } from 'react';

import { TimeSeriesChart, type ChartSeries } from '@/components/chart/time-series-chart';
import { ErrorAlert } from '@/components/error-alert';
import { Panel } from '@/components/panel';
import { useDeliveryStats } from '@/features/delivery/api/get-delivery-stats';
import { formatClock, formatCount, formatSeconds } from '@/lib/format';
import type { DeliveryStats } from '@/lib/types';

const formatMinute = (iso: string) => formatClock(iso).slice(0, 5);

function formatLatency(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

function Figures({ stats }: { stats: DeliveryStats }) {
  const { totals, latency, backlog } = stats;
  const failed = totals.failed + totals.undelivered + totals.expired;
  return (
    <dl className="figures" aria-label={`Delivery, last ${stats.per_minute.length} minutes`}>
      <div>
        <dt>Sent</dt>
        <dd>{formatCount(totals.sent)}</dd>
      </div>
      <div>
        <dt>Delivered</dt>
        <dd>{formatCount(totals.delivered)}</dd>
      </div>
      <div>
        <dt>Failed</dt>
        <dd title="failed, undelivered or expired">{formatCount(failed)}</dd>
      </div>
      <div>
        <dt>Provider latency p50 / p99</dt>
        <dd>
          {formatLatency(latency.p50)} / {formatLatency(latency.p99)}
        </dd>
      </div>
      <div>
        <dt>Backlog</dt>
        <dd>
          {`${formatCount(backlog.entries + backlog.scheduled)}${backlog.entries > 0 ? `, oldest ${formatSeconds(Math.round(backlog.oldest_seconds))}` : ''}`}
        </dd>
      </div>
    </dl>
  );
}

/** Sent / delivered / failed per minute, provider latency and the backlog; live over SSE. */
export function DeliveryPanel() {
  const stats = useDeliveryStats();
  const buckets = stats.data?.per_minute;
  const times = useMemo(() => (buckets ?? []).map((b) => b.minute), [buckets]);
  const series = useMemo<ChartSeries[]>(
    () => [
      { label: 'Sent', colorVar: '--color-pending', values: (buckets ?? []).map((b) => b.sent) },
      { label: 'Delivered', colorVar: '--color-accepted', values: (buckets ?? []).map((b) => b.delivered) },
      {
        label: 'Failed',
        colorVar: '--color-rejected',
        values: (buckets ?? []).map((b) => b.failed + b.undelivered + b.expired),
      },
    ],
    [buckets],
  );
  return (
    <Panel title="Delivery" className="panel--wide">
      {stats.isPending && (
        <p role="status" className="muted">
          Loading delivery…
        </p>
      )}
      {stats.isError && <ErrorAlert error={stats.error} title="Could not load delivery stats" />}
      {stats.data && (
        <>
          <Figures stats={stats.data} />
          <TimeSeriesChart
            title={`Sent, delivered and failed per minute, last ${stats.data.per_minute.length} minutes`}
            times={times}
            series={series}
            formatTime={formatMinute}
          />
        </>
      )}
    </Panel>
  );
}
