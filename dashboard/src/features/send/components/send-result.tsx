import { formatSeconds } from '@/lib/format';
import type { LimitState, SmsAccepted, ViolatedWindow } from '@/lib/types';
import type { RateLimited } from '@/features/send/api/send-sms';
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
      <p className="muted small">Retry-After was {formatSeconds(limited.retryAfter)}.</p>
      <LimitsTable limits={limited.limits} label="Quota per window" />
    </div>
  );
}
