import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import { useTheme } from '@/hooks/use-theme';

export interface CanvasSeries {
  label: string;
  /** A CSS custom property holding a hex colour, e.g. `--color-accepted`. */
  colorVar: string;
  values: number[];
}

export interface UPlotCanvasProps {
  /** Unix seconds, ascending. */
  x: number[];
  series: CanvasSeries[];
  kind: 'line' | 'bars';
  height: number;
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/**
 * The uPlot canvas. Rebuilt when the theme or the series change (colours are read from CSS
 * variables at build time); new data is pushed with `setData`, which is cheap enough to run on
 * every live event.
 */
export function UPlotCanvas({ x, series, kind, height }: UPlotCanvasProps) {
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useRef<uPlot.AlignedData>([x, ...series.map((s) => s.values)]);
  const { theme } = useTheme();
  const shape = series.map((s) => `${s.label}:${s.colorVar}`).join('|');

  useEffect(() => {
    const el = container.current;
    if (!el) return undefined;
    const axis = cssVar('--chart-axis', '#666666');
    const grid = cssVar('--chart-grid', '#dddddd');
    const bars = kind === 'bars' ? uPlot.paths.bars?.({ size: [0.7, 40] }) : undefined;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max, 3)] } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, size: 44 },
      ],
      series: [
        {},
        ...shape.split('|').map((entry) => {
          const [label = '', colorVar = ''] = entry.split(':');
          const color = cssVar(colorVar, '#888888');
          return {
            label,
            stroke: color,
            fill: `${color}33`,
            width: 2,
            points: { show: false },
            ...(bars ? { paths: bars } : {}),
          };
        }),
      ],
    };
    const chart = new uPlot(opts, data.current, el);
    plot.current = chart;
    const observer = new ResizeObserver(() => {
      chart.setSize({ width: Math.max(el.clientWidth, 200), height });
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, [theme, shape, kind, height]);

  useEffect(() => {
    data.current = [x, ...series.map((s) => s.values)];
    plot.current?.setData(data.current);
  }, [x, series]);

  return <div ref={container} className="chart__canvas" />;
}
