// The HTTP API on a real SQLite with the real migrations: every client mistake gets its 4xx, its stable code and a
// message a person understands, and leaves the database as it was.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import { ROOT, asOperator, removeHosterObjects, testConfig } from '../helpers.js';

async function runtime(t: Parameters<Parameters<typeof t.test>[1]>[0], env: Record<string, string> = {}) {
  const config = testConfig(t, env as never);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  asOperator(rt.app);
  // A created instance is reconciled at once (a network, a container): removed with everything of this hoster.
  t.teardown(async () => { await rt.close(); await removeHosterObjects(config.hosterId); });
  return rt;
}

const counts = (rt: Awaited<ReturnType<typeof runtime>>) => rt.db.$client.prepare(
  'select (select count(*) from instances) i, (select count(*) from operations) o, (select count(*) from servers) s').get();

t.test('bad input: 4xx, stable code, clear message, nothing stored', async (t) => {
  const rt = await runtime(t);
  const { app } = rt;
  const before = counts(rt);
  const cases: [string, Parameters<typeof app.inject>[0], number, string, RegExp][] = [
    ['unknown service', { method: 'POST', url: '/api/instances', payload: { service: 'nope', slug: 'abc' } }, 400, 'CATTERY_ERR_UNKNOWN_SERVICE', /No service "nope"/],
    ['shell in slug', { method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'a;rm -rf /' } }, 400, 'CATTERY_ERR_VALIDATION', /body\/slug: lowercase letters, digits and dashes/],
    ['uppercase slug', { method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'ABC' } }, 400, 'CATTERY_ERR_VALIDATION', /slug/],
    ['missing slug', { method: 'POST', url: '/api/instances', payload: { service: 'probe' } }, 400, 'CATTERY_ERR_VALIDATION', /"slug" is required/],
    ['extra field', { method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'abc', privileged: true } }, 400, 'CATTERY_ERR_VALIDATION', /"privileged" is not allowed/],
    ['env not declared', { method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'abc', env: { PATH: '/evil' } } }, 400, 'CATTERY_ERR_VALIDATION', /PATH is not overridable/],
    ['env secret', { method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'abc', env: { PROBE_SECRET: 'x' } } }, 400, 'CATTERY_ERR_VALIDATION', /not overridable/],
    ['env newline', { method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'abc', env: { PROBE_GREETING: 'a\nB=c' } } }, 400, 'CATTERY_ERR_VALIDATION', /newline/],
    ['bad env key', { method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'abc', env: { 'a b': 'x' } } }, 400, 'CATTERY_ERR_VALIDATION', /.+/],
    ['unknown server', { method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'abc', server: 'mars' } }, 404, 'CATTERY_ERR_NOT_FOUND', /No server named "mars"/],
    ['not JSON', { method: 'POST', url: '/api/instances', headers: { 'content-type': 'application/json' }, payload: '{"service":' }, 400, 'CATTERY_ERR_VALIDATION', /JSON/i],
    ['too large', { method: 'POST', url: '/api/instances', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ service: 'probe', slug: 'abc', env: { PROBE_GREETING: 'x'.repeat(300_000) } }) }, 413, 'CATTERY_ERR_TOO_LARGE', /too large/i],
    ['no such instance', { method: 'GET', url: '/api/instances/ghost' }, 404, 'CATTERY_ERR_NOT_FOUND', /No instance "ghost"/],
    ['action on missing', { method: 'POST', url: '/api/instances/ghost/stop' }, 404, 'CATTERY_ERR_NOT_FOUND', /No instance "ghost"/],
    ['empty patch', { method: 'PATCH', url: '/api/instances/ghost', payload: {} }, 400, 'CATTERY_ERR_VALIDATION', /.+/],
    ['bad server endpoint', { method: 'POST', url: '/api/servers', payload: { name: 'b', dockerEndpoint: 'ssh://x; rm -rf /' } }, 400, 'CATTERY_ERR_VALIDATION', /dockerEndpoint/],
    ['duplicate server', { method: 'POST', url: '/api/servers', payload: { name: 'local', dockerEndpoint: 'unix:///var/run/docker.sock' } }, 409, 'CATTERY_ERR_CONFLICT', /already exists/],
    ['no route', { method: 'GET', url: '/api/nothing' }, 404, 'CATTERY_ERR_NOT_FOUND', /No route/],
  ];
  for (const [what, req, status, code, message] of cases) {
    const r = await app.inject(req);
    t.equal(r.statusCode, status, `${what}: ${r.body}`);
    t.equal(r.json().code, code, what);
    t.match(r.json().message, message, what);
    t.notMatch(r.body, /at .*\.ts:\d+|stack/, `${what}: no internals`);
  }
  t.same(counts(rt), before, 'the database is unchanged');

  // A duplicate slug: the first is stored (image missing is fine: the reconciler records it), the second refused.
  const first = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'twice', desired: 'stopped' } });
  t.equal(first.statusCode, 202);
  const mid = counts(rt);
  const dup = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'twice' } });
  t.equal(dup.statusCode, 409);
  t.equal(dup.json().code, 'CATTERY_ERR_CONFLICT');
  t.same(counts(rt), mid, 'the refused duplicate stored nothing');
  t.notMatch(first.body, /secret/i, 'no secret in the reply');
});

t.test('every route declares its roles; the admin token guards the API', async (t) => {
  const rt = await runtime(t, { adminToken: 'a-very-long-admin-token' });
  const { app } = rt;
  t.equal((await app.inject({ url: '/api/catalog', headers: { authorization: null } } as never)).statusCode, 200, 'the catalog is public');
  const none = await app.inject({ url: '/api/instances', headers: { authorization: null } } as never);
  t.equal(none.statusCode, 401);
  t.equal(none.json().code, 'CATTERY_ERR_UNAUTHENTICATED');
  t.equal((await app.inject({ url: '/api/instances', headers: { authorization: 'Bearer wrong-token-wrong-token' } })).statusCode, 401);
  t.equal((await app.inject({ url: '/api/instances', headers: { authorization: 'Bearer a-very-long-admin-token' } })).statusCode, 200);

  const spec = (await app.inject('/api/openapi.json')).json();
  for (const p of ['/api/instances', '/api/instances/{slug}', '/api/instances/{slug}/upgrade', '/api/servers', '/api/catalog']) {
    t.ok(spec.paths[p], `OpenAPI documents ${p}`);
  }
  t.ok(spec.paths['/api/instances'].post.requestBody, 'request bodies are documented');

  const { buildApp } = await import('../../src/http/app.js');
  const app2 = await buildApp({ ...rt, log: pino({ level: 'silent' }), secret: 'a'.repeat(32) });
  t.throws(() => app2.get('/api/undeclared', async () => 'x'), /has no line in http\/permissions.ts/, 'a route without a line in the permissions table is refused');
  await app2.close();
});

t.test('an engine that does not answer is a 503 with no internals', async (t) => {
  const rt = await runtime(t, { dockerEndpoint: 'unix:///nonexistent/docker.sock' } as never);
  await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'lonely' } });
  const r = await rt.app.inject({ method: 'POST', url: '/api/instances/lonely/restart?wait=true' });
  t.equal(r.statusCode, 503);
  t.equal(r.json().code, 'CATTERY_ERR_ENGINE_UNAVAILABLE');
  t.notMatch(r.body, /nonexistent|ENOENT|sock/);
});

t.test('migrations: applied at start; a failed one stops start-up with a clear message and exit 1', async (t) => {
  const config = testConfig(t);
  const db = openDb(config.dbFile);
  applyMigrations(db);
  applyMigrations(db);
  const tables = db.$client.prepare("select name from sqlite_master where type='table' order by name").all().map((r) => (r as { name: string }).name);
  for (const n of ['instances', 'operations', 'servers']) t.ok(tables.includes(n));
  t.equal(db.$client.pragma('journal_mode', { simple: true }), 'wal');
  db.$client.close();

  const broken = path.join(config.dataDir, 'broken.db');
  fs.writeFileSync(broken, 'this is not a database, just text that a careless copy left here'.repeat(100));
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'migrate'], {
    encoding: 'utf8', env: { ...process.env, CATTERY_DB: broken, CATTERY_DATA_DIR: config.dataDir, CATTERY_LOG_LEVEL: 'silent' },
  });
  t.equal(r.status, 1);
  t.match(r.stderr, /cattery: .*(migration failed|not a database)/i);

  const bad = path.join(config.dataDir, 'migrations');
  fs.cpSync(path.join(ROOT, 'migrations'), bad, { recursive: true });
  fs.appendFileSync(path.join(bad, '0000_init.sql'), '\n--> statement-breakpoint\nCREATE TABLE servers (x);');
  const db2 = openDb(path.join(config.dataDir, 'two.db'));
  t.throws(() => applyMigrations(db2, bad), { code: 'CATTERY_ERR_MIGRATION', message: /Database migration failed: [\s\S]*servers/ });
  t.equal(db2.$client.prepare("select count(*) n from sqlite_master where name='instances'").get()!.n as number, 0, 'the failed migration left nothing half-done');
  db2.$client.close();
});
