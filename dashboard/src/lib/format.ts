/** Display helpers. Times arrive as RFC 3339 UTC and are shown in the viewer's local time. */

const numberFormat = new Intl.NumberFormat();

export const formatCount = (n: number): string => numberFormat.format(n);

function pad(n: number): string {
  return n.toString().padStart(2, '0');
}

/** `07:00:03`, local time. */
export function formatClock(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `2026-11-28 07:00:03`, local time. */
export function formatDateTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${formatClock(iso)}`;
}

/** `2026-11-28 07:00` for hourly buckets, `2026-11-28` for daily ones. */
export function formatBucketStart(iso: string, bucket: 'hour' | 'day'): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return bucket === 'day' ? day : `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `45 s`, `2 min 5 s`, `3 h 20 min`, `1 d 2 h` — whole seconds, the way Retry-After is counted. */
export function formatSeconds(total: number): string {
  const s = Math.max(0, Math.round(total));
  if (s < 60) return `${s} s`;
  if (s < 3600) {
    const rest = s % 60;
    return rest ? `${Math.floor(s / 60)} min ${rest} s` : `${s / 60} min`;
  }
  if (s < 86_400) {
    const min = Math.floor((s % 3600) / 60);
    return min ? `${Math.floor(s / 3600)} h ${min} min` : `${Math.floor(s / 3600)} h`;
  }
  const h = Math.floor((s % 86_400) / 3600);
  return h ? `${Math.floor(s / 86_400)} d ${h} h` : `${Math.floor(s / 86_400)} d`;
}

/** `2026-11-28` of a Date in local time, the value format of `<input type="date">`. */
export function toDateInputValue(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local midnight starting the given `YYYY-MM-DD` day, plus `addDays`, as RFC 3339 UTC. */
export function dateInputToIso(value: string, addDays = 0): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) return undefined;
  const d = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + addDays);
  return d.toISOString();
}
