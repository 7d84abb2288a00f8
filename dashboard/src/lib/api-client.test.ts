import { http, HttpResponse } from 'msw';

import { api, ApiError, onUnauthorized } from '@/lib/api-client';
import { problem, server } from '@/testing/server';

async function caught(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected the request to fail');
}

describe('api client', () => {
  it('sends JSON and reads JSON', async () => {
    server.use(
      http.post('/api/thing', async ({ request }) =>
        HttpResponse.json({ got: await request.json(), type: request.headers.get('content-type') }),
      ),
    );
    await expect(api.post('/api/thing', { a: 1 })).resolves.toEqual({ got: { a: 1 }, type: 'application/json' });
  });

  it('leaves out empty query parameters', async () => {
    let search = '';
    server.use(
      http.get('/api/thing', ({ request }) => {
        search = new URL(request.url).search;
        return HttpResponse.json({});
      }),
    );
    await api.get('/api/thing', { query: { a: 'x y', b: undefined, c: null, d: '', e: 5 } });
    expect(search).toBe('?a=x+y&e=5');
  });

  it('resolves 204 to undefined', async () => {
    server.use(http.post('/api/thing', () => new HttpResponse(null, { status: 204 })));
    await expect(api.post('/api/thing')).resolves.toBeUndefined();
  });

  it('parses problem+json into a typed error', async () => {
    server.use(
      http.post('/api/thing', () =>
        problem(422, {
          type: 'https://smsgate.dev/problems/invalid',
          title: 'Unprocessable Entity',
          detail: 'The message is empty',
          errors: [
            { field: 'message', detail: 'must not be empty' },
            { field: '/to', detail: 'invalid number' },
          ],
        }),
      ),
    );
    const error = await caught(api.post('/api/thing', {}));
    expect(error.status).toBe(422);
    expect(error.title).toBe('Unprocessable Entity');
    expect(error.detail).toBe('The message is empty');
    expect(error.type).toBe('https://smsgate.dev/problems/invalid');
    expect(error.fieldError('message')).toBe('must not be empty');
    expect(error.fieldError('to')).toBe('invalid number');
    expect(error.retryAfter).toBeNull();
  });

  it('reads retry_after from the body, else from the Retry-After header', async () => {
    server.use(http.get('/api/a', () => problem(429, { retry_after: 37 }, { 'Retry-After': '40' })));
    server.use(http.get('/api/b', () => problem(503, {}, { 'Retry-After': '2' })));
    expect((await caught(api.get('/api/a'))).retryAfter).toBe(37);
    expect((await caught(api.get('/api/b'))).retryAfter).toBe(2);
  });

  it('falls back to the status text for an error without a problem body', async () => {
    server.use(http.get('/api/thing', () => new HttpResponse('<html>oops</html>', { status: 502, statusText: 'Bad Gateway' })));
    const error = await caught(api.get('/api/thing'));
    expect(error.status).toBe(502);
    expect(error.title).toBe('Bad Gateway');
  });

  it('reports a network failure as status 0', async () => {
    server.use(http.get('/api/thing', () => HttpResponse.error()));
    const error = await caught(api.get('/api/thing'));
    expect(error.status).toBe(0);
    expect(error.title).toBe('Network error');
  });

  it('tells listeners about a 401 unless the caller opts out', async () => {
    server.use(http.get('/api/thing', () => problem(401, { title: 'Unauthorized' })));
    const listener = vi.fn();
    const stop = onUnauthorized(listener);
    await caught(api.get('/api/thing'));
    expect(listener).toHaveBeenCalledTimes(1);
    await caught(api.get('/api/thing', { ignoreUnauthorized: true }));
    expect(listener).toHaveBeenCalledTimes(1);
    stop();
    await caught(api.get('/api/thing'));
    expect(listener).toHaveBeenCalledTimes(1);
  });
});
