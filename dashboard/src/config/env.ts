/** Build-time configuration. The dashboard is served by smsgate itself, so the API is same-origin. */
export const env = {
  /** Prefix for API paths; empty means same origin as the page. */
  apiBaseUrl: (import.meta.env.VITE_API_BASE_URL as string | undefined) ?? '',
  /** Path of the Server-Sent Events stream. */
  livePath: '/api/live',
} as const;
