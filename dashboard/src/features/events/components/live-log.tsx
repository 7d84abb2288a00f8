import { useId, useMemo, useState } from 'react';

import { ErrorAlert } from '@/components/error-alert';
import { EventsTable } from '@/components/events-table';
import { Panel } from '@/components/panel';
import { arrivedSince, matchesFilters, pauseAnchor, type PauseAnchor } from '@/features/events/api/filter-events';
import { flattenEvents, useEvents, type OutcomeFilter } from '@/features/events/api/get-events';
import { useLiveStatus } from '@/hooks/use-live';

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** Every request as it happens, with filters, pause, and paging back through older events. */
export function LiveLog() {
  const [outcome, setOutcome] = useState<OutcomeFilter>('all');
  const [number, setNumber] = useState('');
  const [ip, setIp] = useState('');
  const [paused, setPaused] = useState<PauseAnchor | null>(null);
  const live = useLiveStatus();
  const ids = { outcome: useId(), number: useId(), ip: useId() };

  const query = useEvents(outcome);
  const all = useMemo(() => flattenEvents(query.data), [query.data]);

  const { shown, waiting } = useMemo(() => {
    const filters = { number, ip };
    const matching = all.filter((e) => matchesFilters(e, filters));
    if (!paused) return { shown: matching, waiting: 0 };
    const fresh = matching.filter((e) => arrivedSince(e, paused));
    return { shown: matching.filter((e) => !arrivedSince(e, paused)), waiting: fresh.length };
  }, [all, number, ip, paused]);

  const togglePause = () => setPaused((p) => (p ? null : pauseAnchor(all)));

  return (
    <Panel
      title="Requests"
      className="panel--wide"
      actions={
        <button type="button" className={`button ${paused ? 'button--primary' : ''}`} aria-pressed={paused !== null} onClick={togglePause}>
          {paused ? 'Resume' : 'Pause'}
        </button>
      }
    >
      <form className="filters" role="search" aria-label="Filter events" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor={ids.outcome}>Outcome</label>
          <select id={ids.outcome} value={outcome} onChange={(e) => setOutcome(e.target.value as OutcomeFilter)}>
            <option value="all">All</option>
            <option value="accepted">Accepted</option>
            <option value="rejected">Rejected</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor={ids.number}>Number</label>
          <input id={ids.number} type="search" inputMode="tel" placeholder="+1415…" value={number} onChange={(e) => setNumber(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={ids.ip}>IP</label>
          <input id={ids.ip} type="search" placeholder="203.0.113.7" value={ip} onChange={(e) => setIp(e.target.value)} />
        </div>
      </form>

      <p className="log-status" role="status">
        {paused
          ? `Paused — ${plural(waiting, 'new event', 'new events')} waiting.`
          : live === 'open'
            ? `Live — ${plural(shown.length, 'event', 'events')} shown.`
            : `${plural(shown.length, 'event', 'events')} shown; live updates ${live === 'closed' ? 'stopped' : 'reconnecting'}.`}
      </p>

      {query.isError && !query.data ? (
        <ErrorAlert error={query.error} />
      ) : (
        <EventsTable
          label="Live log"
          events={shown}
          columns={['time', 'outcome', 'delivery', 'ip', 'api_client', 'to', 'from', 'message', 'segments', 'violated', 'retry_after']}
          empty={query.isPending ? 'Loading…' : 'No matching events.'}
        />
      )}

      <div className="log-footer">
        {query.hasNextPage ? (
          <button type="button" className="button" onClick={() => void query.fetchNextPage()} disabled={query.isFetchingNextPage}>
            {query.isFetchingNextPage ? 'Loading older events…' : 'Load older events'}
          </button>
        ) : (
          query.isSuccess && <p className="muted">No older events.</p>
        )}
        {query.isFetchNextPageError && <ErrorAlert error={query.error} title="Could not load older events" />}
      </div>
    </Panel>
  );
}
