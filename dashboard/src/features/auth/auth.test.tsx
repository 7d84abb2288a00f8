import { screen } from '@testing-library/react';
import { http, HttpResponse } from 'msw';

import { FakeEventSource } from '@/testing/fake-event-source';
import { renderApp } from '@/testing/render';
import { problem, server } from '@/testing/server';

const TOKEN = 's3cret';

/** A server with a token: the session is authenticated once POST /api/login got the right one. */
function tokenServer({ signedIn = false } = {}) {
  let authenticated = signedIn;
  const guard = (ok: () => Response) => () =>
    authenticated ? ok() : problem(401, { title: 'Unauthorized', detail: 'Admin token required' });
  server.use(
    http.get('/api/session', () => HttpResponse.json({ auth_required: true, authenticated })),
    http.post('/api/login', async ({ request }) => {
      const { token } = (await request.json()) as { token: string };
      if (token !== TOKEN) return problem(401, { title: 'Unauthorized' });
      authenticated = true;
      return new HttpResponse(null, { status: 204 });
    }),
    http.post('/api/logout', () => {
      authenticated = false;
      return new HttpResponse(null, { status: 204 });
    }),
    http.get('/api/stats', guard(() => HttpResponse.json({ expired: true }))),
    http.get('/api/events', guard(() => HttpResponse.json({ events: [], next_before: null }))),
    http.get('/api/history', guard(() => HttpResponse.json({ bucket: 'hour', buckets: [] }))),
  );
  return { expire: () => (authenticated = false) };
}

describe('Login', () => {
  it('is shown when the server requires a token, and signs in', async () => {
    tokenServer();
    const { user } = renderApp('/live');

    expect(await screen.findByRole('heading', { name: 'Sign in to smsgate' })).toBeInTheDocument();
    expect(FakeEventSource.instances).toHaveLength(0);

    await user.type(screen.getByLabelText('Admin token'), 'wrong');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('That token was not accepted.');
    expect(screen.getByLabelText('Admin token')).toHaveAttribute('aria-invalid', 'true');

    await user.clear(screen.getByLabelText('Admin token'));
    await user.type(screen.getByLabelText('Admin token'), `${TOKEN}{Enter}`);
    expect(await screen.findByRole('heading', { level: 1, name: 'Live log' })).toBeInTheDocument();
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it('appears whenever a call answers 401', async () => {
    const backend = tokenServer({ signedIn: true });
    const { user } = renderApp('/live');
    await screen.findByRole('heading', { level: 1, name: 'Live log' });

    // The server forgets the session (say it restarted with a new token); the next call says 401.
    backend.expire();
    await user.click(screen.getByRole('link', { name: 'History' }));
    expect(await screen.findByRole('heading', { name: 'Sign in to smsgate' })).toBeInTheDocument();
  });

  it('signs out', async () => {
    tokenServer({ signedIn: true });
    const { user } = renderApp('/live');
    await screen.findByRole('heading', { level: 1, name: 'Live log' });
    await user.click(screen.getByRole('button', { name: 'Sign out' }));
    expect(await screen.findByRole('heading', { name: 'Sign in to smsgate' })).toBeInTheDocument();
  });

  it('is not shown when the server has no token', async () => {
    renderApp('/');
    expect(await screen.findByRole('heading', { level: 1, name: 'Overview' })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Sign out' })).not.toBeInTheDocument();
  });
});
