/**
 * The policy text every event records (README, "Policy"): either the seed's rule alone as plain
 * windows (`3/1m,10/1d`) or rules separated by `;`, e.g.
 * `client(ip,to)=3/1m,10/1d; number(to)=5/1m; range(prefix:7)~shadow=50/1h; ipv6=/56`.
 * This reads it back so the dashboard can show the rules in force without a second source.
 */

export type RuleMode = 'enforce' | 'shadow';

export interface RuleWindow {
  name: string;
  limit: number;
}

export interface PolicyRule {
  name: string;
  /** Dimensions as the file names them (`ip`, `to`, `country`, `prefix:7`). */
  key: string[];
  mode: RuleMode;
  windows: RuleWindow[];
}

export interface ParsedPolicy {
  rules: PolicyRule[];
  /** Client settings other than the defaults, e.g. `ipv6=/56`. */
  clients: string[];
}

/** The rule whose windows keep their bare names (`1m`); every other rule's are `rule.1m`. */
export const SEED_RULE = 'client';

function parseWindows(text: string): RuleWindow[] | null {
  const windows: RuleWindow[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    const match = /^(\d+)\/(\d+[smhd])$/.exec(part);
    if (!match) return null;
    windows.push({ limit: Number(match[1]), name: match[2] ?? '' });
  }
  return windows.length > 0 ? windows : null;
}

/** Null when the text is not a policy text (an older or foreign event). */
export function parsePolicyText(text: string): ParsedPolicy | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  if (!trimmed.includes('=')) {
    const windows = parseWindows(trimmed);
    return windows ? { rules: [{ name: SEED_RULE, key: ['ip', 'to'], mode: 'enforce', windows }], clients: [] } : null;
  }
  const rules: PolicyRule[] = [];
  const clients: string[] = [];
  for (const part of trimmed.split(';').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([a-z0-9_-]+)\(([^)]*)\)(~shadow)?=(.+)$/.exec(part);
    if (match) {
      const windows = parseWindows(match[4] ?? '');
      if (!windows) return null;
      rules.push({
        name: match[1] ?? '',
        key: (match[2] ?? '').split(','),
        mode: match[3] ? 'shadow' : 'enforce',
        windows,
      });
    } else if (/^(ipv4|ipv6|allow)=/.test(part)) {
      clients.push(part);
    } else {
      return null;
    }
  }
  return rules.length > 0 ? { rules, clients } : null;
}

/** The rule a window name belongs to: `number.1m` → `number`, a bare `1m` → `client`. */
export function ruleOfWindow(window: string): string {
  const dot = window.lastIndexOf('.');
  return dot < 0 ? SEED_RULE : window.slice(0, dot);
}
