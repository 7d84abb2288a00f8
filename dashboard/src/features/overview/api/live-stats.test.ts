import { slideMinutes, withEvent, withTick } from '@/features/overview/api/live-stats';
import { makeEvent, makeStats, makeTotals } from '@/testing/fixtures';

const minutes = (buckets: { minute: string }[]) => buckets.map((b) => b.minute.slice(11, 16));

describe('live stats', () => {
  const buckets = [
    { minute: '2026-11-28T07:57:00Z', accepted: 1, rejected: 0 },
    { minute: '2026-11-28T07:58:00Z', accepted: 2, rejected: 0 },
    { minute: '2026-11-28T07:59:00Z', accepted: 3, rejected: 1 },
  ];

  it('keeps the window when now is inside its newest minute', () => {
    expect(slideMinutes(buckets, Date.parse('2026-11-28T07:59:59Z'))).toBe(buckets);
  });

  it('slides forward by whole minutes, keeping the length and adding zeros', () => {
    const slid = slideMinutes(buckets, Date.parse('2026-11-28T08:01:10Z'));
    expect(minutes(slid)).toEqual(['07:59', '08:00', '08:01']);
    expect(slid[0]).toEqual(buckets[2]);
    expect(slid[2]).toEqual({ minute: '2026-11-28T08:01:00Z', accepted: 0, rejected: 0 });
  });

  it('starts over with zeros after a gap longer than the window', () => {
    const slid = slideMinutes(buckets, Date.parse('2026-11-28T09:00:00Z'));
    expect(minutes(slid)).toEqual(['08:58', '08:59', '09:00']);
    expect(slid.every((b) => b.accepted === 0 && b.rejected === 0)).toBe(true);
  });

  it('counts an event into its minute and rejected ones into the top lists', () => {
    const stats = makeStats({ per_minute: buckets, top_clients: [], top_numbers: [{ to: '+1', rejections: 1 }] });
    const next = withEvent(stats, makeEvent({ outcome: 'rejected', at: '2026-11-28T07:58:30.5Z', to: '+2', ip: '192.0.2.1' }));
    expect(next.per_minute[1]).toEqual({ minute: '2026-11-28T07:58:00Z', accepted: 2, rejected: 1 });
    expect(next.top_clients).toEqual([{ ip: '192.0.2.1', to: '+2', rejections: 1 }]);
    const again = withEvent(next, makeEvent({ outcome: 'rejected', at: '2026-11-28T07:59:30Z', to: '+2', ip: '192.0.2.1' }));
    expect(again.top_numbers).toEqual([
      { to: '+2', rejections: 2 },
      { to: '+1', rejections: 1 },
    ]);
    expect(again.totals).toBe(stats.totals);
  });

  it('slides the window for an event in a newer minute', () => {
    const next = withEvent(makeStats({ per_minute: buckets }), makeEvent({ at: '2026-11-28T08:00:05Z' }));
    expect(minutes(next.per_minute)).toEqual(['07:58', '07:59', '08:00']);
    expect(next.per_minute[2]).toEqual({ minute: '2026-11-28T08:00:00Z', accepted: 1, rejected: 0 });
  });

  it('ignores events older than the window', () => {
    const stats = makeStats({ per_minute: buckets });
    expect(withEvent(stats, makeEvent({ at: '2026-11-28T06:00:00Z' })).per_minute).toEqual(buckets);
  });

  it('takes totals from a tick and slides to its now', () => {
    const totals = makeTotals({ today: { accepted: 9, rejected: 9 } });
    const next = withTick(makeStats({ per_minute: buckets }), { now: '2026-11-28T08:00:00.5Z', totals });
    expect(next.totals).toBe(totals);
    expect(next.now).toBe('2026-11-28T08:00:00.5Z');
    expect(minutes(next.per_minute)).toEqual(['07:58', '07:59', '08:00']);
  });
});
