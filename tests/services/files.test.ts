// The files service end to end: WebDAV spaces per account, Basic authentication, quota, export and deletion.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import tar from 'tar-fs';
import { refreshStaleUsage } from '../../src/accounts/accounts.js';
import { execIn, testRuntime, waitFor } from '../helpers.js';

t.test('file spaces: put, get, propfind, privacy, quota, traversal, suspend, export, delete', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'files', slug: 'fichiers' } });
  t.equal(created.statusCode, 202, created.body);
  const base = `http://127.0.0.1:${created.json().ports.http}`;
  await waitFor('files healthy', async () => (await app.inject('/api/instances/fichiers')).json().observed === 'healthy', 120_000, 500);
  const mk = (username: string, password: string, quotaMb: number) =>
    app.inject({ method: 'POST', url: '/api/instances/fichiers/accounts', payload: { username, password, quotaMb } });
  t.equal((await mk('alice', 'alice-secret-1', 1)).statusCode, 201);
  t.equal((await mk('bob', 'bob-secret-22', 5)).statusCode, 201);

  const auth = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
  const alice = auth('alice', 'alice-secret-1');
  const put = (p: string, body: string | Buffer, headers = alice) => fetch(`${base}${p}`, { method: 'PUT', headers, body });

  t.equal((await put('/alice/notes.txt', 'Liste des courses')).status, 201);
  const got = await fetch(`${base}/alice/notes.txt`, { headers: alice });
  t.equal(got.status, 200);
  t.equal(await got.text(), 'Liste des courses');
  t.equal((await fetch(`${base}/alice/notes.txt`)).status, 401, 'anonymous is refused');
  const other = await fetch(`${base}/alice/notes.txt`, { headers: auth('bob', 'bob-secret-22') });
  t.ok(other.status === 401 || other.status === 403, `another account is refused (${other.status})`);
  t.equal((await fetch(`${base}/alice/notes.txt`, { headers: auth('alice', 'wrong-password') })).status, 401);

  const list = await fetch(`${base}/alice/`, { method: 'PROPFIND', headers: { ...alice, depth: '1' } });
  t.equal(list.status, 207);
  t.match(await list.text(), /notes\.txt/);

  const big = await put('/alice/big.bin', Buffer.alloc(2 * 1024 * 1024, 1));
  t.equal(big.status, 507, 'over quota: Insufficient Storage');
  t.equal((await fetch(`${base}/alice/big.bin`, { headers: alice })).status, 404, 'nothing of it was stored');

  for (const p of ['/alice/..%2Fbob%2Fevil.txt', '/alice/%2e%2e/bob/evil.txt', '/bob/evil.txt']) {
    const r = await put(p, 'intrusion');
    t.notOk(r.status >= 200 && r.status < 300, `${p} refused (${r.status})`);
  }
  const bobFiles = await execIn(`${config.hosterId}-fichiers`, ['ls', '-A', '/srv/files/bob']);
  t.equal(bobFiles.out.trim(), '', 'bob\'s space is untouched');

  const usage = (await app.inject('/api/instances/fichiers/accounts/alice?usage=true')).json();
  t.equal(usage.usageItems, 1);
  t.equal(usage.usageBytes, Buffer.byteLength('Liste des courses'));
  // The upkeep timer keeps usage an hour old at most, for metering's per-account key.
  rt.db.$client.prepare('UPDATE accounts SET usage_at = NULL, usage_bytes = NULL, usage_items = NULL').run();
  const stale = () => (rt.db.$client.prepare('SELECT COUNT(*) n FROM accounts WHERE usage_at IS NULL').get() as { n: number }).n;
  await waitFor('usage refreshed by the runtime\'s upkeep timer', () => stale() === 0, 30_000, 200);
  const deps = { db: rt.db, catalog: rt.catalog, hosterId: config.hosterId, engineFor: rt.reconciler.engineFor, log: rt.log };
  t.equal(await refreshStaleUsage(deps, 3_600_000), 0, 'and not again within the hour');
  t.match(rt.db.$client.prepare("SELECT usage_bytes b, usage_items i FROM accounts WHERE username = 'alice'").get(), { b: Buffer.byteLength('Liste des courses'), i: 1 });

  await app.inject({ method: 'POST', url: '/api/instances/fichiers/accounts/alice/suspend' });
  t.equal((await fetch(`${base}/alice/notes.txt`, { headers: alice })).status, 401, 'suspended');
  await app.inject({ method: 'POST', url: '/api/instances/fichiers/accounts/alice/resume' });
  t.equal((await fetch(`${base}/alice/notes.txt`, { headers: alice })).status, 200, 'resumed');

  const exp = await app.inject('/api/instances/fichiers/accounts/alice/export');
  t.equal(exp.statusCode, 200);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-export-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await pipeline(Readable.from(exp.rawPayload), tar.extract(dir));
  t.equal(fs.readFileSync(path.join(dir, 'alice', 'notes.txt'), 'utf8'), 'Liste des courses', 'the export holds the files as they are');

  t.equal((await app.inject({ method: 'DELETE', url: '/api/instances/fichiers/accounts/alice' })).statusCode, 204);
  t.equal((await fetch(`${base}/alice/notes.txt`, { headers: alice })).status, 401, 'deleted: login refused');
  t.not((await execIn(`${config.hosterId}-fichiers`, ['test', '-e', '/srv/files/alice'])).code, 0, 'data purged');
});
