// Browser smoke test: drives the built dashboard in headless Debian Chromium against an
// already-running `smsgate serve` (which serves dist/ at /).
//
//   SMSGATE_URL=http://127.0.0.1:3000 npm run e2e
//
// Env: SMSGATE_URL (default http://127.0.0.1:3000), SMSGATE_ADMIN_TOKEN (log in through the
// login screen first), SCREENSHOT_DIR (default e2e/screenshots), CHROMIUM (default
// /usr/bin/chromium). Assumes the default policy of 3/1m per (IP, number).
// Prints `e2e: N passed, N failed[, N skipped]` and exits non-zero on any failure.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = (process.env.SMSGATE_URL ?? 'http://127.0.0.1:3000').replace(/\/$/, '');
const TOKEN = process.env.SMSGATE_ADMIN_TOKEN ?? '';
const SHOTS = process.env.SCREENSHOT_DIR ?? fileURLToPath(new URL('./screenshots', import.meta.url));
const EXECUTABLE = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];
const PAGES = [
  { slug: 'overview', link: 'Overview', heading: 'Overview' },
  { slug: 'live', link: 'Live log', heading: 'Live log' },
  { slug: 'send', link: 'Send test SMS', heading: 'Send a test SMS' },
  { slug: 'history', link: 'History', heading: 'History' },
];
/** How soon a violation must show on the overview without a reload. */
const LIVE_WITHIN_MS = 2000;

mkdirSync(SHOTS, { recursive: true });

/** A fresh US number per run, so no earlier run's quota is in the way. */
const rand = (min, max) => min + Math.floor(Math.random() * (max - min + 1));
const NUMBER = `+1415${rand(200, 999)}${String(rand(0, 9999)).padStart(4, '0')}`;

/** @type {{ name: string, status: 'passed' | 'failed' | 'skipped' }[]} */
const results = [];
/** @type {string[]} */
const pageErrors = [];
/** What Chromium refused under the server's Content-Security-Policy. */
/** @type {string[]} */
const cspViolations = [];
/** When the 429 came back, in ms: the violation must be on the overview 2 s later. */
let rejectedAt = 0;

/** @param {import('playwright-core').Page} page */
function watch(page, name) {
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    console.log(`  [${name} console] ${msg.text()}`);
    if (msg.text().includes('Content Security Policy')) cspViolations.push(`${name}: ${msg.text()}`);
  });
}

/** @param {import('playwright-core').Page} page */
async function goTo(page, { link, heading }) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: heading, exact: true }).waitFor();
}

/** @param {import('playwright-core').Page} page */
async function currentTheme(page) {
  return page.evaluate(() => document.documentElement.dataset.theme);
}

/** @param {import('playwright-core').Page} page @param {'light' | 'dark'} theme */
async function useTheme(page, theme) {
  if ((await currentTheme(page)) !== theme) {
    await page.getByRole('button', { name: `Switch to ${theme} theme` }).click();
  }
  const now = await currentTheme(page);
  if (now !== theme) throw new Error(`theme is ${now}, wanted ${theme}`);
}

/** @param {import('playwright-core').Page} page */
async function shot(page, name) {
  await page.waitForTimeout(150); // let the chart redraw after a theme change or resize
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function main() {
  const browser = await chromium.launch({ executablePath: EXECUTABLE, args: ARGS, headless: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  watch(page, 'main');
  /** @type {import('playwright-core').Page | undefined} */
  let watcher;

  /** @type {[string, () => Promise<void>][]} */
  const steps = [
    [
      'open the dashboard (and log in when a token is set)',
      async () => {
        const response = await page.goto(`${BASE}/`);
        const csp = (await response?.allHeaders())?.['content-security-policy'] ?? '';
        if (!csp.includes("frame-ancestors 'none'")) throw new Error(`no Content-Security-Policy on /: "${csp}"`);
        const login = page.getByRole('heading', { name: 'Sign in to smsgate' });
        const overview = page.getByRole('heading', { level: 1, name: 'Overview', exact: true });
        await login.or(overview).waitFor();
        if (await login.isVisible()) {
          if (!TOKEN) throw new Error('the server wants a token: set SMSGATE_ADMIN_TOKEN');
          await shot(page, 'login-light');
          await page.getByLabel('Admin token').fill(TOKEN);
          await page.getByRole('button', { name: 'Sign in' }).click();
        } else if (TOKEN) {
          console.log('  (SMSGATE_ADMIN_TOKEN is set but the server asked for no login)');
        }
        await overview.waitFor();
        await page.getByRole('status', { name: 'Live updates: Live' }).waitFor();
      },
    ],
    [
      'a second tab watches the overview live',
      async () => {
        watcher = await context.newPage();
        watch(watcher, 'watcher');
        await watcher.goto(`${BASE}/`);
        await watcher.getByRole('heading', { level: 1, name: 'Overview', exact: true }).waitFor();
        await watcher.getByRole('status', { name: 'Live updates: Live' }).waitFor();
        await watcher.getByRole('table', { name: 'Recent rate-limit violations' }).waitFor();
      },
    ],
    [
      `send 4 SMS to ${NUMBER}: 3 accepted, then a countdown`,
      async () => {
        await goTo(page, PAGES[2]);
        await page.getByRole('textbox', { name: 'Number' }).fill(NUMBER);
        await page.getByRole('textbox', { name: 'Message' }).fill('dashboard e2e smoke test');
        for (let i = 1; i <= 4; i++) {
          const [response] = await Promise.all([
            page.waitForResponse((r) => r.url().endsWith('/api/sms') && r.request().method() === 'POST'),
            page.getByRole('button', { name: 'Send', exact: true }).click(),
          ]);
          const expected = i <= 3 ? 202 : 429;
          if (response.status() !== expected) throw new Error(`send ${i}: HTTP ${response.status()}, wanted ${expected}`);
          if (i <= 3) {
            await page.getByText('Accepted', { exact: true }).waitFor();
            await page.getByRole('table', { name: 'Remaining quota per window' }).waitFor();
            const remaining = await page
              .getByRole('table', { name: 'Remaining quota per window' })
              .getByRole('row', { name: /^1m / })
              .getByRole('cell')
              .nth(1)
              .textContent();
            if (Number(remaining) !== 3 - i) throw new Error(`send ${i}: 1m remaining ${remaining}, wanted ${3 - i}`);
          }
        }
        rejectedAt = Date.now();
        await page.getByText('Rate limited', { exact: true }).waitFor();
        const timer = page.getByRole('timer', { name: 'Seconds until retry' });
        const first = Number(await timer.textContent());
        if (!(first > 0)) throw new Error(`countdown shows ${first}`);
        await page.waitForTimeout(1_200);
        const later = Number(await timer.textContent());
        if (!(later < first)) throw new Error(`countdown did not tick down (${first} → ${later})`);
        await shot(page, 'send-429-light');
      },
    ],
    [
      'the violation shows on the overview within 2 s, without a reload',
      async () => {
        if (!watcher) throw new Error('no watcher tab');
        const row = watcher
          .getByRole('table', { name: 'Recent rate-limit violations' })
          .getByRole('row', { name: new RegExp(NUMBER.replace('+', '\\+')) });
        const left = Math.max(100, LIVE_WITHIN_MS - (Date.now() - rejectedAt));
        await row.first().waitFor({ timeout: left });
        await goTo(page, PAGES[0]);
        await page
          .getByRole('table', { name: 'Recent rate-limit violations' })
          .getByRole('row', { name: new RegExp(NUMBER.replace('+', '\\+')) })
          .first()
          .waitFor({ timeout: LIVE_WITHIN_MS });
        await watcher.close();
      },
    ],
    [
      'the theme toggle switches and is remembered',
      async () => {
        const before = await currentTheme(page);
        const next = before === 'dark' ? 'light' : 'dark';
        await page.getByRole('button', { name: `Switch to ${next} theme` }).click();
        if ((await currentTheme(page)) !== next) throw new Error(`theme did not switch to ${next}`);
        await page.reload();
        await page.getByRole('heading', { level: 1, name: 'Overview', exact: true }).waitFor();
        if ((await currentTheme(page)) !== next) throw new Error('theme was not remembered across a reload');
        await page.getByRole('button', { name: `Switch to ${before} theme` }).waitFor();
      },
    ],
    [
      'screenshots of every page in light and dark',
      async () => {
        for (const theme of /** @type {const} */ (['light', 'dark'])) {
          await useTheme(page, theme);
          for (const target of PAGES) {
            await goTo(page, target);
            await shot(page, `${target.slug}-${theme}`);
          }
        }
      },
    ],
    [
      'fits a 360 px wide screen',
      async () => {
        await page.setViewportSize({ width: 360, height: 740 });
        for (const target of PAGES) {
          await goTo(page, target);
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          if (overflow > 1) throw new Error(`${target.slug}: page is ${overflow}px wider than the screen`);
          await shot(page, `${target.slug}-dark-360`);
        }
      },
    ],
    [
      'no uncaught errors in the page',
      async () => {
        if (pageErrors.length) throw new Error(pageErrors.join('\n'));
      },
    ],
    [
      'nothing the dashboard loads or runs violates its Content-Security-Policy',
      async () => {
        if (cspViolations.length) throw new Error(cspViolations.join('\n'));
      },
    ],
  ];

  let failed = false;
  for (const [name, run] of steps) {
    if (failed) {
      results.push({ name, status: 'skipped' });
      console.log(`- ${name} (skipped)`);
      continue;
    }
    const started = Date.now();
    try {
      await run();
      results.push({ name, status: 'passed' });
      console.log(`✓ ${name} (${Date.now() - started} ms)`);
    } catch (error) {
      failed = true;
      results.push({ name, status: 'failed' });
      console.log(`✗ ${name}\n  ${String(error instanceof Error ? error.message : error).split('\n').join('\n  ')}`);
      await page.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true }).catch(() => undefined);
    }
  }
  await browser.close();
}

try {
  console.log(`e2e: ${BASE} with ${EXECUTABLE}; screenshots in ${SHOTS}`);
  await main();
} catch (error) {
  results.push({ name: 'launch', status: 'failed' });
  console.log(`✗ could not run: ${error instanceof Error ? error.message : error}`);
}

const count = (status) => results.filter((r) => r.status === status).length;
const skipped = count('skipped');
console.log(`e2e: ${count('passed')} passed, ${count('failed')} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(count('failed') > 0 ? 1 : 0);
