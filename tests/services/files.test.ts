// The files service end to end: WebDAV spaces per account, Basic authentication, quota, export and deletion.
import fs from 'node:fs';
import http from 'node:http';
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

/** A PUT streamed without Content-Length (chunked), as desktop clients send it; resolves with the status, even when
 * the server answers before the body has all been sent. */
function chunkedPut(url: string, headers: Record<string, string>, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', headers }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!req.write(chunk.subarray(0, n))) { req.once('drain', pump); return; }
      }
      req.end();
    };
    pump();
  });
}

t.test('quota on every write: COPY, MOVE, chunked PUT; credential cache; event loop', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'files', slug: 'quota' } });
  t.equal(created.statusCode, 202, created.body);
  const base = `http://127.0.0.1:${created.json().ports.http}`;
  await waitFor('files healthy', async () => (await app.inject('/api/instances/quota')).json().observed === 'healthy', 120_000, 500);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/quota/accounts', payload: { username: 'carla', password: 'carla-secret-1:x', quotaMb: 1 } })).statusCode, 201);
  const carla = { authorization: `Basic ${Buffer.from('carla:carla-secret-1:x').toString('base64')}` };
  const ls = async () => (await execIn(`${config.hosterId}-quota`, ['find', '/srv/files/carla', '-type', 'f'])).out.trim().split('\n').filter(Boolean).sort();
  const MB = 1024 * 1024;

  t.equal((await fetch(`${base}/carla/tree`, { method: 'MKCOL', headers: carla })).status, 201, 'a password with a colon signs in');
  t.equal((await fetch(`${base}/carla/tree/a.bin`, { method: 'PUT', headers: carla, body: Buffer.alloc(300 * 1024, 1) })).status, 201);
  t.equal((await fetch(`${base}/carla/tree/b.bin`, { method: 'PUT', headers: carla, body: Buffer.alloc(300 * 1024, 2) })).status, 201);
  const before = await ls();
  const copy = await fetch(`${base}/carla/tree`, { method: 'COPY', headers: { ...carla, destination: `${base}/carla/copy`, depth: 'infinity' } });
  t.equal(copy.status, 507, 'a COPY of a tree past the quota is refused');
  t.same(await ls(), before, 'and nothing of it was written');
  const copyOne = (from: string, to: string) => fetch(`${base}/carla/tree/${from}`, { method: 'COPY', headers: { ...carla, destination: `/carla/${to}` } }).then((r) => r.status);
  t.equal(await copyOne('a.bin', 'a-copy.bin'), 201, 'a COPY within the quota passes (900 KB of 1 MB)');
  t.equal(await copyOne('b.bin', 'b-copy.bin'), 507, 'the next one would pass it: refused');
  const del = (await fetch(`${base}/carla/a-copy.bin`, { method: 'DELETE', headers: carla })).status;
  t.ok(del >= 200 && del < 300, `the copy is deleted (${del})`);
  const move = await fetch(`${base}/carla/tree/a.bin`, { method: 'MOVE', headers: { ...carla, destination: '/carla/moved.bin' } });
  t.equal(move.status, 201, 'a MOVE inside one\'s space changes no usage and passes');
  t.same(await ls(), ['/srv/files/carla/moved.bin', '/srv/files/carla/tree/b.bin']);

  t.equal(await chunkedPut(`${base}/carla/stream-small.bin`, carla, 200 * 1024), 201, 'a chunked PUT within the quota is accepted (not 411)');
  t.equal((await execIn(`${config.hosterId}-quota`, ['stat', '-c', '%s', '/srv/files/carla/stream-small.bin'])).out.trim(), String(200 * 1024), 'all of it stored');
  t.equal(await chunkedPut(`${base}/carla/stream-big.bin`, carla, 3 * MB), 507, 'a chunked PUT is stopped at the quota');
  await waitFor('partial file removed', async () => !(await ls()).includes('/srv/files/carla/stream-big.bin'), 5000, 100);
  t.pass('the partial upload is removed');
  const used = (await app.inject('/api/instances/quota/accounts/carla?usage=true')).json().usageBytes;
  t.ok(used <= MB, `usage stays within the quota (${used})`);
  // Two uploads at once share one quota.
  const both = await Promise.all([chunkedPut(`${base}/carla/p1.bin`, carla, 250 * 1024), chunkedPut(`${base}/carla/p2.bin`, carla, 250 * 1024)]);
  t.ok(both.includes(507), `two parallel uploads that together pass the quota: one refused (${both})`);
  t.ok(((await app.inject('/api/instances/quota/accounts/carla?usage=true')).json().usageBytes as number) <= MB, 'still within the quota');

  // The verified credential is cached, but a changed password stops working on the next request.
  t.equal((await fetch(`${base}/carla/`, { method: 'PROPFIND', headers: { ...carla, depth: '0' } })).status, 207);
  t.equal((await app.inject({ method: 'PATCH', url: '/api/instances/quota/accounts/carla', payload: { password: 'carla-new-secret-2' } })).statusCode, 200);
  t.equal((await fetch(`${base}/carla/`, { method: 'PROPFIND', headers: { ...carla, depth: '0' } })).status, 401, 'the old password is refused at once');
  const carla2 = { authorization: `Basic ${Buffer.from('carla:carla-new-secret-2').toString('base64')}` };
  t.equal((await fetch(`${base}/carla/`, { method: 'PROPFIND', headers: { ...carla2, depth: '0' } })).status, 207, 'the new one works');
  await app.inject({ method: 'POST', url: '/api/instances/quota/accounts/carla/suspend' });
  t.equal((await fetch(`${base}/carla/`, { method: 'PROPFIND', headers: { ...carla2, depth: '0' } })).status, 401, 'a suspension too, cache or not');
  await app.inject({ method: 'POST', url: '/api/instances/quota/accounts/carla/resume' });

  // Many parallel requests with wrong passwords (each a full scrypt) while an anonymous request must still be
  // answered promptly: hashing runs off the event loop.
  const wrong = Array.from({ length: 60 }, (_, i) => fetch(`${base}/carla/`, { method: 'PROPFIND', headers: { authorization: `Basic ${Buffer.from(`carla:wrong-${i}`).toString('base64')}`, depth: '0' } }).then((r) => r.status));
  const t0 = Date.now();
  const anon = await fetch(`${base}/`, { signal: AbortSignal.timeout(5000) });
  const lag = Date.now() - t0;
  t.equal(anon.status, 401);
  t.ok(lag < 1000, `an unauthenticated request answered in ${lag} ms while 60 scrypts ran`);
  t.ok((await Promise.all(wrong)).every((s) => s === 401));
  const right = await Promise.all(Array.from({ length: 60 }, () => fetch(`${base}/carla/`, { method: 'PROPFIND', headers: { ...carla2, depth: '0' } }).then((r) => r.status)));
  t.ok(right.every((s) => s === 207), 'sixty parallel authenticated requests all pass');
});
