// Account operations against a service that misbehaves on purpose (built here from a manifest written by the test):
// one that sleeps for ever, one that prints without end, an export that fails midway. None may stop the upkeep
// loop, hold a request, or pass for a success. And the README's flow: create with ?wait=true, then add an account;
// an account asked for while its instance is still starting is queued (202) and created once it is up.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { OK_OP, busyboxService, runtimeWithService } from '../test-service.js';
import { and, eq } from 'drizzle-orm';
import { waitFor } from '../helpers.js';
import { accounts, instances, operations } from '../../src/db/schema.js';

const ok = OK_OP;
const manifest = busyboxService('unruly', {
  name: { fr: 'Service indocile', en: 'Unruly service' },
  description: { fr: 'Ses opérations de compte se bloquent, bavardent ou échouent.', en: 'Its account operations hang, babble or fail.' },
  // A start period, so that "starting" lasts long enough to ask for an account meanwhile.
  health: { command: ['/bin/sh', '-c', 'test -e /tmp/up || { sleep 3; touch /tmp/up; exit 1; }; wget -q -O /dev/null http://127.0.0.1:8080/index.html'], intervalSeconds: 1, timeoutSeconds: 5, retries: 10, startPeriodSeconds: 10 },
  accounts: {
    adapter: 'exec',
    operations: {
      create: { exec: ok }, setPassword: { exec: ok }, resume: { exec: ok }, setQuota: { exec: ok }, delete: { exec: ok },
      suspend: { exec: ['/bin/sh', '-c', 'cat >/dev/null; exec sleep 100000'] },
      usage: { exec: ['/bin/sh', '-c', 'cat >/dev/null; exec yes cattery'] },
      export: { exec: ['/bin/sh', '-c', 'cat >/dev/null; echo half-a-tar; exit 3'] },
    },
  },
});

t.test('hung, endless and failing account operations are bounded and never pass for a success', async (t) => {
  const { rt, config } = await runtimeWithService(t, manifest, { withCatalog: true, accountLimits: { timeoutMs: 1500, maxBytes: 64 * 1024 } });
  const { app } = rt;

  // Asked while the instance is still starting: queued, not failed; created by the timer once it is up.
  const early = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'unruly', slug: 'early' } });
  t.equal(early.statusCode, 202);
  const queued = await app.inject({ method: 'POST', url: '/api/instances/early/accounts', payload: { username: 'camille', password: 'une phrase longue', quotaMb: 100 } });
  t.equal(queued.statusCode, 202, queued.body);
  t.equal(queued.json().state, 'pending');
  t.same(queued.json().pending, { create: true }, 'the queued first password is never shown');
  // While it waits, it is sealed (accounts/sealed.ts): neither the row nor the database's files hold it in clear.
  const waiting = rt.db.select().from(accounts).where(eq(accounts.username, 'camille')).get()!;
  t.ok(waiting.pending?.create?.sealed && waiting.pending.create.password === undefined, 'queued sealed, not in clear');
  rt.db.$client.pragma('wal_checkpoint(PASSIVE)');
  for (const f of fs.readdirSync(config.dataDir).filter((n) => n.startsWith('cattery.db'))) {
    t.notOk(fs.readFileSync(path.join(config.dataDir, f)).includes(Buffer.from('une phrase longue')), `${f} does not hold the password in clear`);
  }
  await waitFor('queued account created', async () => (await app.inject('/api/instances/early/accounts/camille')).json().state === 'active', 90_000);
  const row = rt.db.select().from(accounts).where(eq(accounts.username, 'camille')).get()!;
  t.equal(row.pending, null, 'the first password is gone from the database once applied');

  // ?wait=true: the reply comes when the instance is healthy, never while it is starting.
  const waited = await app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'unruly', slug: 'unruly' } });
  t.equal(waited.statusCode, 201, waited.body);
  t.equal(waited.json().observed, 'healthy');
  const created = await app.inject({ method: 'POST', url: '/api/instances/unruly/accounts', payload: { username: 'ana', password: 'une phrase longue', quotaMb: 100 } });
  t.equal(created.statusCode, 201, `the README's flow: an account right after ?wait=true (${created.body})`);
  // A wait that cannot succeed says so, with the reason: a new generation whose image does not exist.
  const gen = rt.db.select().from(instances).where(eq(instances.slug, 'early')).get()!.generation;
  rt.db.update(instances).set({ image: 'cattery/unruly:never-built', generation: gen + 1, observed: 'creating' }).where(eq(instances.slug, 'early')).run();
  const failing = await app.inject({ method: 'POST', url: '/api/instances/early/start?wait=true' });
  t.equal(failing.statusCode, 409, failing.body);
  t.match(failing.json().message, /not built yet.*attempts/);

  // Output without end: cut at the cap, a clear error, quickly.
  let started = Date.now();
  const usage = await app.inject('/api/instances/unruly/accounts/ana?usage=true');
  t.equal(usage.statusCode, 502, usage.body);
  t.match(usage.json(), { code: 'CATTERY_ERR_ACCOUNT_OPERATION' });
  t.ok(Date.now() - started < 30_000, `cut in ${Date.now() - started} ms`);

  // An export that fails midway: an error, never a 200 with half a tar; nothing staged is left behind.
  const exp = await app.inject('/api/instances/unruly/accounts/ana/export');
  t.equal(exp.statusCode, 502, 'a failed export is an error');
  t.notMatch(exp.body, /half-a-tar/);
  // A 5xx shows only its request id (error-handler.ts); the code says what failed, the journal why.
  t.match(exp.json(), { code: 'CATTERY_ERR_ACCOUNT_OPERATION' });
  const journal = rt.db.select().from(operations).where(and(eq(operations.instanceSlug, 'unruly'), eq(operations.kind, 'account.export'))).all();
  t.match(journal, [{ status: 'failed', error: 'exit 3' }]);

  // A suspension that hangs for ever, left to the upkeep timer: each try ends at the deadline, the loop goes on
  // (it keeps trying, and keeps serving the others: a queued create on another instance is done meanwhile).
  const acc = rt.db.select().from(accounts).where(eq(accounts.username, 'ana')).get()!;
  rt.db.update(accounts).set({ pending: { suspended: true } }).where(eq(accounts.id, acc.id)).run();
  started = Date.now();
  await waitFor('three bounded tries', () => rt.db.select().from(operations)
    .where(and(eq(operations.instanceSlug, 'unruly'), eq(operations.kind, 'account.suspend'), eq(operations.status, 'failed'))).all().length >= 3, 60_000);
  const tries = rt.db.select().from(operations).where(and(eq(operations.instanceSlug, 'unruly'), eq(operations.kind, 'account.suspend'))).all();
  t.ok(tries.every((o) => /suspend of unruly did not finish within 2 s/.test(o.error ?? '')), `each try ends at its deadline: ${tries.map((o) => o.error).join(' | ')}`);
  t.ok(Date.now() - started < 60_000);
  const late = await app.inject({ method: 'POST', url: '/api/instances/unruly/accounts', payload: { username: 'bruno', password: 'une phrase longue', quotaMb: 100 } });
  t.equal(late.statusCode, 201, 'the instance still serves other operations');
  t.equal((await app.inject('/api/instances/unruly/accounts/ana')).json().pending?.suspended, true, 'the suspension stays pending, to be retried');
});
