// The scheduler: passes never overlap, requests during a pass are served by one pass after it, and a pass that
// fails (rejects) leaves nothing behind: later requests get passes of their own, and fire-and-forget passes never
// become unhandled rejections (which end a Node 20 process).
import t from 'tap';
import fc from 'fast-check';
import { createScheduler } from '../../src/orchestrator/scheduler.js';

t.test('after any sequence of failing and succeeding passes, every request is served by a pass that starts after it', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(fc.record({ fails: fc.boolean(), requests: fc.integer({ min: 1, max: 4 }) }), { minLength: 1, maxLength: 8 }), async (rounds) => {
    const outcomes = rounds.map((r) => r.fails);
    let started = 0, active = 0, overlap = false;
    const s = createScheduler(async () => {
      const n = started++;
      active++; if (active > 1) overlap = true;
      await new Promise((r) => setTimeout(r, 2));
      active--;
      if (outcomes[n % outcomes.length]) throw new Error(`pass ${n} failed`);
    });
    for (const r of rounds) {
      const asked = started;
      const waits = Array.from({ length: r.requests }, () => s.pass('test').then(() => 'ok', (e: Error) => e.message));
      const results = await Promise.all(waits);
      // Served: a pass started after the request (the one running when it came in does not count).
      if (started <= asked) return false;
      for (const x of results) if (x !== 'ok' && !/^pass \d+ failed$/.test(x)) return false;
      const failedNumber = results.filter((x) => x !== 'ok').map((x) => Number(/\d+/.exec(x)![0]));
      if (failedNumber.some((n) => n < asked)) return false;
    }
    await s.stop();
    return !overlap;
  }), { numRuns: 60, seed: 20261202 });
});

t.test('timer and retry passes that fail are not unhandled rejections', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => { process.off('unhandledRejection', onUnhandled); });
  let n = 0;
  const s = createScheduler(async () => { n++; throw new Error('engine away'); });
  s.every(0.02);
  s.retryIn(0.01);
  await new Promise((r) => setTimeout(r, 150));
  await s.stop();
  t.ok(n >= 3, `${n} failing passes ran`);
  t.same(unhandled, [], 'none surfaced as an unhandled rejection');
});
