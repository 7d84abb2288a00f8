/**
 * The one HTTP client of the dashboard: a thin `fetch` wrapper that sends JSON, reads JSON,
 * and turns every non-2xx answer into an {@link ApiError} parsed from problem+json.
 */

import { env } from '@/config/env';

export interface FieldError {
  field: string;
  detail: string;
}

/** An RFC 9457 problem, as smsgate renders it, plus the HTTP facts around it. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string | null;
  readonly type: string | null;
  readonly errors: FieldError[];
  /** Seconds from the body's `retry_after` or the `Retry-After` header, when either is given. */
  readonly retryAfter: number | null;
  /** The parsed body, for fields a caller knows about (e.g. `violated` on a 429). */
  readonly body: Record<string, unknown>;

  constructor(init: {
    status: number;
    title: string;
    detail?: string | null;
    type?: string | null;
    errors?: FieldError[];
    retryAfter?: number | null;
    body?: Record<string, unknown>;
  }) {
    super(init.detail ? `${init.title}: ${init.detail}` : init.title);
    this.name = 'ApiError';
    this.status = init.status;
    this.title = init.title;
    this.detail = init.detail ?? null;
    this.type = init.type ?? null;
    this.errors = init.errors ?? [];
    this.retryAfter = init.retryAfter ?? null;
    this.body = init.body ?? {};
  }

  /** The detail for one input field, if the server named it. */
  fieldError(field: string): string | undefined {
    return this.errors.find((e) => e.field === field)?.detail;
  }
}

export const isApiError = (error: unknown): error is ApiError => error instanceof ApiError;

/** 0 stands for "no HTTP answer at all" (network down, server gone). */
export const NETWORK_ERROR_STATUS = 0;

type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  /** Login answers 401 for a wrong token; that must not be taken as "session expired". */
  ignoreUnauthorized?: boolean;
}

type UnauthorizedListener = () => void;
const unauthorizedListeners = new Set<UnauthorizedListener>();

/** Called whenever any request answers 401, so the app can show the login screen. */
export function onUnauthorized(listener: UnauthorizedListener): () => void {
  unauthorizedListeners.add(listener);
  return () => {
    unauthorizedListeners.delete(listener);
  };
}

export function apiUrl(path: string, query?: Query): string {
  const url = new URL(env.apiBaseUrl + path, window.location.origin);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') {
      url.searchParams.set(key, String(value));
    }
  }
  return url.toString();
}

function parseSeconds(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) {
    return Number(value);
  }
  return null;
}

function parseFieldErrors(value: unknown): FieldError[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item: unknown) => {
    if (typeof item !== 'object' || item === null) return [];
    const { field, detail } = item as Record<string, unknown>;
    if (typeof field !== 'string') return [];
    // Accept a JSON Pointer ("/to") as well as a bare name ("to").
    return [{ field: field.replace(/^\//, ''), detail: typeof detail === 'string' ? detail : 'Invalid value' }];
  });
}

async function toApiError(response: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  const contentType = response.headers.get('content-type') ?? '';
  if (contentType.includes('json')) {
    try {
      const parsed: unknown = await response.json();
      if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
    } catch {
      // A malformed error body still leaves the status and headers to go on.
    }
  }
  const title =
    typeof body.title === 'string' ? body.title : response.statusText || `HTTP ${response.status}`;
  return new ApiError({
    status: response.status,
    title,
    detail: typeof body.detail === 'string' ? body.detail : null,
    type: typeof body.type === 'string' ? body.type : null,
    errors: parseFieldErrors(body.errors),
    retryAfter: parseSeconds(body.retry_after) ?? parseSeconds(response.headers.get('retry-after')),
    body,
  });
}

export async function apiRequest<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const { method = 'GET', query, body, signal, ignoreUnauthorized = false } = options;
  const headers: Record<string, string> = { Accept: 'application/json, application/problem+json' };
  const init: RequestInit = { method, headers, credentials: 'same-origin' };
  if (signal) init.signal = signal;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }

  let response: Response;
  try {
    response = await fetch(apiUrl(path, query), init);
  } catch (cause) {
    if (cause instanceof DOMException && cause.name === 'AbortError') throw cause;
    throw new ApiError({
      status: NETWORK_ERROR_STATUS,
      title: 'Network error',
      detail: 'The smsgate server could not be reached.',
    });
  }

  if (!response.ok) {
    const error = await toApiError(response);
    if (error.status === 401 && !ignoreUnauthorized) {
      unauthorizedListeners.forEach((listener) => listener());
    }
    throw error;
  }
  if (response.status === 204 || response.headers.get('content-length') === '0') {
    return undefined as T;
  }
  return (await response.json()) as T;
}

export const api = {
  get: <T>(path: string, options?: Omit<RequestOptions, 'method' | 'body'>) =>
    apiRequest<T>(path, { ...options, method: 'GET' }),
  post: <T>(path: string, body?: unknown, options?: Omit<RequestOptions, 'method' | 'body'>) =>
    apiRequest<T>(path, { ...options, method: 'POST', body }),
};
