import { ErrorAlert } from '@/components/error-alert';
import { Panel } from '@/components/panel';
import { Time } from '@/components/time';
import { useMessage } from '@/features/delivery/api/get-message';
import { DeliveryStatusBadge } from '@/features/delivery/components/delivery-status-badge';
import { FINAL_STATUSES } from '@/lib/types';

/** One message's delivery and its history, as `GET /api/sms/{id}` has it; live over SSE. */
export function MessageDetails({ id }: { id: string }) {
  const message = useMessage(id);
  if (message.isPending) {
    return (
      <p role="status" className="muted">
        Loading message…
      </p>
    );
  }
  if (message.isError) return <ErrorAlert error={message.error} title="Could not load the message" />;
  if (!message.data) {
    return (
      <Panel title="Message" className="panel--wide">
        <p role="status">
          No delivery is known for <span className="mono">{id}</span>: it was rejected, the dispatcher has not taken
          it on yet, or its delivery state has expired.
        </p>
      </Panel>
    );
  }
  const m = message.data;
  return (
    <div className="stack">
      <Panel title="Message" className="panel--wide">
        <dl className="details">
          <div>
            <dt>Id</dt>
            <dd className="mono">{m.id}</dd>
          </div>
          <div>
            <dt>Number</dt>
            <dd className="mono">{m.to}</dd>
          </div>
          <div>
            <dt>Status</dt>
            <dd>
              <DeliveryStatusBadge status={m.status} />
              {!FINAL_STATUSES.has(m.status) && <span className="muted"> (in progress, live)</span>}
            </dd>
          </div>
          <div>
            <dt>Provider</dt>
            <dd>{m.provider}</dd>
          </div>
          <div>
            <dt>Provider id</dt>
            <dd className="mono">{m.provider_id ?? '—'}</dd>
          </div>
          <div>
            <dt>Attempts</dt>
            <dd>{m.attempts}</dd>
          </div>
        </dl>
      </Panel>
      <Panel title="History" className="panel--wide">
        <div className="table-scroll" role="region" aria-label="Delivery history" tabIndex={0}>
          <table className="table">
            <caption className="visually-hidden">Delivery history, oldest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Status</th>
                <th scope="col">Detail</th>
              </tr>
            </thead>
            <tbody>
              {m.history.map((h) => (
                <tr key={`${h.at}-${h.status}`}>
                  <td>
                    <Time at={h.at} full />
                  </td>
                  <td>
                    <DeliveryStatusBadge status={h.status} />
                  </td>
                  <td>{h.detail ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Panel>
    </div>
  );
}
