// Outside review of the `import` account operation, POST …/accounts/:username/import and POST
// /api/backups/:name/restore-account (commits 3ffd6f6..17afb1f). No container: rows are written straight into the
// database of a runtime that is never started, and where the code under review would reach Docker it is handed an
// engine that refuses every call. Each subtest is a defect an outside review found (now fixed)
// or an attack that held.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Fastify from 'fastify';
import t from 'tap';
import type { Test } from 'tap';
import { pino } from 'pino';
import { eq } from 'drizzle-orm';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { accounts, instances, servers } from '../../src/db/schema.js';
import { backupRepositories, backupRuns } from '../../src/backups/schema.js';
import { restoreAccount, sweepStage } from '../../src/backups/backups.js';
import { createInstance, findInstance, type InstanceDeps } from '../../src/orchestrator/instances.js';
import { accountRoutes } from '../../src/http/routes/accounts.js';
import { errorHandler } from '../../src/http/error-handler.js';
import type { Engine } from '../../src/orchestrator/docker/index.js';
import { OPERATOR, testConfig } from '../helpers.js';

const TAR = Buffer.alloc(1024); // two zero blocks: the smallest tar there is

async function setup(t: Test) {
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }), { maxBackoffSeconds: 2 });
  t.teardown(() => rt.close());
  const server = rt.backups.localServer();
  const instanceDeps: InstanceDeps = { db: rt.db, catalog: rt.catalog, portRange: config.portRange, subnetPool: config.subnetPool };
  /** An instance row of the files service (export and import declared) and an account in it; nothing in Docker. */
  const instance = (slug: string, desired: 'running' | 'stopped' = 'stopped') =>
    createInstance(instanceDeps, { service: 'files', slug, server: server.name, desired }, 'test');
  const account = (slug: string, username: string, state: 'active' | 'deleting' | 'pending' | 'suspended' = 'active') => {
    const inst = findInstance(rt.db, slug)!;
    rt.db.insert(accounts).values({ instanceId: inst.id, username, state, quotaMb: 20 }).run();
  };
  rt.db.insert(backupRepositories).values({ name: 'local', url: path.join(config.dataDir, 'no-repo') }).run();
  return { rt, config, server, instanceDeps, instance, account };
}

/** An engine whose every Docker call fails at once: what the code under review asks of Docker is not the point. */
function refusingEngine(rt: Runtime): Engine {
  const refuse = () => { throw new Error('no Docker in this test'); };
  const docker = new Proxy({}, { get: () => refuse });
  return { docker, timeoutMs: 1000, log: rt.log } as unknown as Engine;
}

t.test('POST /api/instances/:slug/accounts/:username/import', async (t) => {
  const { rt, instance, account } = await setup(t);
  instance('imp');
  account('imp', 'alice');

  // Found in review (high): the route can never be used. auth.ts checkBodyType runs onRequest and lets only
  // application/json reach an API route, so every archive is refused with 415 "this route takes application/json"
  // before the route's own parser and handler run (src/http/auth.ts:90, src/http/routes/accounts.ts:98-106). No test
  // calls the route (tests/services/import.test.ts execs the operation directly; resident.test.ts goes through
  // importAccount).
  t.test('an application/x-tar body reaches the route (not a 415 from checkBodyType)', async (t) => {
    // Media types are case-insensitive (RFC 9110 §8.3.1): the route's own startsWith('application/x-tar') would still
    // refuse the upper-case one once checkBodyType lets it through (src/http/routes/accounts.ts:106).
    for (const ct of ['application/x-tar', 'application/x-tar; charset=binary', 'APPLICATION/X-TAR']) {
      const r = await rt.app.inject({ method: 'POST', url: '/api/instances/imp/accounts/alice/import', headers: { ...OPERATOR, 'content-type': ct }, payload: TAR });
      // The instance is stopped: the import's own answer is a 409 (instance not running), after staging.
      t.not(r.statusCode, 415, `${ct}: ${r.body}`);
    }
  });

  // What follows once checkBodyType lets the archive through: the route's own handler, on a fresh data folder.
  // Found in review (medium): the upload is staged with fs.mkdtempSync(<data>/tmp/import-), and
  // nothing makes <data>/tmp before (only an export's claimExportStaging does, mkdir -p): on a cattery that never
  // exported anything, every import is a 500 (ENOENT) (src/http/routes/accounts.ts:108).
  t.test('the route stages an upload on a data folder where no export ever ran', async (t) => {
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    app.decorateRequest('principal', null);
    await app.register(accountRoutes, { deps: rt.accounts });
    t.teardown(() => app.close());
    t.notOk(fs.existsSync(rt.accounts.stagingDir!), 'data/tmp does not exist yet (no export ran)');
    const r = await app.inject({ method: 'POST', url: '/api/instances/imp/accounts/alice/import', headers: { 'content-type': 'application/x-tar' }, payload: TAR });
    t.equal(r.statusCode, 409, `the import's own refusal (instance stopped), not a 500 from staging: ${r.body}`);
  });

  // Found in review (low): an upload staged by a process that was killed (data/tmp/import-*/<uuid>.tar, up to twice the
  // quota and 64 MB each) is never swept: the start sweeps only export-* (src/accounts/accounts.ts:342-345).
  t.test('the start sweeps an import staging left by a killed process', async (t) => {
    const left = path.join(rt.accounts.stagingDir!, 'import-left');
    fs.mkdirSync(left, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(left, 'upload.tar'), TAR, { mode: 0o600 });
    const { sweepExportStaging } = await import('../../src/accounts/accounts.js');
    sweepExportStaging(rt.accounts.stagingDir!);
    const still = fs.existsSync(left);
    fs.rmSync(rt.accounts.stagingDir!, { recursive: true, force: true });
    t.notOk(still, 'the leftover upload is gone');
  });

  // Held in review: the API takes the bearer token only; an administrator's session cookie carries no authority there, so a
  // same-site page (a form, or fetch without a preflight) cannot import into an account with it.
  t.test('an admin session cookie without a bearer token is 401, whatever the media type', async (t) => {
    const admin = await createUser(rt.db, { login: 'admin-review', name: 'Admin', roles: ['admin'] });
    const token = createSession(rt.db, { idleMinutes: 60, maxHours: 1 }, admin.id, 'password');
    for (const ct of ['application/x-tar', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', undefined]) {
      const r = await rt.app.inject({
        method: 'POST', url: '/api/instances/imp/accounts/alice/import', payload: TAR,
        headers: { cookie: `cattery_session=${token}`, origin: 'http://evil.localhost', 'sec-fetch-site': 'same-site', ...(ct ? { 'content-type': ct } : {}) },
      });
      t.equal(r.statusCode, 401, `${ct ?? 'no content-type'}: ${r.statusCode}`);
    }
    const rows = rt.db.select().from(accounts).where(eq(accounts.username, 'alice')).all();
    t.equal(rows[0]!.usageAt, null, 'nothing touched the account');
  });

  // Held in review: the CORS-safelisted media types a cross-site form can send are not taken as an archive.
  t.test('text/plain, multipart and urlencoded bodies are not imported even with the token', async (t) => {
    for (const ct of ['text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/tar', 'application/x-tarx']) {
      const r = await rt.app.inject({ method: 'POST', url: '/api/instances/imp/accounts/alice/import', headers: { ...OPERATOR, 'content-type': ct }, payload: TAR });
      t.equal(r.statusCode, 415, `${ct}: ${r.statusCode}`);
    }
  });
});

t.test('POST /api/backups/:name/restore-account and restoreAccount', async (t) => {
  const { rt, config, instanceDeps, instance, account } = await setup(t);

  // Found in review (low): the body's `instance` pattern is ^[a-z][a-z0-9-]{0,40}$ (41 characters at most), the slug
  // pattern ^[a-z][a-z0-9-]{1,40}[a-z0-9]$ (42): the residents of an instance with a 42-character slug can never be
  // restored one by one (src/http/routes/backups.ts:95). It also lets a trailing "-" through (harmless: 404).
  t.test('an instance with a 42-character slug can be named', async (t) => {
    const slug = `a${'b'.repeat(40)}c`;
    t.equal(slug.length, 42);
    instance(slug);
    account(slug, 'alice');
    const r = await rt.app.inject({ method: 'POST', url: '/api/backups/no-such-repo/restore-account', headers: OPERATOR, payload: { instance: slug, username: 'alice' } });
    t.not(r.statusCode, 400, `not a validation error: ${r.body}`);
  });

  // Held in review: the instance beside gets a valid slug whatever the live one (26 characters, "-restore-", 6 hex = 41).
  t.test('the slug made for the instance beside fits the slug pattern', async (t) => {
    const pattern = new RegExp('^[a-z][a-z0-9-]{1,40}[a-z0-9]$');
    for (const live of ['abc', `a${'-'.repeat(25)}b${'c'.repeat(15)}`, `a${'b'.repeat(40)}c`]) {
      const beside = `${live.slice(0, 26)}-restore-${crypto.randomBytes(3).toString('hex')}`;
      t.match(beside, pattern, beside);
    }
  });

  // Found in review (medium): restoreAccount's `finally` drops, with purge, *any* instance that has the slug it meant to
  // make, even one it did not make: when createInstance refuses because that slug is taken (an admin's own instance
  // named like one, a crash's leftover being looked at, or an unlucky 24-bit draw), another instance and its
  // volumes are deleted (src/backups/backups.ts:645-652). It should drop only what restoreBeside created.
  t.test('a restore whose beside slug is taken does not delete the instance that has it', async (t) => {
    instance('victim');
    account('victim', 'alice');
    instance('victim-restore-000000', 'running');
    const real = crypto.randomBytes;
    (crypto as { randomBytes: unknown }).randomBytes = (n: number, ...rest: unknown[]) => {
      if (n === 3 && rest.length === 0) { (crypto as { randomBytes: unknown }).randomBytes = real; return Buffer.alloc(3); }
      return (real as (...a: unknown[]) => Buffer)(n, ...rest);
    };
    t.teardown(() => { (crypto as { randomBytes: unknown }).randomBytes = real; });
    const converged: string[] = [];
    await restoreAccount(rt.backups, rt.accounts, instanceDeps, async (slug) => { converged.push(slug); }, 'local', { slug: 'victim', username: 'alice' }, 'test')
      .then((r) => t.comment(`answered ${JSON.stringify(r.run.status)}`), (err: Error) => t.comment(`refused: ${err.message}`));
    const other = findInstance(rt.db, 'victim-restore-000000')!;
    t.equal(other.desired, 'running', 'the instance that already had the slug is still meant to run');
    t.same(converged, [], 'and no pass was asked to drop it');
  });

  // Found in review (medium): the account's state (and whether the live instance runs) is checked only by importAccount, at
  // the very end: for an account being deleted (or pending, or on a stopped instance) restoreAccount first makes an
  // instance beside with every resident's data, restores the snapshot into it, exports, and then *exports the live
  // account into data/backups/accounts* (a copy of a leaving resident's data that nothing ever removes) before the
  // 409 (src/backups/backups.ts:617-638, accounts.ts:400-401). Here the engine refuses every call, so the restore
  // stops at the volumes; what matters is that it got there at all.
  for (const state of ['deleting', 'pending'] as const) {
    t.test(`restore-account into a ${state} account is refused before anything is made`, async (t) => {
      const slug = `s-${state}`;
      instance(slug);
      account(slug, 'bob', state);
      const deps = { ...rt.backups, engineFor: () => refusingEngine(rt) };
      // Not a local engine: no volume image is made on this host for the instance beside.
      rt.db.update(servers).set({ dockerEndpoint: 'tcp://192.0.2.1:2376' }).run();
      t.teardown(() => { rt.db.update(servers).set({ dockerEndpoint: config.dockerEndpoint }).run(); });
      const before = rt.db.select().from(instances).all().length;
      const runsBefore = rt.db.select().from(backupRuns).all().length;
      let code = '';
      await restoreAccount(deps, rt.accounts, instanceDeps, async () => undefined, 'local', { slug, username: 'bob' }, 'test')
        .then(() => undefined, (err: { code?: string }) => { code = err.code ?? ''; });
      t.equal(code, 'CATTERY_ERR_CONFLICT', 'refused as a conflict');
      const made = rt.db.select().from(instances).all().filter((i) => i.slug.startsWith(`${slug}-restore-`));
      t.equal(rt.db.select().from(instances).all().length - made.length, before, '(sanity)');
      t.same(made.map((i) => i.slug), [], 'no instance beside was made');
      t.equal(rt.db.select().from(backupRuns).all().length, runsBefore, 'no run recorded');
    });
  }

  // Found in review (medium): restoreAccount stages the snapshot's export in data/restic/stage/account-<beside>/, and
  // sweepStage (run by every backup of cattery itself, backupHoster, so by every scheduled "backup everything")
  // removes every entry there that is not hoster-<live pid>-<n>: a backup that starts while a resident's restore is
  // between its export and its import deletes the archive under it, and the restore fails
  // (src/backups/backups.ts:391-400 against 628-633).
  t.test('a backup of cattery does not remove the staging of a resident\'s restore under way', async (t) => {
    // A resident's restore stages in data/tmp (restore-<instance beside>), outside what a hoster backup sweeps.
    const stage = path.join(config.dataDir, 'tmp', 'restore-live-restore-abcdef');
    fs.mkdirSync(stage, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(stage, 'snapshot.tar'), TAR, { mode: 0o600 });
    sweepStage(config.dataDir);
    t.ok(fs.existsSync(path.join(stage, 'snapshot.tar')), 'the restore\'s archive is still there');
  });
});
