/** Client-side routes, in navigation order. */
export const paths = {
  overview: { path: '/', label: 'Overview' },
  live: { path: '/live', label: 'Live log' },
  send: { path: '/send', label: 'Send test SMS' },
  history: { path: '/history', label: 'History' },
} as const;

/** A message's delivery page; reached from the delivery column of the log and the audit. */
export const messagePath = (id: string) => `/messages/${encodeURIComponent(id)}`;
export const messageRoute = '/messages/:id';
