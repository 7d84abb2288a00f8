/** Client-side routes, in navigation order. */
export const paths = {
  overview: { path: '/', label: 'Overview' },
  live: { path: '/live', label: 'Live log' },
  send: { path: '/send', label: 'Send test SMS' },
  history: { path: '/history', label: 'History' },
} as const;
