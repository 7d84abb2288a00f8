import { screen, waitFor, within } from '@testing-library/react';
import { http, HttpResponse } from 'msw';

import { emitLive } from '@/testing/fake-event-source';
import { makeDeliveryStats, makeEvent, makeMessage, makeStatusChange, page } from '@/testing/fixtures';
import { renderApp } from '@/testing/render';
import { problem, server } from '@/testing/server';

const log = () => screen.getByRole('table', { name: 'Live log' });
const rowOf = (table: HTMLElement, text: string) => within(table).getByText(text).closest('tr')!;

describe('Delivery', () => {
  it('shows each accepted request’s delivery in the live log, live from status events, linked to its page', async () => {
    const sent = makeEvent({ message: 'sent one' });
    const waiting = makeEvent({ message: 'waiting one' });
    const rejected = makeEvent({ outcome: 'rejected', message: 'rejected one' });
    const fetched: string[] = [];
    server.use(
      http.get('/api/events', () => HttpResponse.json(page([sent, waiting, rejected]))),
      http.get('/api/sms/:id', ({ params }) => {
        const id = String(params.id);
        fetched.push(id);
        if (id === sent.id) {
          return HttpResponse.json(makeMessage(id, { status: 'sent', provider: 'twilio', history: makeMessage(id).history.slice(0, 3) }));
        }
        return problem(404, { title: 'Not Found' });
      }),
    );
    const { user } = renderApp('/live');
    await within(await screen.findByRole('table', { name: 'Live log' })).findByText('sent one');

    const sentRow = rowOf(log(), 'sent one');
    expect(await within(sentRow).findByRole('link', { name: `Sent: delivery of message ${sent.id}` })).toBeInTheDocument();
    expect(await within(rowOf(log(), 'waiting one')).findByRole('link', { name: 'not yet queued' })).toBeInTheDocument();
    expect(within(rowOf(log(), 'rejected one')).getByLabelText('not sent')).toBeInTheDocument();
    // Rejected requests are never sent, so their delivery is never asked for.
    expect(fetched).not.toContain(rejected.id);

    // A receipt arrives: the row changes in place, without asking the server again.
    const before = fetched.length;
    await emitLive('status', makeStatusChange(sent.id, { status: 'delivered', at: '2026-11-28T07:59:20Z' }));
    expect(within(rowOf(log(), 'sent one')).getByRole('link', { name: `Delivered: delivery of message ${sent.id}` })).toBeInTheDocument();
    expect(fetched.length).toBe(before);

    // A message the row knew nothing about (fetched before the dispatcher took it on) is fetched again.
    server.use(http.get('/api/sms/:id', ({ params }) => HttpResponse.json(makeMessage(String(params.id), { status: 'queued', history: makeMessage(waiting.id).history.slice(0, 1) }))));
    await emitLive('status', makeStatusChange(waiting.id, { status: 'queued' }));
    expect(await within(rowOf(log(), 'waiting one')).findByRole('link', { name: `Queued: delivery of message ${waiting.id}` })).toBeInTheDocument();

    await user.click(within(rowOf(log(), 'sent one')).getByRole('link', { name: /Delivered/ }));
    expect(await screen.findByRole('heading', { level: 1, name: 'Message' })).toBeInTheDocument();
    expect(document.title).toBe('Message · smsgate');
  });

  it('shows a message’s page with its history, and follows it live', async () => {
    const id = '0193a000-0000-7000-8000-00000000abcd';
    server.use(
      http.get('/api/sms/:id', () =>
        HttpResponse.json(
          makeMessage(id, {
            status: 'queued',
            provider: 'twilio',
            provider_id: null,
            attempts: 1,
            history: [
              { status: 'queued', at: '2026-11-28T07:59:01Z', detail: null },
              { status: 'sending', at: '2026-11-28T07:59:02Z', detail: null },
              { status: 'queued', at: '2026-11-28T07:59:03Z', detail: 'attempt 1: HTTP 500; next in 1.0s' },
            ],
          }),
        ),
      ),
    );
    renderApp(`/messages/${id}`);
    const details = await screen.findByRole('region', { name: 'Message' });
    expect(within(details).getByText(id)).toBeInTheDocument();
    expect(within(details).getByText('twilio')).toBeInTheDocument();
    expect(within(details).getByText('(in progress, live)')).toBeInTheDocument();
    const history = screen.getByRole('table', { name: 'Delivery history, oldest first' });
    expect(within(history).getByText('attempt 1: HTTP 500; next in 1.0s')).toBeInTheDocument();
    expect(within(history).getAllByRole('row')).toHaveLength(1 + 3);

    await emitLive('status', makeStatusChange(id, { status: 'sending', attempt: 2, at: '2026-11-28T07:59:04Z' }));
    await emitLive('status', makeStatusChange(id, { status: 'sent', attempt: 2, at: '2026-11-28T07:59:05Z' }));
    await emitLive('status', makeStatusChange(id, { status: 'delivered', attempt: 2, at: '2026-11-28T07:59:09Z' }));
    // The same change twice (a redelivered event) is one line.
    await emitLive('status', makeStatusChange(id, { status: 'delivered', attempt: 2, at: '2026-11-28T07:59:09Z' }));
    expect(within(history).getAllByRole('row')).toHaveLength(1 + 6);
    expect(within(details).getByText('SM0123456789abcdef0123456789abcdef')).toBeInTheDocument();
    expect(within(details).getByText('2')).toBeInTheDocument();
    expect(within(details).queryByText('(in progress, live)')).not.toBeInTheDocument();
    expect(within(details).getByText('Delivered')).toBeInTheDocument();
  });

  it('says so when no delivery is known for the id', async () => {
    renderApp('/messages/0193a000-0000-7000-8000-000000000000');
    expect(await screen.findByText(/No delivery is known for/)).toBeInTheDocument();
  });

  it('shows sent, delivered and failed, latency and backlog on the overview, counting status events live', async () => {
    let fetches = 0;
    server.use(
      http.get('/api/stats/delivery', () => {
        fetches += 1;
        return HttpResponse.json(
          makeDeliveryStats({
            latency: { p50: 0.05, p99: 2, calls: 40 },
            backlog: { entries: 4, oldest_seconds: 75, scheduled: 2 },
          }),
        );
      }),
    );
    renderApp('/');
    const panel = await screen.findByRole('region', { name: 'Delivery' });
    const numbers = await within(panel).findByLabelText('Delivery, last 60 minutes');
    const value = (term: string) => within(numbers).getByText(term).nextElementSibling?.textContent;
    expect(value('Sent')).toBe('3');
    expect(value('Delivered')).toBe('2');
    expect(value('Failed')).toBe('1');
    expect(value('Provider latency p50 / p99')).toBe('50 ms / 2.00 s');
    expect(value('Backlog')).toBe('6, oldest 1 min 15 s');
    expect(within(panel).getByRole('figure', { name: 'Sent, delivered and failed per minute, last 60 minutes' })).toBeInTheDocument();

    await emitLive('status', makeStatusChange('0193a000-0000-7000-8000-0000000000ff', { status: 'delivered', at: '2026-11-28T07:59:40Z' }));
    await emitLive('status', makeStatusChange('0193a000-0000-7000-8000-0000000000fe', { status: 'expired', at: '2026-11-28T07:59:41Z' }));
    expect(value('Delivered')).toBe('3');
    expect(value('Failed')).toBe('2');
    expect(fetches).toBe(1);
  });

  it('shows the delivery of accepted events in the audit trail', async () => {
    const accepted = makeEvent({ to: '+14155550123', message: 'audited one' });
    const rejected = makeEvent({ to: '+14155550123', outcome: 'rejected', message: 'audited two' });
    server.use(
      http.get('/api/audit', () => HttpResponse.json({ events: [accepted, rejected] })),
      http.get('/api/sms/:id', ({ params }) =>
        HttpResponse.json(makeMessage(String(params.id), { status: 'failed', history: [{ status: 'failed', at: '2026-11-28T07:59:02Z', detail: 'HTTP 400: 21211 invalid To' }] })),
      ),
    );
    const { user } = renderApp('/history');
    const search = await screen.findByRole('search', { name: 'Audit search' });
    await user.type(within(search).getByRole('searchbox', { name: 'Phone number' }), '+14155550123{Enter}');
    const trail = await screen.findByRole('table', { name: 'Audit trail for number +14155550123' });
    expect(await within(rowOf(trail, 'audited one')).findByRole('link', { name: `Failed: delivery of message ${accepted.id}` })).toBeInTheDocument();
    await waitFor(() => expect(within(rowOf(trail, 'audited two')).getByLabelText('not sent')).toBeInTheDocument());
  });
});
