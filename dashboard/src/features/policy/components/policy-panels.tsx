import { Panel } from '@/components/panel';
import { flattenEvents, useEvents } from '@/features/events/api/get-events';
import { parsePolicyText, SEED_RULE, type PolicyRule } from '@/features/policy/lib/policy-text';
import {
  offendersByRule,
  policyInForce,
  shadowCounts,
  summarizeBlocked,
  type Count,
} from '@/features/policy/lib/summarize';
import { formatCount } from '@/lib/format';
import type { PolicyWindow } from '@/lib/types';

const REASONS: Record<string, string> = {
  'destination-country': 'Destination country',
  'number-type': 'Number type',
  client: 'Denied client',
};

/** The seed's rule when no event has told us more: the projector's configured windows. */
function seedRule(policy: PolicyWindow[]): PolicyRule[] {
  if (policy.length === 0) return [];
  return [{ name: SEED_RULE, key: ['ip', 'to'], mode: 'enforce', windows: policy.map((w) => ({ name: w.name, limit: w.limit })) }];
}

function CountList({ label, counts, empty }: { label: string; counts: Count[]; empty: string }) {
  if (counts.length === 0) return <p className="muted small">{empty}</p>;
  return (
    <ul className="quota-list" aria-label={label}>
      {counts.map((c) => (
        <li key={c.key}>
          <span className="mono">{c.key}</span>: {formatCount(c.count)}
        </li>
      ))}
    </ul>
  );
}

/**
 * The rules in force with their mode, blocked requests by reason and country, and the sources
 * and numbers each rule refused most, all from the recent events the dashboard keeps live.
 */
export function PolicyPanels({ fallback }: { fallback: PolicyWindow[] }) {
  const all = useEvents('all');
  const rejected = useEvents('rejected');
  const recent = flattenEvents(all.data);
  const violations = flattenEvents(rejected.data);
  const text = policyInForce(recent) ?? policyInForce(violations);
  const parsed = text ? parsePolicyText(text) : null;
  const rules = parsed?.rules ?? seedRule(fallback);
  const shadow = new Map(shadowCounts(recent).map((c) => [c.key, c.count]));
  const offenders = offendersByRule(violations, rules.map((r) => r.name));
  const blocked = summarizeBlocked(recent);

  return (
    <>
      <Panel title="Rules in force" className="panel--wide">
        <div className="table-scroll" role="region" aria-label="Rules in force" tabIndex={0}>
          <table className="table">
            <caption className="visually-hidden">Rules in force</caption>
            <thead>
              <tr>
                <th scope="col">Rule</th>
                <th scope="col">Counts per</th>
                <th scope="col">Limits</th>
                <th scope="col">Mode</th>
                <th scope="col" className="num">
                  Would-be refusals
                </th>
              </tr>
            </thead>
            <tbody>
              {rules.length === 0 ? (
                <tr>
                  <td colSpan={5} className="table__empty">
                    No policy known yet.
                  </td>
                </tr>
              ) : (
                rules.map((rule) => (
                  <tr key={rule.name}>
                    <th scope="row" className="mono">
                      {rule.name}
                    </th>
                    <td className="mono">{rule.key.join(' + ')}</td>
                    <td>{rule.windows.map((w) => `${w.limit} per ${w.name}`).join(', ')}</td>
                    <td>
                      <span className={`badge badge--${rule.mode}`}>{rule.mode === 'shadow' ? 'Shadow' : 'Enforce'}</span>
                    </td>
                    <td className="num">{rule.mode === 'shadow' ? formatCount(shadow.get(rule.name) ?? 0) : '—'}</td>
                  </tr>
                ))
              )}
            </tbody>
          </table>
        </div>
        {parsed && parsed.clients.length > 0 && <p className="muted small">Clients: {parsed.clients.join('; ')}</p>}
      </Panel>

      <Panel title="Blocked requests">
        <p>
          <strong>{formatCount(blocked.total)}</strong> blocked among the {formatCount(recent.length)} most recent events.
        </p>
        <h3 className="small">By reason</h3>
        <CountList
          label="Blocked by reason"
          counts={blocked.byReason.map((c) => ({ ...c, key: REASONS[c.key] ?? c.key }))}
          empty="None blocked."
        />
        <h3 className="small">By country</h3>
        <CountList label="Blocked by country" counts={blocked.byCountry} empty="None blocked." />
      </Panel>

      <Panel title="Refusals per rule">
        {offenders.length === 0 ? (
          <p className="muted small">No rule has refused a recent request.</p>
        ) : (
          offenders.map((o) => (
            <section key={o.rule} aria-label={`Refusals by rule ${o.rule}`}>
              <h3 className="small">
                <span className="mono">{o.rule}</span>: {formatCount(o.refusals)} refused
              </h3>
              <p className="muted small">Sources</p>
              <CountList label={`Top sources refused by ${o.rule}`} counts={o.sources} empty="—" />
              <p className="muted small">Numbers</p>
              <CountList label={`Top numbers refused by ${o.rule}`} counts={o.numbers} empty="—" />
            </section>
          ))
        )}
      </Panel>
    </>
  );
}
