import { ErrorAlert } from '@/components/error-alert';
import { EventsTable } from '@/components/events-table';
import { Panel } from '@/components/panel';
import { flattenEvents, useEvents } from '@/features/events/api/get-events';

const SHOWN = 25;

/** The newest rate-limit violations; new ones arrive over SSE and appear on top. */
export function ViolationsTable() {
  const violations = useEvents('rejected');
  const events = flattenEvents(violations.data).slice(0, SHOWN);
  return (
    <Panel title="Recent rate-limit violations" className="panel--wide">
      {violations.isError ? (
        <ErrorAlert error={violations.error} />
      ) : (
        <EventsTable
          label="Recent rate-limit violations"
          events={events}
          columns={['time', 'ip', 'to', 'violated', 'retry_after']}
          empty={violations.isPending ? 'Loading…' : 'No violations yet.'}
        />
      )}
    </Panel>
  );
}
