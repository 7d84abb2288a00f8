import { screen, waitFor, within } from '@testing-library/react';
import { http, HttpResponse } from 'msw';

import { emitLive } from '@/testing/fake-event-source';
import { makeEvent, page } from '@/testing/fixtures';
import { renderApp } from '@/testing/render';
import { server } from '@/testing/server';

const log = () => screen.getByRole('table', { name: 'Live log' });
const rows = () => within(log()).getAllByRole('row').slice(1);

describe('Live log', () => {
  const a1 = makeEvent({ ip: '203.0.113.7', to: '+14155550123', message: 'first' });
  const r1 = makeEvent({ outcome: 'rejected', ip: '198.51.100.5', to: '+447700900001', message: 'second' });
  const a2 = makeEvent({ ip: '198.51.100.5', to: '+14155550123', message: 'third' });
  const older = makeEvent({ ip: '192.0.2.99', to: '+33612345678', message: 'old one' });
  const requests: URLSearchParams[] = [];

  beforeEach(() => {
    requests.length = 0;
    server.use(
      http.get('/api/events', ({ request }) => {
        const params = new URL(request.url).searchParams;
        requests.push(params);
        if (params.get('before') === 'cursor-1') return HttpResponse.json(page([older]));
        if (params.get('outcome') === 'rejected') return HttpResponse.json(page([r1]));
        return HttpResponse.json(page([a2, r1, a1], 'cursor-1'));
      }),
    );
  });

  it('lists events newest first and filters by outcome, number and IP', async () => {
    const { user } = renderApp('/live');
    await within(await screen.findByRole('table', { name: 'Live log' })).findByText('third');
    expect(rows().map((r) => within(r).getByText(/first|second|third/).textContent)).toEqual(['third', 'second', 'first']);

    await user.selectOptions(screen.getByRole('combobox', { name: 'Outcome' }), 'rejected');
    await waitFor(() => expect(rows()).toHaveLength(1));
    expect(within(rows()[0]!).getByText('second')).toBeInTheDocument();
    expect(requests.at(-1)?.get('outcome')).toBe('rejected');

    await user.selectOptions(screen.getByRole('combobox', { name: 'Outcome' }), 'all');
    await user.type(screen.getByRole('searchbox', { name: 'Number' }), '+1 (415) 555');
    await waitFor(() => expect(rows()).toHaveLength(2));
    await user.type(screen.getByRole('searchbox', { name: 'IP' }), '198.51');
    await waitFor(() => expect(rows()).toHaveLength(1));
    expect(within(rows()[0]!).getByText('third')).toBeInTheDocument();

    await user.clear(screen.getByRole('searchbox', { name: 'Number' }));
    await user.clear(screen.getByRole('searchbox', { name: 'IP' }));
    await user.type(screen.getByRole('searchbox', { name: 'IP' }), '10.9.9.9');
    expect(await within(log()).findByText('No matching events.')).toBeInTheDocument();
  });

  it('names the API client of an event from the Twilio-compatible API', async () => {
    renderApp('/live');
    await within(await screen.findByRole('table', { name: 'Live log' })).findByText('third');
    const sid = 'AC0123456789abcdef0123456789abcdef';
    await emitLive('sms', makeEvent({ message: 'from the sdk', api_client: sid, ip: '10.1.2.3', ip_unattributed: true }));
    const row = rows()[0]!;
    expect(within(row).getByText(sid)).toBeInTheDocument();
    expect(within(row).getByText('10.1.2.3 (client)')).toBeInTheDocument();
    expect(within(rows()[1]!).getAllByText('—').length).toBeGreaterThan(0);
  });

  it('shows new events live, and holds them back while paused', async () => {
    const { user } = renderApp('/live');
    await within(await screen.findByRole('table', { name: 'Live log' })).findByText('third');

    await emitLive('sms', makeEvent({ message: 'live one' }));
    expect(within(rows()[0]!).getByText('live one')).toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: 'Pause' }));
    expect(screen.getByRole('button', { name: 'Resume' })).toHaveAttribute('aria-pressed', 'true');
    expect(screen.getByText('Paused — 0 new events waiting.')).toBeInTheDocument();

    await emitLive('sms', makeEvent({ message: 'while paused 1' }));
    await emitLive('sms', makeEvent({ outcome: 'rejected', ip: '192.0.2.50', message: 'while paused 2' }));
    expect(screen.getByText('Paused — 2 new events waiting.')).toBeInTheDocument();
    expect(within(log()).queryByText('while paused 1')).not.toBeInTheDocument();
    expect(rows()).toHaveLength(4);

    // The filters apply to the waiting count too.
    await user.type(screen.getByRole('searchbox', { name: 'IP' }), '192.0.2');
    expect(screen.getByText('Paused — 1 new event waiting.')).toBeInTheDocument();
    await user.clear(screen.getByRole('searchbox', { name: 'IP' }));

    await user.click(screen.getByRole('button', { name: 'Resume' }));
    expect(rows()).toHaveLength(6);
    expect(within(rows()[0]!).getByText('while paused 2')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Pause' })).toHaveAttribute('aria-pressed', 'false');
  });

  it('loads older events with before=', async () => {
    const { user } = renderApp('/live');
    await within(await screen.findByRole('table', { name: 'Live log' })).findByText('third');
    await user.click(screen.getByRole('button', { name: 'Load older events' }));
    expect(await within(log()).findByText('old one')).toBeInTheDocument();
    expect(requests.at(-1)?.get('before')).toBe('cursor-1');
    expect(rows()).toHaveLength(4);
    expect(screen.getByText('No older events.')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Load older events' })).not.toBeInTheDocument();
  });
});
