import { act, screen, waitFor } from '@testing-library/react';
import { http, HttpResponse } from 'msw';

import { FakeEventSource } from '@/testing/fake-event-source';
import { renderApp } from '@/testing/render';
import { server } from '@/testing/server';

describe('live stream', () => {
  it('opens one EventSource for the whole app and shows its state', async () => {
    const { user } = renderApp('/');
    await screen.findByRole('heading', { level: 1, name: 'Overview' });
    expect(FakeEventSource.instances).toHaveLength(1);
    expect(FakeEventSource.instances[0]!.url).toBe('http://localhost:3000/api/live');
    expect(screen.getByRole('status', { name: 'Live updates: Connecting…' })).toBeInTheDocument();

    act(() => FakeEventSource.latest().open());
    expect(screen.getByRole('status', { name: 'Live updates: Live' })).toBeInTheDocument();

    await user.click(screen.getByRole('link', { name: 'Live log' }));
    await user.click(screen.getByRole('link', { name: 'Send test SMS' }));
    await user.click(screen.getByRole('link', { name: 'History' }));
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it('refetches what it may have missed after a reconnect', async () => {
    let eventFetches = 0;
    server.use(
      http.get('/api/events', () => {
        eventFetches += 1;
        return HttpResponse.json({ events: [], next_before: null });
      }),
    );
    renderApp('/');
    await screen.findByRole('heading', { level: 1, name: 'Overview' });
    await waitFor(() => expect(eventFetches).toBe(1));
    const source = FakeEventSource.latest();
    act(() => source.open());

    act(() => source.fail());
    expect(screen.getByRole('status', { name: 'Live updates: Reconnecting…' })).toBeInTheDocument();
    act(() => source.open());
    await waitFor(() => expect(eventFetches).toBe(2));
  });

  it('asks for the session and tries again later when the server refuses the stream', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    let sessionFetches = 0;
    server.use(
      http.get('/api/session', () => {
        sessionFetches += 1;
        return HttpResponse.json({ auth_required: false, authenticated: true });
      }),
    );
    renderApp('/');
    await screen.findByRole('heading', { level: 1, name: 'Overview' });
    act(() => FakeEventSource.latest().fail(true));
    expect(screen.getByRole('status', { name: 'Live updates: Offline' })).toBeInTheDocument();
    await waitFor(() => expect(sessionFetches).toBe(2));

    await act(async () => {
      await vi.advanceTimersByTimeAsync(5_000);
    });
    expect(FakeEventSource.instances).toHaveLength(2);
    act(() => FakeEventSource.latest().open());
    expect(screen.getByRole('status', { name: 'Live updates: Live' })).toBeInTheDocument();
  });
});
