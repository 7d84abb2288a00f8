import { formatClock, formatDateTime } from '@/lib/format';

/** A timestamp: short local clock (or full date) on screen, the exact instant in `dateTime` and the tooltip. */
export function Time({ at, full = false }: { at: string; full?: boolean }) {
  return (
    <time dateTime={at} title={formatDateTime(at)}>
      {full ? formatDateTime(at) : formatClock(at)}
    </time>
  );
}
