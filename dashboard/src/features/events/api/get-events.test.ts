import { withLiveEvent, type EventsData } from '@/features/events/api/get-events';
import { makeEvent, page } from '@/testing/fixtures';

describe('withLiveEvent', () => {
  const [e1, e2, e3, e4] = [makeEvent(), makeEvent(), makeEvent(), makeEvent()];
  const data = (...pages: ReturnType<typeof page>[]): EventsData => ({ pages, pageParams: pages.map((_, i) => (i ? `p${i}` : null)) });

  it('prepends to the first page', () => {
    const next = withLiveEvent(data(page([e2, e1], 'c1')), e3);
    expect(next.pages[0]!.events).toEqual([e3, e2, e1]);
    expect(next.pages[0]!.next_before).toBe('c1');
  });

  it('ignores an event it already has', () => {
    const before = data(page([e2], 'c1'), page([e1], null));
    expect(withLiveEvent(before, e1)).toBe(before);
  });

  it('drops the oldest over the cap and pages on from the last one kept', () => {
    const next = withLiveEvent(data(page([e3, e2], 'c1'), page([e1], null)), e4, 3);
    expect(next.pages).toHaveLength(1);
    expect(next.pages[0]!.events).toEqual([e4, e3, e2]);
    expect(next.pages[0]!.next_before).toBe(e2.stream_id);
    expect(next.pageParams).toEqual([null]);
  });
});
