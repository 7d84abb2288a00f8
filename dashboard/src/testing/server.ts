import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';

import { makeDeliveryStats, makeHistory, makeStats, page } from '@/testing/fixtures';

/** A problem+json answer, the way smsgate renders errors. */
export function problem(status: number, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return HttpResponse.json(
    { type: 'about:blank', title: 'Error', status, ...body },
    { status, headers: { 'Content-Type': 'application/problem+json', ...headers } },
  );
}

/** Defaults for an open (token-less) server with a little data; tests override per case. */
export const handlers = [
  http.get('/api/session', () => HttpResponse.json({ auth_required: false, authenticated: true })),
  http.get('/api/stats', () => HttpResponse.json(makeStats())),
  http.get('/api/events', () => HttpResponse.json(page([]))),
  http.get('/api/history', () => HttpResponse.json(makeHistory())),
  http.get('/api/audit', () => HttpResponse.json({ events: [] })),
  http.get('/api/stats/delivery', () => HttpResponse.json(makeDeliveryStats())),
  // No delivery known unless a test says otherwise (a rejected or not yet dispatched message).
  http.get('/api/sms/:id', () => problem(404, { title: 'Not Found' })),
];

export const server = setupServer(...handlers);
