import { act, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';

import { renderApp } from '@/testing/render';
import { problem, server } from '@/testing/server';

async function fillAndSend(user: ReturnType<typeof userEvent.setup>, to: string, message: string) {
  await user.clear(screen.getByRole('textbox', { name: 'Number' }));
  await user.type(screen.getByRole('textbox', { name: 'Number' }), to);
  await user.clear(screen.getByRole('textbox', { name: 'Message' }));
  await user.type(screen.getByRole('textbox', { name: 'Message' }), message);
  await user.click(screen.getByRole('button', { name: 'Send' }));
}

describe('Send a test SMS', () => {
  it('shows accepted with the remaining quota per window', async () => {
    let body: unknown;
    server.use(
      http.post('/api/sms', async ({ request }) => {
        body = await request.json();
        return HttpResponse.json(
          {
            id: '0193a000-0000-7000-8000-00000000abcd',
            status: 'accepted',
            to: '+14155550123',
            segments: 1,
            limits: [
              { name: '1m', limit: 3, remaining: 2, reset_after: 60 },
              { name: '1d', limit: 10, remaining: 9, reset_after: 86_400 },
            ],
          },
          { status: 202 },
        );
      }),
    );
    const { user } = renderApp('/send');
    await screen.findByRole('heading', { level: 1, name: 'Send a test SMS' });
    await user.type(screen.getByRole('textbox', { name: 'From (optional)' }), 'Acme');
    await fillAndSend(user, '+1 (415) 555-0123', 'hello there');

    const result = await screen.findByText('Accepted');
    expect(result.closest('.result')).toHaveTextContent('sent to +14155550123 as 1 segment');
    expect(body).toEqual({ to: '+1 (415) 555-0123', message: 'hello there', from: 'Acme' });
    const quota = screen.getByRole('table', { name: 'Remaining quota per window' });
    expect(within(quota).getByRole('row', { name: '1m 3 2 1 min' })).toBeInTheDocument();
    expect(within(quota).getByRole('row', { name: '1d 10 9 1 d' })).toBeInTheDocument();
  });

  it('shows rate limited with a countdown to Retry-After on 429', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    server.use(
      http.post('/api/sms', () =>
        problem(
          429,
          {
            title: 'Too Many Requests',
            retry_after: 37,
            id: '0193a000-0000-7000-8000-00000000ffff',
            limits: [{ name: '1m', limit: 3, remaining: 0, reset_after: 37 }],
            violated: [{ name: '1m', limit: 3, window: 60, retry_after: 37 }],
          },
          { 'Retry-After': '37' },
        ),
      ),
    );
    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime.bind(vi) });
    renderApp('/send', { user });
    await screen.findByRole('heading', { level: 1, name: 'Send a test SMS' });
    await fillAndSend(user, '+14155550123', 'again');

    expect(await screen.findByText('Rate limited')).toBeInTheDocument();
    expect(screen.getByText(/over 3 per 1m/)).toBeInTheDocument();
    const timer = screen.getByRole('timer', { name: 'Seconds until retry' });
    expect(timer).toHaveTextContent('37');

    await act(async () => {
      await vi.advanceTimersByTimeAsync(10_000);
    });
    expect(screen.getByRole('timer')).toHaveTextContent('27');

    await act(async () => {
      await vi.advanceTimersByTimeAsync(27_000);
    });
    expect(screen.queryByRole('timer')).not.toBeInTheDocument();
    expect(screen.getByText('You can send again now.')).toBeInTheDocument();
  });

  it('takes Retry-After from the header when the body has none', async () => {
    server.use(http.post('/api/sms', () => problem(429, { title: 'Too Many Requests' }, { 'Retry-After': '5' })));
    const { user } = renderApp('/send');
    await screen.findByRole('heading', { level: 1, name: 'Send a test SMS' });
    await fillAndSend(user, '+14155550123', 'again');
    expect(await screen.findByRole('timer')).toHaveTextContent('5');
  });

  it.each([
    [400, 'to', 'Number', 'not a valid phone number'],
    [422, 'message', 'Message', 'must not be empty'],
  ])('shows a %i field error next to the %s field', async (status, field, label, detail) => {
    server.use(
      http.post('/api/sms', () =>
        problem(status, { title: 'Invalid request', detail: 'See errors', errors: [{ field, detail }] }),
      ),
    );
    const { user } = renderApp('/send');
    await screen.findByRole('heading', { level: 1, name: 'Send a test SMS' });
    await fillAndSend(user, '12', 'x');

    const input = await screen.findByRole('textbox', { name: label, description: detail });
    expect(input).toHaveAttribute('aria-invalid', 'true');
    expect(input).toHaveFocus();
    const other = screen.getByRole('textbox', { name: field === 'to' ? 'Message' : 'Number' });
    expect(other).not.toHaveAttribute('aria-invalid');
    expect(other).not.toHaveAccessibleDescription(detail);
  });

  it('shows other errors, such as 503 while Redis is down, as an alert', async () => {
    server.use(
      http.post('/api/sms', () =>
        problem(503, { title: 'Service Unavailable', detail: 'Rate limiter unavailable' }, { 'Retry-After': '1' }),
      ),
    );
    const { user } = renderApp('/send');
    await screen.findByRole('heading', { level: 1, name: 'Send a test SMS' });
    await fillAndSend(user, '+14155550123', 'hi');
    expect(await screen.findByRole('alert')).toHaveTextContent('Not sent — Service Unavailable: Rate limiter unavailable');
  });
  it('names the rule that refused and when each of its windows frees', async () => {
    server.use(
      http.post('/api/sms', () =>
        problem(
          429,
          {
            title: 'Too Many Requests',
            retry_after: 50,
            id: '0193a000-0000-7000-8000-00000000fff1',
            limits: [{ name: 'number.1m', limit: 5, remaining: 0, reset_after: 50 }],
            violated: [
              { name: 'number.1m', rule: 'number', limit: 5, window: 60, retry_after: 50 },
              { name: 'source.1m', rule: 'source', limit: 20, window: 60, retry_after: 12 },
            ],
          },
          { 'Retry-After': '50' },
        ),
      ),
    );
    const { user } = renderApp('/send');
    await screen.findByRole('heading', { level: 1, name: 'Send a test SMS' });
    await fillAndSend(user, '+14155550123', 'again');

    const refused = await screen.findByRole('table', { name: 'Refused by' });
    expect(within(refused).getByRole('row', { name: /^number number\.1m 5 50 s / })).toBeInTheDocument();
    expect(within(refused).getByRole('row', { name: /^source source\.1m 20 12 s / })).toBeInTheDocument();
    expect(screen.getByText(/every rule has room again at/)).toBeInTheDocument();
  });

  it('shows a blocked destination (403) with its reason and that nothing was counted', async () => {
    server.use(
      http.post('/api/sms', () =>
        problem(403, {
          title: 'Forbidden',
          type: '/problems/blocked-number-type',
          detail: '+449090000000: smsgate does not send to premium rate numbers',
          reason: 'number-type',
          country: 'GB',
          number_type: 'premium_rate',
        }),
      ),
    );
    const { user } = renderApp('/send');
    await screen.findByRole('heading', { level: 1, name: 'Send a test SMS' });
    await fillAndSend(user, '+449090000000', 'win a prize');

    const result = (await screen.findByText('Blocked')).closest('.result');
    expect(result).toHaveTextContent('smsgate does not send to this type of number');
    expect(result).toHaveTextContent('number type premium_rate');
    expect(result).toHaveTextContent('No quota was used.');
    expect(screen.queryByText('Not sent')).not.toBeInTheDocument();
  });
});
