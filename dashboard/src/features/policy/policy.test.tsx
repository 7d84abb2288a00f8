import { screen, within } from '@testing-library/react';
import { http, HttpResponse } from 'msw';

import { emitLive } from '@/testing/fake-event-source';
import { parsePolicyText, ruleOfWindow } from '@/features/policy/lib/policy-text';
import { offendersByRule, shadowCounts, summarizeBlocked } from '@/features/policy/lib/summarize';
import { makeEvent, page } from '@/testing/fixtures';
import { renderApp } from '@/testing/render';
import { server } from '@/testing/server';

const FOUR_RULES = 'client(ip,to)=3/1m,10/1d; number(to)=5/1m,20/1d; source(ip)=30/1m,300/1d; range(prefix:7)~shadow=50/1h';

describe('policy text', () => {
  it('reads the seed rule alone and a policy of several rules back', () => {
    expect(parsePolicyText('3/1m,10/1d')).toEqual({
      rules: [{ name: 'client', key: ['ip', 'to'], mode: 'enforce', windows: [{ name: '1m', limit: 3 }, { name: '1d', limit: 10 }] }],
      clients: [],
    });
    const policy = parsePolicyText(`${FOUR_RULES}; ipv6=/56`);
    expect(policy?.rules.map((r) => [r.name, r.key.join('+'), r.mode])).toEqual([
      ['client', 'ip+to', 'enforce'],
      ['number', 'to', 'enforce'],
      ['source', 'ip', 'enforce'],
      ['range', 'prefix:7', 'shadow'],
    ]);
    expect(policy?.rules[3]?.windows).toEqual([{ name: '1h', limit: 50 }]);
    expect(policy?.clients).toEqual(['ipv6=/56']);
    expect(parsePolicyText('')).toBeNull();
    expect(parsePolicyText('whatever=1')).toBeNull();
    expect(parsePolicyText('number(to)=lots')).toBeNull();
  });

  it('names the rule of a window the way events name windows', () => {
    expect(ruleOfWindow('1m')).toBe('client');
    expect(ruleOfWindow('number.1m')).toBe('number');
  });
});

describe('policy summaries', () => {
  const events = [
    makeEvent({ outcome: 'rejected', ip: '192.0.2.1', to: '+14155550100', violated: ['number.1m'] }),
    makeEvent({ outcome: 'rejected', ip: '192.0.2.2', to: '+14155550100', violated: ['number.1m', 'number.1d', '1m'] }),
    makeEvent({ outcome: 'rejected', ip: '192.0.2.1', to: '+14155550101', violated: ['source.1m'] }),
    makeEvent({ outcome: 'blocked', to: '+5350000000', reason: 'destination-country', country: 'CU' }),
    makeEvent({ outcome: 'blocked', to: '+449090000000', reason: 'number-type', country: 'GB' }),
    makeEvent({ outcome: 'blocked', to: '+449090000001', reason: 'number-type', country: 'GB' }),
    makeEvent({ outcome: 'accepted', shadow_violated: ['range.1h'] }),
  ];

  it('counts refusals per rule once per request, with top sources and numbers', () => {
    const offenders = offendersByRule(events, ['client', 'number', 'source']);
    expect(offenders.map((o) => [o.rule, o.refusals])).toEqual([
      ['client', 1],
      ['number', 2],
      ['source', 1],
    ]);
    expect(offenders[1]?.numbers).toEqual([{ key: '+14155550100', count: 2 }]);
    expect(offenders[1]?.sources).toEqual([
      { key: '192.0.2.1', count: 1 },
      { key: '192.0.2.2', count: 1 },
    ]);
  });

  it('counts blocked requests by reason and country, and shadow rules would-be refusals', () => {
    const blocked = summarizeBlocked(events);
    expect(blocked.total).toBe(3);
    expect(blocked.byReason).toEqual([
      { key: 'number-type', count: 2 },
      { key: 'destination-country', count: 1 },
    ]);
    expect(blocked.byCountry).toEqual([
      { key: 'GB', count: 2 },
      { key: 'CU', count: 1 },
    ]);
    expect(shadowCounts(events)).toEqual([{ key: 'range', count: 1 }]);
  });
});

describe('Overview policy panels', () => {
  it('shows the rules in force with their mode, blocked requests and refusals per rule, live', async () => {
    server.use(
      http.get('/api/events', ({ request }) => {
        const rejected = new URL(request.url).searchParams.get('outcome') === 'rejected';
        const violation = makeEvent({ outcome: 'rejected', ip: '192.0.2.9', to: '+14155550177', violated: ['number.1m'], policy: FOUR_RULES });
        const blocked = makeEvent({ outcome: 'blocked', reason: 'number-type', country: 'GB', policy: FOUR_RULES });
        return HttpResponse.json(page(rejected ? [violation] : [blocked, violation]));
      }),
    );
    renderApp('/');
    const rules = await screen.findByRole('table', { name: 'Rules in force' });
    expect(await within(rules).findByRole('row', { name: 'number to 5 per 1m, 20 per 1d Enforce —' })).toBeInTheDocument();
    expect(within(rules).getByRole('row', { name: 'range prefix:7 50 per 1h Shadow 0' })).toBeInTheDocument();

    expect(within(screen.getByRole('list', { name: 'Blocked by reason' })).getByText(/Number type/)).toBeInTheDocument();
    expect(within(screen.getByRole('list', { name: 'Blocked by country' })).getByText('GB')).toBeInTheDocument();
    const numbers = screen.getByRole('list', { name: 'Top numbers refused by number' });
    expect(within(numbers).getByRole('listitem')).toHaveTextContent('+14155550177: 1');

    // A live event a shadow rule would have refused counts for that rule at once.
    await emitLive('sms', makeEvent({ outcome: 'accepted', shadow_violated: ['range.1h'], policy: FOUR_RULES }));
    expect(within(rules).getByRole('row', { name: 'range prefix:7 50 per 1h Shadow 1' })).toBeInTheDocument();
    await emitLive('sms', makeEvent({ outcome: 'rejected', ip: '192.0.2.44', to: '+14155550188', violated: ['source.1m'], policy: FOUR_RULES }));
    expect(within(screen.getByRole('list', { name: 'Top sources refused by source' })).getByRole('listitem')).toHaveTextContent('192.0.2.44: 1');
  });
});
