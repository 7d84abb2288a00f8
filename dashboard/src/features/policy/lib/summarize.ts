/**
 * What the policy panels show, derived from the recent events the dashboard already holds
 * (the live lists, kept current over SSE): blocked requests by reason and by country, and per
 * rule the sources (IPs) and numbers it refused most.
 */

import { ruleOfWindow } from '@/features/policy/lib/policy-text';
import type { SmsEvent } from '@/lib/types';

export interface Count {
  key: string;
  count: number;
}

export interface RuleOffenders {
  rule: string;
  /** Refusals by this rule; a request refused by two windows of one rule counts once. */
  refusals: number;
  sources: Count[];
  numbers: Count[];
}

export interface BlockedSummary {
  total: number;
  byReason: Count[];
  byCountry: Count[];
}

/** Most first, then by key so equal counts keep a stable order. */
function ranked(counts: Map<string, number>, top: number): Count[] {
  return [...counts.entries()]
    .map(([key, count]) => ({ key, count }))
    .sort((a, b) => b.count - a.count || a.key.localeCompare(b.key))
    .slice(0, top);
}

const bump = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

export function summarizeBlocked(events: SmsEvent[], top = 10): BlockedSummary {
  const reasons = new Map<string, number>();
  const countries = new Map<string, number>();
  let total = 0;
  for (const event of events) {
    if (event.outcome !== 'blocked') continue;
    total += 1;
    bump(reasons, event.reason ?? 'unknown');
    bump(countries, event.country ?? 'unknown');
  }
  return { total, byReason: ranked(reasons, top), byCountry: ranked(countries, top) };
}

/** Rules in the order they first appear in `order` (the policy's), then any others. */
export function offendersByRule(events: SmsEvent[], order: string[] = [], top = 5): RuleOffenders[] {
  const perRule = new Map<string, { refusals: number; sources: Map<string, number>; numbers: Map<string, number> }>();
  for (const event of events) {
    if (event.outcome !== 'rejected') continue;
    for (const rule of new Set(event.violated.map(ruleOfWindow))) {
      let entry = perRule.get(rule);
      if (!entry) {
        entry = { refusals: 0, sources: new Map(), numbers: new Map() };
        perRule.set(rule, entry);
      }
      entry.refusals += 1;
      bump(entry.sources, event.ip);
      bump(entry.numbers, event.to);
    }
  }
  const position = (rule: string) => {
    const at = order.indexOf(rule);
    return at < 0 ? order.length : at;
  };
  return [...perRule.entries()]
    .sort(([a], [b]) => position(a) - position(b) || a.localeCompare(b))
    .map(([rule, e]) => ({ rule, refusals: e.refusals, sources: ranked(e.sources, top), numbers: ranked(e.numbers, top) }));
}

/** Would-be refusals of shadow rules per rule, from `shadow_violated`. */
export function shadowCounts(events: SmsEvent[]): Count[] {
  const counts = new Map<string, number>();
  for (const event of events) {
    for (const rule of new Set((event.shadow_violated ?? []).map(ruleOfWindow))) bump(counts, rule);
  }
  return ranked(counts, Number.MAX_SAFE_INTEGER);
}

/** The policy text of the newest event that carries one. */
export function policyInForce(events: SmsEvent[]): string | null {
  for (const event of events) if (event.policy) return event.policy;
  return null;
}
