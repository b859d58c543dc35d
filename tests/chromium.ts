// Chromium beside Docker. Chromium aborts navigations and drops its connections when the host's network interfaces
// change (net::ERR_NETWORK_CHANGED), and Docker adds and removes interfaces for every test running beside this one: a
// resident would press "reload". These helpers do that a bounded number of times, and only for that cause, so that a
// real failure (a refused certificate, a page that never loads) still fails the test.
import { createRequire } from 'node:module';
import { chromium, type Browser, type Page } from 'playwright-core';

const axeSource: string = createRequire(import.meta.url)('axe-core').source;

// Chromium also restarts a navigation itself when the network changes under it: playwright then reports the first
// one "interrupted by another navigation" to the same address.
const CHANGED = /ERR_NETWORK_CHANGED|ERR_NETWORK_IO_SUSPENDED|is interrupted by another navigation/;

/** `step` once more when it failed because the network changed under Chromium, at most `attempts` times in all. */
export async function steadily<T>(step: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try { return await step(); } catch (err) {
      if (attempt >= attempts || !CHANGED.test(String((err as Error)?.message ?? err))) throw err;
    }
  }
}

/** What Chromium says when it navigates to `url`: 'loaded', or its error message (a change of network retried). */
export async function navigationOutcome(page: Page, url: string): Promise<string> {
  return steadily(() => page.goto(url).then(() => 'loaded', (err: Error) => {
    if (CHANGED.test(err.message)) throw err;
    return err.message;
  }));
}

/** Open `url` and wait until `ready` holds; a change of network on the way (the page, one of its resources or its
 * WebSocket cut) reloads it, a bounded number of times. `ready` gets `timeoutMs` each time. */
export async function openSteadily(page: Page, url: string, ready: (timeoutMs: number) => Promise<unknown>, timeoutMs = 30_000): Promise<void> {
  let changed = false;
  const onFail = (r: { failure(): { errorText: string } | null }) => { if (CHANGED.test(r.failure()?.errorText ?? '')) changed = true; };
  page.on('requestfailed', onFail);
  try {
    for (let attempt = 1; ; attempt++) {
      changed = false;
      try {
        await steadily(() => page.goto(url));
        await ready(timeoutMs);
        return;
      } catch (err) {
        if (attempt >= 4 || !(changed || CHANGED.test(String((err as Error)?.message ?? err)))) throw err;
      }
    }
  } finally {
    page.off('requestfailed', onFail);
  }
}

/** axe-core's WCAG 2.1 A/AA and best-practice violations on the page as it is now, each with the nodes it names. */
export async function axeViolations(page: Page): Promise<{ id: string; impact: string; nodes: string[] }[]> {
  await page.addScriptTag({ content: axeSource });
  return page.evaluate(async () => {
    type R = { violations: { id: string; impact: string; nodes: { target: string[] }[] }[] };
    const r = await (window as unknown as { axe: { run(o: unknown): Promise<R> } }).axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
}

/** The arguments every test's Chromium runs with: no sandbox (tests run as root in a container), and none of the
 * browser's own traffic (updates, sync, background fetches), so that what a page pulls is all that is counted. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** One Chromium for a test file, closed with the test. */
export async function launchChromium(t: { teardown(fn: () => unknown): void }): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  return browser;
}

/** The budget of every page a resident opens, the pad editor included (issue 13, "Sobriety"): bytes on the wire. */
export const PAGE_BUDGET = 100 * 1024;

export interface Weight {
  /** Bytes Chromium received for the page and everything it loaded, as sent (compressed, headers included):
   * CDP's Network.loadingFinished encodedDataLength, summed. */
  bytes: number;
  /** Every address asked for (requests and WebSockets) whose origin is not the page's own. */
  foreign: string[];
  /** Address → bytes, heaviest first, to say what a page spends its budget on. */
  parts: [string, number][];
}

/** Open `url` in `page` (its cache off, so nothing comes from an earlier visit, unless `cached`: then what the
 * page's earlier visits kept is not pulled again) and weigh what Chromium pulls until `ready` resolves (by default:
 * the load event, then every request it started finished). */
export async function weighPage(page: Page, url: string, ready?: () => Promise<unknown>, { cached = false } = {}): Promise<Weight> {
  const origin = new URL(url).origin;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  // Every byte counted as a first visit would pull it: nothing from Chromium's cache (a context may be reused).
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: !cached });
  const urls = new Map<string, string>();
  const pending = new Set<string>();
  const parts = new Map<string, number>();
  const foreign: string[] = [];
  const note = (u: string) => { if (!u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin && !foreign.includes(u)) foreign.push(u); };
  cdp.on('Network.requestWillBeSent', (e: { requestId: string; request: { url: string } }) => {
    urls.set(e.requestId, e.request.url);
    if (!e.request.url.startsWith('data:')) pending.add(e.requestId);
    note(e.request.url);
  });
  cdp.on('Network.webSocketCreated', (e: { url: string }) => note(e.url.replace(/^ws/, 'http')));
  cdp.on('Network.loadingFailed', (e: { requestId: string }) => pending.delete(e.requestId));
  cdp.on('Network.loadingFinished', (e: { requestId: string; encodedDataLength: number }) => {
    pending.delete(e.requestId);
    const u = urls.get(e.requestId) ?? e.requestId;
    parts.set(u, (parts.get(u) ?? 0) + e.encodedDataLength);
  });
  try {
    // A navigation Chromium restarts (the network changed under it) is weighed from its new start.
    await steadily(() => { parts.clear(); pending.clear(); foreign.length = 0; return page.goto(url); });
    if (ready) await ready();
    // The load event may reach the test before this session has heard the last loadingFinished: wait for them (a bound).
    for (const deadline = Date.now() + 10_000; pending.size && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
  } finally {
    await cdp.detach().catch(() => undefined);
  }
  const sorted = [...parts].sort((a, b) => b[1] - a[1]);
  return { bytes: sorted.reduce((s, [, n]) => s + n, 0), foreign, parts: sorted };
}
