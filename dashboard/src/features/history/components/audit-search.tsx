import { useId, useState, type FormEvent } from 'react';

import { ErrorAlert } from '@/components/error-alert';
import { EventsTable } from '@/components/events-table';
import { Panel } from '@/components/panel';
import { useAudit, type AuditBy, type AuditParams } from '@/features/history/api/get-audit';

const looksLikeIp = (value: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(value) || value.includes(':');

/** The full event history of one number or one IP, oldest first, from the archive and the stream's tail. */
export function AuditSearch() {
  const [by, setBy] = useState<AuditBy>('to');
  const [value, setValue] = useState('');
  const [params, setParams] = useState<AuditParams | null>(null);
  const ids = { by: useId(), value: useId(), error: useId() };
  const audit = useAudit(params);

  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const trimmed = value.trim();
    if (trimmed) setParams({ by, value: trimmed });
  };

  const subject = params ? `${params.by === 'ip' ? 'IP' : 'number'} ${params.value}` : '';

  return (
    <Panel title="Audit" className="panel--wide">
      <form className="filters" role="search" aria-label="Audit search" onSubmit={onSubmit}>
        <div className="field">
          <label htmlFor={ids.by}>Search by</label>
          <select id={ids.by} value={by} onChange={(e) => setBy(e.target.value as AuditBy)}>
            <option value="to">Number</option>
            <option value="ip">IP address</option>
          </select>
        </div>
        <div className="field field--grow">
          <label htmlFor={ids.value}>{by === 'ip' ? 'IP address' : 'Phone number'}</label>
          <input
            id={ids.value}
            type="search"
            inputMode={by === 'ip' ? 'text' : 'tel'}
            value={value}
            placeholder={by === 'ip' ? '203.0.113.7' : '+14155550123'}
            onChange={(e) => {
              setValue(e.target.value);
              // Typing an address into the number field (or the reverse) switches the kind.
              const v = e.target.value.trim();
              if (v.length > 6) setBy(looksLikeIp(v) ? 'ip' : v.startsWith('+') ? 'to' : by);
            }}
          />
        </div>
        <div className="field field--button">
          <button type="submit" className="button button--primary">
            Search
          </button>
        </div>
      </form>

      {audit.isError && <ErrorAlert error={audit.error} title="Audit search failed" />}
      {audit.isFetching && !audit.data && (
        <p role="status" className="muted">
          Searching…
        </p>
      )}
      {params && audit.data && (
        <>
          <p role="status" className="muted">
            {audit.data.events.length === 1 ? '1 event' : `${audit.data.events.length} events`} for {subject}, oldest first.
          </p>
          <EventsTable
            label={`Audit trail for ${subject}`}
            events={audit.data.events}
            fullTime
            columns={['time', 'outcome', 'delivery', 'ip', 'to', 'from', 'message', 'segments', 'violated', 'retry_after']}
            empty="No events for this search."
          />
        </>
      )}
    </Panel>
  );
}
