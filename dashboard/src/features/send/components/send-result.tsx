import { formatSeconds } from '@/lib/format';
import type { LimitState, SmsAccepted, ViolatedWindow } from '@/lib/types';
import type { Blocked, RateLimited } from '@/features/send/api/send-sms';
import { ruleOfWindow } from '@/features/policy/lib/policy-text';
import { useCountdown } from '@/hooks/use-countdown';

function LimitsTable({ limits, label }: { limits: LimitState[]; label: string }) {
  if (limits.length === 0) return null;
  return (
    <table className="table table--compact">
      <caption>{label}</caption>
      <thead>
        <tr>
          <th scope="col">Window</th>
          <th scope="col" className="num">
            Limit
          </th>
          <th scope="col" className="num">
            Remaining
          </th>
          <th scope="col" className="num">
            Resets in
          </th>
        </tr>
      </thead>
      <tbody>
        {limits.map((l) => (
          <tr key={l.name}>
            <th scope="row">{l.name}</th>
            <td className="num">{l.limit}</td>
            <td className="num">{l.remaining}</td>
            <td className="num">{formatSeconds(l.reset_after)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function AcceptedResult({ result }: { result: SmsAccepted }) {
  return (
    <div className="result result--accepted">
      <p className="result__headline">
        <strong>Accepted</strong> — sent to <span className="mono">{result.to}</span> as{' '}
        {result.segments === 1 ? '1 segment' : `${result.segments} segments`}.
      </p>
      <p className="muted small">
        ID <span className="mono">{result.id}</span>
      </p>
      <LimitsTable limits={result.limits} label="Remaining quota per window" />
    </div>
  );
}

function describeViolated(violated: ViolatedWindow[]): string | null {
  if (violated.length === 0) return null;
  return violated.map((v) => `${v.limit} per ${v.name}`).join(', ');
}

/** The wall-clock time `seconds` after `from`, as the operator's clock shows it. */
function clockAt(from: number, seconds: number): string {
  return new Date(from + seconds * 1000).toLocaleTimeString();
}

/** Which rule refused, with each full window and when it frees. */
function RefusingRules({ violated, sentAt }: { violated: ViolatedWindow[]; sentAt: number }) {
  if (violated.length === 0) return null;
  return (
    <table className="table table--compact">
      <caption>Refused by</caption>
      <thead>
        <tr>
          <th scope="col">Rule</th>
          <th scope="col">Window</th>
          <th scope="col" className="num">
            Limit
          </th>
          <th scope="col" className="num">
            Frees in
          </th>
          <th scope="col">Frees at</th>
        </tr>
      </thead>
      <tbody>
        {violated.map((v) => (
          <tr key={v.name}>
            <th scope="row" className="mono">
              {v.rule ?? ruleOfWindow(v.name)}
            </th>
            <td className="mono">{v.name}</td>
            <td className="num">{v.limit}</td>
            <td className="num">{formatSeconds(v.retry_after)}</td>
            <td>{clockAt(sentAt, v.retry_after)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const BLOCK_REASONS: Record<string, string> = {
  'destination-country': 'smsgate does not send to this country',
  'number-type': 'smsgate does not send to this type of number',
  client: 'this client may not send',
};

/** A 403: the policy refuses the destination or the client outright; nothing was counted. */
export function BlockedResult({ blocked }: { blocked: Blocked }) {
  return (
    <div className="result result--rejected">
      <p className="result__headline">
        <strong>Blocked</strong> — {BLOCK_REASONS[blocked.reason] ?? blocked.detail ?? blocked.reason}.
      </p>
      {blocked.detail && <p className="muted small">{blocked.detail}</p>}
      <p className="muted small">
        Reason <span className="mono">{blocked.reason}</span>
        {blocked.country && (
          <>
            , country <span className="mono">{blocked.country}</span>
          </>
        )}
        {blocked.numberType && (
          <>
            , number type <span className="mono">{blocked.numberType}</span>
          </>
        )}
        . No quota was used.
      </p>
    </div>
  );
}

/** A 429: which windows are full and a live countdown to Retry-After. */
export function RateLimitedResult({ limited, deadline }: { limited: RateLimited; deadline: number }) {
  const left = useCountdown(deadline);
  const violated = describeViolated(limited.violated);
  return (
    <div className="result result--rejected">
      <p className="result__headline">
        <strong>Rate limited</strong>
        {violated && <> — over {violated}</>}.
      </p>
      <p className="countdown" aria-live="off">
        {left > 0 ? (
          <>
            Retry in <span className="countdown__value" role="timer" aria-label="Seconds until retry">{left}</span> s
          </>
        ) : (
          'You can send again now.'
        )}
      </p>
      <p className="muted small">
        Retry-After was {formatSeconds(limited.retryAfter)}: every rule has room again at {clockAt(deadline - limited.retryAfter * 1000, limited.retryAfter)}.
      </p>
      <RefusingRules violated={limited.violated} sentAt={deadline - limited.retryAfter * 1000} />
      <LimitsTable limits={limited.limits} label="Quota per window" />
    </div>
  );
}
