// Outside review of issue 13: the public can make the server redo expensive work at will. FAILS on purpose on the code
// as reviewed. Measured with bench/dashboard's data (two years of metering, 100 instances, 5,000 accounts), one
// anonymous GET costs, synchronously on the event loop (better-sqlite3):
//   /.well-known/chatonsinfos/files.properties  ~1,160 ms (24 months of figures, the accounts read whole each month)
//   /transparency/report/<this year>            ~575 ms  (12 months); the .pdf address computes the same before
//                                                           looking at the printed file, and before a 503
//   /open-data/usage-per-service/latest.csv     ~40 ms
// Nothing keeps these answers (the Cache-Control only helps a cache in front, which a client can go around) and no
// rate limit covers them: a handful of requests per second stalls the control plane (pages, API, reconciler timers).
// Kind, not timing (other tests share the machine): repeating the same public address must not repeat the work. The
// work is counted as full reads of the accounts (publication/figures.ts liveAccounts), each month's figures doing
// one. A cache or a limit answering 429 would both pass.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { testConfig } from '../helpers.js';
import { generate } from '../publication/fixture.js';

t.test('repeating a public address does not redo its figures', async (t) => {
  const config = testConfig(t, { chromium: '/nonexistent/chromium' });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  await generate(rt, 20261203);
  const client = rt.db.$client;
  let reads = 0;
  const prepare = client.prepare.bind(client);
  (client as { prepare: typeof client.prepare }).prepare = ((sql: string) => {
    if (/FROM accounts a JOIN instances i/.test(sql)) reads++;
    return prepare(sql);
  }) as typeof client.prepare;
  const year = new Date().getUTCFullYear();
  const urls = [
    '/.well-known/chatonsinfos/files.properties',
    `/transparency/report/${year}`,
    `/transparency/report/${year - 1}`,
    `/transparency/report/${year - 1}.pdf`,
    '/open-data/usage-per-service/latest.csv',
  ];
  for (const url of urls) {
    const first = await rt.app.inject({ method: 'GET', url });
    reads = 0;
    const again: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await rt.app.inject({ method: 'GET', url });
      again.push(r.statusCode);
    }
    t.equal(reads, 0, `${url} (${first.statusCode}): 5 more anonymous GETs read the accounts ${reads} times (answers ${again.join(',')})`);
  }
});
