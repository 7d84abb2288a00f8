import { screen, waitFor, within } from '@testing-library/react';
import { http, HttpResponse } from 'msw';

import { emitLive } from '@/testing/fake-event-source';
import { makeEvent, makeStats, makeTotals, page } from '@/testing/fixtures';
import { renderApp } from '@/testing/render';
import { server } from '@/testing/server';

function counter(name: string) {
  return within(screen.getByRole('region', { name }));
}

describe('Overview', () => {
  it('shows the last known stats and violations at once', async () => {
    const violation = makeEvent({ outcome: 'rejected', ip: '192.0.2.10', to: '+14155550999', retry_after: 42 });
    const queries: string[] = [];
    server.use(
      http.get('/api/events', ({ request }) => {
        queries.push(new URL(request.url).search);
        return HttpResponse.json(page([violation]));
      }),
    );

    renderApp('/');

    expect(await screen.findByRole('heading', { level: 1, name: 'Overview' })).toBeInTheDocument();
    await waitFor(() => expect(counter('Last minute').getByText('3')).toBeInTheDocument());
    expect(counter('Last hour').getByText('42')).toBeInTheDocument();
    expect(counter('Today').getByText('1,234')).toBeInTheDocument();
    expect(counter('Today').getByText('56')).toBeInTheDocument();

    const violations = await screen.findByRole('table', { name: 'Recent rate-limit violations' });
    const row = await within(violations).findByRole('row', { name: /\+14155550999/ });
    expect(within(row).getByText('192.0.2.10')).toBeInTheDocument();
    expect(within(row).getByText('1m')).toBeInTheDocument();
    expect(within(row).getByText('42 s')).toBeInTheDocument();
    expect(queries.some((q) => q.includes('outcome=rejected'))).toBe(true);

    const clients = screen.getByRole('table', { name: 'Top offending clients, last hour' });
    expect(within(clients).getByRole('row', { name: /198\.51\.100\.23 \+447700900123 12/ })).toBeInTheDocument();
    const numbers = screen.getByRole('table', { name: 'Top offending numbers, last hour' });
    expect(within(numbers).getByRole('row', { name: '+447700900123 12' })).toBeInTheDocument();
    expect(screen.getByText(/Policy: 3 per 1m, 10 per 1d/)).toBeInTheDocument();
  });

  it('updates violations, offenders, chart and counters from SSE without refetching', async () => {
    let statsFetches = 0;
    let eventsFetches = 0;
    server.use(
      http.get('/api/stats', () => {
        statsFetches += 1;
        return HttpResponse.json(makeStats());
      }),
      http.get('/api/events', () => {
        eventsFetches += 1;
        return HttpResponse.json(page([]));
      }),
    );
    renderApp('/');
    const violations = await screen.findByRole('table', { name: 'Recent rate-limit violations' });
    await within(violations).findByText('No violations yet.');
    const chart = screen.getByRole('table', { name: /Accepted and rejected per minute.*chart data/ });
    expect(within(chart).getByRole('row', { name: '07:59 3 1' })).toBeInTheDocument();

    await emitLive(
      'sms',
      makeEvent({ outcome: 'rejected', at: '2026-11-28T07:59:40.123456Z', ip: '203.0.113.99', to: '+15005550006', violated: ['1m', '1d'], retry_after: 19 }),
    );

    const row = within(violations).getByRole('row', { name: /\+15005550006/ });
    expect(within(row).getByText('203.0.113.99')).toBeInTheDocument();
    expect(within(row).getByText('1m, 1d')).toBeInTheDocument();
    expect(within(row).getByText('19 s')).toBeInTheDocument();
    expect(within(chart).getByRole('row', { name: '07:59 3 2' })).toBeInTheDocument();
    const numbers = screen.getByRole('table', { name: 'Top offending numbers, last hour' });
    expect(within(numbers).getByRole('row', { name: '+15005550006 1' })).toBeInTheDocument();

    // An accepted event in the next minute slides the chart forward by one bucket.
    await emitLive('sms', makeEvent({ outcome: 'accepted', at: '2026-11-28T08:00:05Z' }));
    expect(within(chart).getByRole('row', { name: '08:00 1 0' })).toBeInTheDocument();
    expect(within(chart).queryByRole('row', { name: /^07:00 / })).not.toBeInTheDocument();
    expect(within(violations).getAllByRole('row')).toHaveLength(2);

    await emitLive('stats', {
      now: '2026-11-28T08:00:06Z',
      totals: makeTotals({ last_minute: { accepted: 17, rejected: 5 } }),
    });
    expect(counter('Last minute').getByText('17')).toBeInTheDocument();
    expect(counter('Last minute').getByText('5')).toBeInTheDocument();

    expect(statsFetches).toBe(1);
    // One fetch per list the page shows (violations; every outcome for the policy panels).
    expect(eventsFetches).toBe(2);
  });

  it('shows the quota of a top offender on request', async () => {
    server.use(
      http.get('/api/clients/:ip/:to', ({ params }) =>
        HttpResponse.json({
          ip: params.ip,
          to: params.to,
          windows: [{ name: '1m', limit: 3, used: 3, remaining: 0, frees_in: 21 }],
        }),
      ),
    );
    const { user } = renderApp('/');
    await user.click(await screen.findByRole('button', { name: 'Show quota of 198.51.100.23 → +447700900123' }));
    const quota = await screen.findByRole('list', { name: 'Quota of 198.51.100.23 → +447700900123' });
    expect(quota).toHaveTextContent('1m: 3/3 used, 0 left, frees in 21 s');
  });
});
