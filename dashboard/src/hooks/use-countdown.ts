import { useEffect, useState } from 'react';

/**
 * Whole seconds left until `deadline` (ms since epoch), rounded up like Retry-After, ticking
 * down once a second; 0 when there is no deadline or it has passed.
 */
export function useCountdown(deadline: number | null): number {
  const [now, setNow] = useState(() => Date.now());

  useEffect(() => {
    if (deadline === null) return undefined;
    const tick = () => setNow(Date.now());
    const id = window.setInterval(tick, 250);
    const first = window.setTimeout(tick, 0);
    return () => {
      window.clearInterval(id);
      window.clearTimeout(first);
    };
  }, [deadline]);

  if (deadline === null) return 0;
  return Math.max(0, Math.ceil((deadline - now) / 1000));
}
