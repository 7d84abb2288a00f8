import { useId, useMemo } from 'react';

import { UPlotCanvas, type CanvasSeries } from '@/components/chart/uplot-canvas';

export type ChartSeries = CanvasSeries;

/**
 * A time series chart with the same numbers in a visually hidden table, so the figure means
 * something to screen readers (and tests) as well as on screen.
 */
export function TimeSeriesChart({
  title,
  times,
  series,
  kind = 'line',
  height = 220,
  formatTime,
}: {
  title: string;
  /** RFC 3339, ascending; one per value of every series. */
  times: string[];
  series: ChartSeries[];
  kind?: 'line' | 'bars';
  height?: number;
  formatTime: (iso: string) => string;
}) {
  const captionId = useId();
  const x = useMemo(() => times.map((t) => Date.parse(t) / 1000), [times]);

  return (
    <figure className="chart" aria-labelledby={captionId}>
      <figcaption id={captionId} className="chart__caption">
        {title}
      </figcaption>
      <div aria-hidden="true">
        <UPlotCanvas x={x} series={series} kind={kind} height={height} />
      </div>
      {/* A table ignores the 1px box of .visually-hidden, so the wrapper carries it. */}
      <div className="visually-hidden">
        <table>
          <caption>{`${title} (chart data)`}</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              {series.map((s) => (
                <th key={s.label} scope="col">
                  {s.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {times.map((t, i) => (
              <tr key={t}>
                <th scope="row">{formatTime(t)}</th>
                {series.map((s) => (
                  <td key={s.label}>{s.values[i] ?? 0}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </figure>
  );
}
