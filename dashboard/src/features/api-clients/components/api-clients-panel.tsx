import { Panel } from '@/components/panel';
import { usageByClient } from '@/features/api-clients/lib/usage';
import { flattenEvents, useEvents } from '@/features/events/api/get-events';
import { formatCount } from '@/lib/format';

/** Requests per API client of the Twilio-compatible API, among the recent events held live. */
export function ApiClientsPanel() {
  const all = useEvents('all');
  const usage = usageByClient(flattenEvents(all.data));
  return (
    <Panel title="API clients" className="panel--wide">
      <div className="table-scroll" role="region" aria-label="Requests per API client" tabIndex={0}>
        <table className="table">
          <caption className="visually-hidden">Requests per API client, among the recent events</caption>
          <thead>
            <tr>
              <th scope="col">Account SID</th>
              <th scope="col" className="num">
                Accepted
              </th>
              <th scope="col" className="num">
                Rejected
              </th>
              <th scope="col" className="num">
                Blocked
              </th>
              <th scope="col" className="num" title="requests that named no end user's IP">
                Without end-user IP
              </th>
            </tr>
          </thead>
          <tbody>
            {usage.length === 0 ? (
              <tr>
                <td colSpan={5} className="table__empty">
                  No request through the Twilio-compatible API among the recent events.
                </td>
              </tr>
            ) : (
              usage.map((u) => (
                <tr key={u.client}>
                  <td className="mono">{u.client}</td>
                  <td className="num">{formatCount(u.accepted)}</td>
                  <td className="num">{formatCount(u.rejected)}</td>
                  <td className="num">{formatCount(u.blocked)}</td>
                  <td className="num">{formatCount(u.unattributed)}</td>
                </tr>
              ))
            )}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}
