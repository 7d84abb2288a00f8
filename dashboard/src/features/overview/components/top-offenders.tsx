import { useId, useState } from 'react';

import { ErrorAlert } from '@/components/error-alert';
import { Panel } from '@/components/panel';
import { useClient } from '@/features/overview/api/get-client';
import { formatCount, formatSeconds } from '@/lib/format';
import type { TopClient, TopNumber } from '@/lib/types';

function ClientQuota({ ip, to, id }: { ip: string; to: string; id: string }) {
  const client = useClient(ip, to, true);
  if (client.isPending) return <p id={id} role="status">Loading quota…</p>;
  if (client.isError) return <div id={id}><ErrorAlert error={client.error} /></div>;
  return (
    <ul id={id} className="quota-list" aria-label={`Quota of ${ip} → ${to}`}>
      {client.data.windows.map((w) => (
        <li key={w.name}>
          <strong>{w.name}</strong>: {w.used}/{w.limit} used, {w.remaining} left
          {w.frees_in > 0 && <>, frees in {formatSeconds(w.frees_in)}</>}
        </li>
      ))}
    </ul>
  );
}

function ClientRow({ client }: { client: TopClient }) {
  const [open, setOpen] = useState(false);
  const quotaId = useId();
  return (
    <>
      <tr>
        <td className="mono">{client.ip}</td>
        <td className="mono">{client.to}</td>
        <td className="num">{formatCount(client.rejections)}</td>
        <td className="num">
          <button
            type="button"
            className="button button--small"
            aria-expanded={open}
            aria-controls={open ? quotaId : undefined}
            aria-label={`${open ? 'Hide' : 'Show'} quota of ${client.ip} → ${client.to}`}
            onClick={() => setOpen((o) => !o)}
          >
            {open ? 'Hide' : 'Quota'}
          </button>
        </td>
      </tr>
      {open && (
        <tr>
          <td colSpan={4}>
            <ClientQuota ip={client.ip} to={client.to} id={quotaId} />
          </td>
        </tr>
      )}
    </>
  );
}

export function TopClients({ clients }: { clients: TopClient[] }) {
  return (
    <Panel title="Top offending clients">
      <div className="table-scroll" role="region" aria-label="Top offending clients, last hour" tabIndex={0}>
        <table className="table">
          <caption className="visually-hidden">Top offending clients, last hour</caption>
          <thead>
            <tr>
              <th scope="col">IP</th>
              <th scope="col">Number</th>
              <th scope="col" className="num">
                Rejections
              </th>
              <th scope="col" className="num">
                <span className="visually-hidden">Details</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {clients.length === 0 ? (
              <tr>
                <td colSpan={4} className="table__empty">
                  No rejections in the last hour.
                </td>
              </tr>
            ) : (
              clients.map((c) => <ClientRow key={`${c.ip} ${c.to}`} client={c} />)
            )}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}

export function TopNumbers({ numbers }: { numbers: TopNumber[] }) {
  return (
    <Panel title="Top offending numbers">
      <div className="table-scroll" role="region" aria-label="Top offending numbers, last hour" tabIndex={0}>
        <table className="table">
          <caption className="visually-hidden">Top offending numbers, last hour</caption>
          <thead>
            <tr>
              <th scope="col">Number</th>
              <th scope="col" className="num">
                Rejections
              </th>
            </tr>
          </thead>
          <tbody>
            {numbers.length === 0 ? (
              <tr>
                <td colSpan={2} className="table__empty">
                  No rejections in the last hour.
                </td>
              </tr>
            ) : (
              numbers.map((n) => (
                <tr key={n.to}>
                  <td className="mono">{n.to}</td>
                  <td className="num">{formatCount(n.rejections)}</td>
                </tr>
              ))
            )}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}
