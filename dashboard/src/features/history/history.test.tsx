import { screen, waitFor, within } from '@testing-library/react';
import { http, HttpResponse } from 'msw';

import { makeEvent, makeHistory } from '@/testing/fixtures';
import { renderApp } from '@/testing/render';
import { server } from '@/testing/server';

describe('History', () => {
  it('renders hourly buckets, and daily ones for a chosen range', async () => {
    const requests: URLSearchParams[] = [];
    server.use(
      http.get('/api/history', ({ request }) => {
        const params = new URL(request.url).searchParams;
        requests.push(params);
        return params.get('bucket') === 'day'
          ? HttpResponse.json(
              makeHistory({
                bucket: 'day',
                buckets: [
                  { start: '2026-11-26T00:00:00Z', accepted: 5000, rejected: 300 },
                  { start: '2026-11-27T00:00:00Z', accepted: 4200, rejected: 120 },
                ],
              }),
            )
          : HttpResponse.json(makeHistory());
      }),
    );
    const { user } = renderApp('/history');

    const hourly = await screen.findByRole('table', { name: 'Volumes per hour' });
    expect(within(hourly).getByRole('row', { name: '2026-11-28 06:00 98 11' })).toBeInTheDocument();
    expect(within(hourly).getByRole('row', { name: '2026-11-28 05:00 120 4' })).toBeInTheDocument();
    expect(screen.getByText('218 accepted, 15 rejected in 2 hours.')).toBeInTheDocument();
    expect(requests[0]?.get('bucket')).toBe('hour');
    expect(requests[0]?.get('since')).toMatch(/^\d{4}-\d{2}-\d{2}T00:00:00\.000Z$/);

    await user.selectOptions(screen.getByRole('combobox', { name: 'Per' }), 'day');
    const from = screen.getByLabelText('From');
    const to = screen.getByLabelText('To');
    await user.clear(from);
    await user.type(from, '2026-11-26');
    await user.clear(to);
    await user.type(to, '2026-11-27');

    const daily = await screen.findByRole('table', { name: 'Volumes per day' });
    expect(within(daily).getByRole('row', { name: '2026-11-26 5,000 300' })).toBeInTheDocument();
    const last = requests.at(-1)!;
    expect(last.get('bucket')).toBe('day');
    expect(last.get('since')).toBe('2026-11-26T00:00:00.000Z');
    expect(last.get('until')).toBe('2026-11-28T00:00:00.000Z');
  });

  it('says which days retention no longer holds instead of showing them as quiet', async () => {
    server.use(
      http.get('/api/history', () =>
        HttpResponse.json(
          makeHistory({
            retained_from: { accepted: '2026-11-02T00:00:00Z' },
            not_held: [{ kind: 'accepted', before: '2026-11-02T00:00:00Z' }],
          }),
        ),
      ),
    );
    renderApp('/history');

    const note = await screen.findByRole('note');
    expect(note).toHaveTextContent('No longer held: accepted before 2026-11-02.');
    expect(note).toHaveTextContent('refused requests only a short preview');
  });

  it('lists the full event history of one number', async () => {
    let query: URLSearchParams | undefined;
    const events = [
      makeEvent({ to: '+14155550123', message: 'one' }),
      makeEvent({ to: '+14155550123', message: 'two' }),
      makeEvent({ to: '+14155550123', outcome: 'rejected', message: 'three', retry_after: 12 }),
    ];
    server.use(
      http.get('/api/audit', ({ request }) => {
        query = new URL(request.url).searchParams;
        return HttpResponse.json({ events });
      }),
    );
    const { user } = renderApp('/history');
    const search = await screen.findByRole('search', { name: 'Audit search' });
    await user.type(within(search).getByRole('searchbox', { name: 'Phone number' }), '+14155550123');
    await user.click(within(search).getByRole('button', { name: 'Search' }));

    const trail = await screen.findByRole('table', { name: 'Audit trail for number +14155550123' });
    const rows = within(trail).getAllByRole('row').slice(1);
    expect(rows.map((r) => within(r).getByText(/one|two|three/).textContent)).toEqual(['one', 'two', 'three']);
    expect(within(rows[2]!).getByText('Rejected')).toBeInTheDocument();
    expect(within(rows[2]!).getByText('12 s')).toBeInTheDocument();
    expect(screen.getByText('3 events for number +14155550123, oldest first.')).toBeInTheDocument();
    expect(query?.get('to')).toBe('+14155550123');
    expect(query?.has('ip')).toBe(false);
  });

  it('searches by IP', async () => {
    let query: URLSearchParams | undefined;
    server.use(
      http.get('/api/audit', ({ request }) => {
        query = new URL(request.url).searchParams;
        return HttpResponse.json({ events: [] });
      }),
    );
    const { user } = renderApp('/history');
    const search = await screen.findByRole('search', { name: 'Audit search' });
    await user.selectOptions(within(search).getByRole('combobox', { name: 'Search by' }), 'ip');
    await user.type(within(search).getByRole('searchbox', { name: 'IP address' }), '203.0.113.7{Enter}');
    expect(await screen.findByText('No events for this search.')).toBeInTheDocument();
    await waitFor(() => expect(query?.get('ip')).toBe('203.0.113.7'));
    expect(query?.has('to')).toBe(false);
  });
});
