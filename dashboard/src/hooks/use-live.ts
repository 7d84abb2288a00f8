import { createContext, useContext } from 'react';

/** State of the one `/api/live` EventSource of the app. */
export type LiveStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

export const LiveContext = createContext<LiveStatus>('closed');

export function useLiveStatus(): LiveStatus {
  return useContext(LiveContext);
}
