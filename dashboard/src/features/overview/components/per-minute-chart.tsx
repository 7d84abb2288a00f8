import { useMemo } from 'react';

import { TimeSeriesChart, type ChartSeries } from '@/components/chart/time-series-chart';
import { Panel } from '@/components/panel';
import { formatClock } from '@/lib/format';
import type { MinuteBucket } from '@/lib/types';

const formatMinute = (iso: string) => formatClock(iso).slice(0, 5);

export function PerMinuteChart({ buckets }: { buckets: MinuteBucket[] }) {
  const times = useMemo(() => buckets.map((b) => b.minute), [buckets]);
  const series = useMemo<ChartSeries[]>(
    () => [
      { label: 'Accepted', colorVar: '--color-accepted', values: buckets.map((b) => b.accepted) },
      { label: 'Rejected', colorVar: '--color-rejected', values: buckets.map((b) => b.rejected) },
    ],
    [buckets],
  );
  return (
    <Panel title="Requests per minute" className="panel--wide">
      <TimeSeriesChart
        title={`Accepted and rejected per minute, last ${buckets.length} minutes`}
        times={times}
        series={series}
        formatTime={formatMinute}
      />
    </Panel>
  );
}
