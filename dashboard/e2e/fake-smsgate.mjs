// A stand-in for `smsgate serve`, for working on the dashboard without the Rust backend:
// it serves dist/ with an SPA fallback and answers the operator API of docs/operator-api.md
// from memory (policy 3/1m,10/1d per (IP, number), exact rolling windows, SSE on /api/live).
// It is a development aid only: the e2e smoke test is meant for the real server.
//
//   npm run build && node e2e/fake-smsgate.mjs        # listens on 127.0.0.1:3100
//   SMSGATE_URL=http://127.0.0.1:3100 npm run e2e
//
// Env: FAKE_PORT (default 3100), SMSGATE_ADMIN_TOKEN (optional: enables the login).
import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const PORT = Number(process.env.FAKE_PORT ?? 3100);
const TOKEN = process.env.SMSGATE_ADMIN_TOKEN ?? '';
const DIST = fileURLToPath(new URL('../dist', import.meta.url));
const POLICY = [
  { name: '1m', limit: 3, window_seconds: 60 },
  { name: '1d', limit: 10, window_seconds: 86_400 },
];
/** @type {Record<string, number>} */
const WINDOW_SECONDS = Object.fromEntries(POLICY.map((w) => [w.name, w.window_seconds]));
const SESSION = randomUUID();

/** @type {any[]} oldest first */
const events = [];
/** @type {Map<string, number[]>} accepted request times (ms) per client */
const accepted = new Map();
/** @type {Set<import('node:http').ServerResponse>} */
const liveClients = new Set();
let seq = 0;

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json' };

function send(res, status, body, headers = {}) {
  const json = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(json);
}

function problem(res, status, title, extra = {}, headers = {}) {
  send(res, status, { type: 'about:blank', title, status, ...extra }, { 'Content-Type': 'application/problem+json', ...headers });
}

function authenticated(req) {
  if (!TOKEN) return true;
  if (req.headers.authorization === `Bearer ${TOKEN}`) return true;
  return (req.headers.cookie ?? '').split(/;\s*/).includes(`smsgate_session=${SESSION}`);
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
}

function counts(list) {
  return {
    accepted: list.filter((e) => e.outcome === 'accepted').length,
    rejected: list.filter((e) => e.outcome === 'rejected').length,
  };
}

function totals(now) {
  const since = (ms) => events.filter((e) => Date.parse(e.at) > now - ms);
  const midnight = new Date(now);
  midnight.setUTCHours(0, 0, 0, 0);
  return {
    last_minute: counts(since(60_000)),
    last_hour: counts(since(3_600_000)),
    today: counts(events.filter((e) => Date.parse(e.at) >= midnight.getTime())),
  };
}

function top(now) {
  const hour = events.filter((e) => e.outcome === 'rejected' && Date.parse(e.at) > now - 3_600_000);
  const tally = (key) => {
    const m = new Map();
    for (const e of hour) m.set(key(e), (m.get(key(e)) ?? 0) + 1);
    return [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
  };
  return {
    top_clients: tally((e) => `${e.ip} ${e.to}`).map(([k, n]) => ({ ip: k.split(' ')[0], to: k.split(' ')[1], rejections: n })),
    top_numbers: tally((e) => e.to).map(([to, n]) => ({ to, rejections: n })),
  };
}

function record(ip, to, from, message, outcome, violated, retryAfter) {
  const now = Date.now();
  seq += 1;
  const event = {
    id: randomUUID(),
    stream_id: `${now}-${seq}`,
    at: new Date(now).toISOString(),
    ip,
    to,
    from: from ?? null,
    message,
    segments: Math.max(1, Math.ceil(message.length / 160)),
    outcome,
    violated,
    retry_after: retryAfter,
  };
  events.push(event);
  for (const client of liveClients) client.write(`event: sms\ndata: ${JSON.stringify(event)}\n\n`);
  return event;
}

function limitsFor(times, now) {
  return POLICY.map((w) => {
    const inWindow = times.filter((t) => t > now - w.window_seconds * 1000);
    const oldest = inWindow[0];
    return {
      name: w.name,
      limit: w.limit,
      remaining: Math.max(0, w.limit - inWindow.length),
      reset_after: oldest === undefined ? w.window_seconds : Math.ceil((oldest + w.window_seconds * 1000 - now) / 1000),
      inWindow,
    };
  });
}

async function postSms(req, res) {
  const ip = req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1';
  if (!(req.headers['content-type'] ?? '').includes('application/json')) {
    return problem(res, 415, 'Unsupported Media Type', { detail: 'Content-Type must be application/json' });
  }
  let body;
  try {
    body = await readJson(req);
  } catch {
    return problem(res, 400, 'Bad Request', { detail: 'Malformed JSON', errors: [{ field: 'body', detail: 'malformed JSON' }] });
  }
  const to = String(body?.to ?? '').replace(/[\s().-]/g, '');
  if (!/^\+[1-9]\d{7,14}$/.test(to)) {
    return problem(res, 400, 'Bad Request', { detail: '`to`: not a phone number', errors: [{ field: 'to', detail: 'not a phone number' }] });
  }
  const message = String(body?.message ?? '');
  if (message.trim() === '') {
    return problem(res, 422, 'Unprocessable Entity', { detail: '`message`: must not be empty', errors: [{ field: 'message', detail: 'must not be empty' }] });
  }
  const key = `${ip} ${to}`;
  const now = Date.now();
  const times = (accepted.get(key) ?? []).filter((t) => t > now - 86_400_000);
  const windows = limitsFor(times, now);
  const full = windows.filter((w) => w.remaining === 0);
  if (full.length > 0) {
    const retryAfter = Math.max(...full.map((w) => Math.max(1, Math.ceil((w.inWindow[w.inWindow.length - w.limit] + WINDOW_SECONDS[w.name] * 1000 - now) / 1000))));
    const event = record(ip, to, body.from, message, 'rejected', full.map((w) => w.name), retryAfter);
    return problem(
      res,
      429,
      'Too Many Requests',
      {
        detail: `Rate limit exceeded; retry after ${retryAfter} s`,
        retry_after: retryAfter,
        id: event.id,
        limits: windows.map(({ inWindow, ...w }) => w),
        violated: full.map((w) => ({ name: w.name, limit: w.limit, window: WINDOW_SECONDS[w.name], retry_after: retryAfter })),
      },
      { 'Retry-After': String(retryAfter) },
    );
  }
  times.push(now);
  accepted.set(key, times);
  const event = record(ip, to, body.from, message, 'accepted', [], 0);
  send(res, 202, {
    id: event.id,
    status: 'accepted',
    to,
    segments: event.segments,
    limits: limitsFor(times, now).map(({ inWindow, ...w }) => w),
  });
}

function stats(url, res) {
  const minutes = Math.min(1440, Math.max(1, Number(url.searchParams.get('minutes') ?? 60)));
  const now = Date.now();
  const current = Math.floor(now / 60_000) * 60_000;
  const per_minute = Array.from({ length: minutes }, (_, i) => {
    const start = current - (minutes - 1 - i) * 60_000;
    const inMinute = events.filter((e) => {
      const t = Date.parse(e.at);
      return t >= start && t < start + 60_000;
    });
    return { minute: new Date(start).toISOString().replace('.000Z', 'Z'), ...counts(inMinute) };
  });
  send(res, 200, { now: new Date(now).toISOString(), policy: POLICY, totals: totals(now), per_minute, ...top(now) });
}

function listEvents(url, res) {
  const outcome = url.searchParams.get('outcome');
  const limit = Math.min(500, Number(url.searchParams.get('limit') ?? 50));
  const before = url.searchParams.get('before');
  let list = [...events].reverse();
  if (outcome) list = list.filter((e) => e.outcome === outcome);
  if (before) {
    const index = list.findIndex((e) => e.stream_id === before);
    list = index === -1 ? [] : list.slice(index + 1);
  }
  const page = list.slice(0, limit);
  send(res, 200, { events: page, next_before: list.length > limit ? page[page.length - 1].stream_id : null });
}

function history(url, res) {
  const bucket = url.searchParams.get('bucket') === 'day' ? 'day' : 'hour';
  const size = bucket === 'day' ? 86_400_000 : 3_600_000;
  const since = Date.parse(url.searchParams.get('since') ?? '') || Date.now() - 86_400_000;
  const until = Date.parse(url.searchParams.get('until') ?? '') || Date.now();
  const buckets = [];
  for (let start = Math.floor(since / size) * size; start < until; start += size) {
    const inBucket = events.filter((e) => {
      const t = Date.parse(e.at);
      return t >= start && t < start + size;
    });
    buckets.push({ start: new Date(start).toISOString().replace('.000Z', 'Z'), ...counts(inBucket) });
  }
  send(res, 200, { bucket, buckets });
}

function audit(url, res) {
  const to = url.searchParams.get('to');
  const ip = url.searchParams.get('ip');
  if (!to && !ip) return problem(res, 400, 'Bad Request', { detail: '`to` or `ip` is required', errors: [{ field: 'to', detail: 'to or ip is required' }] });
  send(res, 200, { events: events.filter((e) => (!to || e.to === to) && (!ip || e.ip === ip)) });
}

function client(ip, to, res) {
  const now = Date.now();
  const times = (accepted.get(`${ip} ${to}`) ?? []).filter((t) => t > now - 86_400_000);
  const windows = limitsFor(times, now).map((w) => ({
    name: w.name,
    limit: w.limit,
    used: w.inWindow.length,
    remaining: w.remaining,
    frees_in: w.inWindow.length ? w.reset_after : 0,
  }));
  send(res, 200, { ip, to, windows });
}

function live(req, res) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
  res.write(': connected\n\n');
  liveClients.add(res);
  req.on('close', () => liveClients.delete(res));
}

setInterval(() => {
  const now = Date.now();
  const tick = JSON.stringify({ now: new Date(now).toISOString(), totals: totals(now) });
  for (const c of liveClients) c.write(`event: stats\ndata: ${tick}\n\n`);
}, 1000).unref();

function serveStatic(pathname, res) {
  const safe = normalize(pathname).replace(/^(\.\.[/\\])+/, '');
  let file = join(DIST, safe);
  if (!file.startsWith(DIST) || !existsSync(file) || statSync(file).isDirectory()) file = join(DIST, 'index.html');
  if (!existsSync(file)) return problem(res, 404, 'Not Found', { detail: 'dist/ is missing: run npm run build' });
  res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file).pipe(res);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
  const route = `${req.method} ${url.pathname}`;
  const guard = () => {
    if (authenticated(req)) return true;
    problem(res, 401, 'Unauthorized', { detail: 'Admin token required' });
    return false;
  };
  Promise.resolve()
    .then(async () => {
      if (route === 'GET /healthz' || route === 'GET /readyz') return send(res, 200, { status: 'ok' });
      if (route === 'GET /api/session') return send(res, 200, { auth_required: Boolean(TOKEN), authenticated: authenticated(req) });
      if (route === 'POST /api/login') {
        const body = await readJson(req).catch(() => ({}));
        if (!TOKEN || body?.token === TOKEN) {
          res.writeHead(204, { 'Set-Cookie': `smsgate_session=${SESSION}; HttpOnly; SameSite=Strict; Path=/` });
          return res.end();
        }
        return problem(res, 401, 'Unauthorized', { detail: 'Wrong token' });
      }
      if (route === 'POST /api/logout') {
        res.writeHead(204, { 'Set-Cookie': 'smsgate_session=; Max-Age=0; Path=/' });
        return res.end();
      }
      if (route === 'POST /api/sms') return postSms(req, res);
      if (url.pathname.startsWith('/api/') || url.pathname === '/metrics') {
        if (!guard()) return undefined;
        if (route === 'GET /api/stats') return stats(url, res);
        if (route === 'GET /api/events') return listEvents(url, res);
        if (route === 'GET /api/live') return live(req, res);
        if (route === 'GET /api/history') return history(url, res);
        if (route === 'GET /api/audit') return audit(url, res);
        const m = /^\/api\/clients\/([^/]+)\/([^/]+)$/.exec(url.pathname);
        if (req.method === 'GET' && m) return client(decodeURIComponent(m[1]), decodeURIComponent(m[2]), res);
        return problem(res, 404, 'Not Found');
      }
      if (req.method === 'GET') return serveStatic(url.pathname, res);
      return problem(res, 405, 'Method Not Allowed');
    })
    .catch((error) => {
      console.error(error);
      if (!res.headersSent) problem(res, 500, 'Internal Server Error');
    });
});

server.listen(PORT, '127.0.0.1', () => {
  console.log(`fake smsgate on http://127.0.0.1:${PORT}${TOKEN ? ' (token required)' : ''}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => process.exit(0));
