// Chromium beside Docker. Chromium aborts navigations and drops its connections when the host's network interfaces
// change (net::ERR_NETWORK_CHANGED), and Docker adds and removes interfaces for every test running beside this one: a
// resident would press "reload". These helpers do that a bounded number of times, and only for that cause, so that a
// real failure (a refused certificate, a page that never loads) still fails the test.
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

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
