import { screen, within } from '@testing-library/react';
import { http, HttpResponse } from 'msw';

import { usageByClient } from '@/features/api-clients/lib/usage';
import { emitLive } from '@/testing/fake-event-source';
import { makeEvent, page } from '@/testing/fixtures';
import { renderApp } from '@/testing/render';
import { server } from '@/testing/server';

const APP = 'AC0123456789abcdef0123456789abcdef';
const OTHER = 'ACfedcba9876543210fedcba9876543210';

describe('usage per API client', () => {
  it('counts each client’s outcomes, busiest first, leaving POST /api/sms out', () => {
    const usage = usageByClient([
      makeEvent({ api_client: OTHER }),
      makeEvent({ api_client: APP, ip_unattributed: true }),
      makeEvent({ api_client: APP, outcome: 'rejected', violated: ['1m'] }),
      makeEvent({ api_client: APP, outcome: 'blocked', reason: 'number-type' }),
      makeEvent({}),
    ]);
    expect(usage).toEqual([
      { client: APP, accepted: 1, rejected: 1, blocked: 1, unattributed: 1 },
      { client: OTHER, accepted: 1, rejected: 0, blocked: 0, unattributed: 0 },
    ]);
  });

  it('shows requests per API client on the overview, counting live events', async () => {
    server.use(http.get('/api/events', () => HttpResponse.json(page([makeEvent({ api_client: APP })]))));
    renderApp('/');
    const table = await screen.findByRole('table', { name: /Requests per API client/ });
    expect(await within(table).findByRole('row', { name: `${APP} 1 0 0 0` })).toBeInTheDocument();
    await emitLive('sms', makeEvent({ api_client: APP, outcome: 'rejected', violated: ['1m'], ip_unattributed: true }));
    expect(await within(table).findByRole('row', { name: `${APP} 1 1 0 1` })).toBeInTheDocument();
  });
});
