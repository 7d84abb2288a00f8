import { dateInputToIso, formatBucketStart, formatClock, formatSeconds } from '@/lib/format';

describe('format', () => {
  it.each([
    [0, '0 s'],
    [37, '37 s'],
    [60, '1 min'],
    [125, '2 min 5 s'],
    [3600, '1 h'],
    [12_000, '3 h 20 min'],
    [86_400, '1 d'],
    [93_600, '1 d 2 h'],
  ])('formats %i seconds as %s', (seconds, text) => {
    expect(formatSeconds(seconds)).toBe(text);
  });

  it('shows times in local time (UTC in tests), microseconds and all', () => {
    expect(formatClock('2026-11-28T07:00:03.123456Z')).toBe('07:00:03');
    expect(formatBucketStart('2026-11-28T07:00:00Z', 'hour')).toBe('2026-11-28 07:00');
    expect(formatBucketStart('2026-11-28T00:00:00Z', 'day')).toBe('2026-11-28');
  });

  it('turns a date input into the start of that local day', () => {
    expect(dateInputToIso('2026-11-28')).toBe('2026-11-28T00:00:00.000Z');
    expect(dateInputToIso('2026-11-30', 1)).toBe('2026-12-01T00:00:00.000Z');
    expect(dateInputToIso('')).toBeUndefined();
  });
});
