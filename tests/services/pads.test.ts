// The pads service end to end: two Yjs clients edit one pad at once and converge; private pads open only with their
// owner's account; text survives a restart; the export holds Markdown and the Yjs state.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import tar from 'tar-fs';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { execIn, testRuntime, waitFor } from '../helpers.js';

function client(base: string, room: string, auth?: string) {
  const headers = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
  // y-websocket builds its socket with `new WebSocketPolyfill(url)`: this one adds the account's credentials.
  class AuthWS extends WebSocket { constructor(url: string) { super(url, { headers }); } }
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(base, room, doc, { WebSocketPolyfill: AuthWS as unknown as typeof globalThis.WebSocket, disableBc: true });
  return { doc, provider, text: doc.getText('content') };
}

t.test('pads: convergence, privacy, persistence, export, deletion', async (t) => {
  const rt = await testRuntime(t);
  const { app } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'pads' } });
  t.equal(created.statusCode, 202, created.body);
  const base = `ws://127.0.0.1:${created.json().ports.http}`;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/pads')).json().observed === 'healthy', 120_000, 500);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/pads/accounts', payload: { username: 'lea', password: 'lea-secret-123', quotaMb: 10 } })).statusCode, 201);

  const clients: ReturnType<typeof client>[] = [];
  const open = (room: string, auth?: string) => { const c = client(base, room, auth); clients.push(c); return c; };

  const a = open('public/courses');
  const b = open('public/courses');
  await waitFor('both synced', () => a.provider.synced && b.provider.synced);
  // Concurrent edits: each client types before seeing the other's.
  a.text.insert(0, 'Pain, lait. ');
  b.text.insert(0, 'Pommes. ');
  await waitFor('converged', () => a.text.toString() === b.text.toString() && a.text.length === 'Pain, lait. Pommes. '.length);
  t.match(a.text.toString(), /Pain, lait\./);
  t.match(a.text.toString(), /Pommes\./);

  const anon = open('private/lea/journal');
  const refused = await new Promise<number>((resolve) => {
    (anon.provider as unknown as { on(ev: string, f: (e: unknown) => void): void }).on('connection-close', () => resolve(401));
    setTimeout(() => resolve(anon.provider.synced ? 0 : 401), 5000);
  });
  t.equal(refused, 401);
  t.notOk(anon.provider.synced, 'an anonymous client never opens a private pad');
  anon.provider.destroy();
  const intruder = open('private/lea/journal', 'lea:wrong-password');
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(intruder.provider.synced, 'a wrong password never opens it');
  intruder.provider.destroy();

  const lea = open('private/lea/journal', 'lea:lea-secret-123');
  await waitFor('lea synced', () => lea.provider.synced);
  lea.text.insert(0, '# Mon journal\n\nAujourd\'hui, atelier numérique.');
  await new Promise((r) => setTimeout(r, 500));
  lea.provider.destroy();

  const restarted = await app.inject({ method: 'POST', url: '/api/instances/pads/restart?wait=true' });
  t.equal(restarted.statusCode, 200);
  await waitFor('pads healthy again', async () => (await app.inject('/api/instances/pads')).json().observed === 'healthy', 60_000, 500);
  const again = open('private/lea/journal', 'lea:lea-secret-123');
  await waitFor('text after restart', () => again.provider.synced && again.text.toString().includes('atelier numérique'), 30_000);
  t.pass('the text survived a restart of the instance');
  again.provider.destroy();

  const usage = (await app.inject('/api/instances/pads/accounts/lea?usage=true')).json();
  t.equal(usage.usageItems, 1);
  const exp = await app.inject('/api/instances/pads/accounts/lea/export');
  t.equal(exp.statusCode, 200);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-export-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await pipeline(Readable.from(exp.rawPayload), tar.extract(dir));
  t.match(fs.readFileSync(path.join(dir, 'lea', 'journal.md'), 'utf8'), /# Mon journal/);
  const restored = new Y.Doc();
  Y.applyUpdate(restored, fs.readFileSync(path.join(dir, 'lea', 'journal.yjs')));
  t.match(restored.getText('content').toString(), /atelier numérique/, 'the Yjs state restores the pad');

  t.equal((await app.inject({ method: 'DELETE', url: '/api/instances/pads/accounts/lea' })).statusCode, 204);
  const gone = open('private/lea/journal', 'lea:lea-secret-123');
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(gone.provider.synced, 'a deleted account opens nothing');
  t.equal((await app.inject('/api/instances/pads/accounts/lea?usage=true')).statusCode, 404);
  // Providers reconnect forever unless destroyed, and would keep the test process alive.
  for (const c of clients) { c.provider.destroy(); c.doc.destroy(); }
});

t.test('pads: public pads capped in number and size, idle expiry, private pads within the account quota', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const env = { PADS_PUBLIC_MAX_COUNT: '2', PADS_PUBLIC_MAX_KB: '4', PADS_PUBLIC_IDLE_DAYS: '1' };
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'caps', env } });
  t.equal(created.statusCode, 202, created.body);
  const port = created.json().ports.http;
  const base = `ws://127.0.0.1:${port}`;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/caps')).json().observed === 'healthy', 120_000, 500);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/caps/accounts', payload: { username: 'lea', password: 'lea-secret-123', quotaMb: 1 } })).statusCode, 201);
  const clients: ReturnType<typeof client>[] = [];
  t.teardown(() => { for (const c of clients) { c.provider.destroy(); c.doc.destroy(); } });
  const open = (room: string, auth?: string) => { const c = client(base, room, auth); clients.push(c); return c; };
  const close = (c: ReturnType<typeof client>) => { c.provider.destroy(); c.doc.destroy(); };
  const read = async (room: string, auth?: string) => {
    const c = open(room, auth);
    await waitFor(`${room} synced`, () => c.provider.synced, 15_000);
    const text = c.text.toString();
    close(c);
    return text;
  };
  const page = (p: string) => fetch(`http://127.0.0.1:${port}${p}`).then((r) => r.status);

  const a = open('public/a');
  const b = open('public/b');
  await waitFor('two public pads open', () => a.provider.synced && b.provider.synced);
  a.text.insert(0, 'petit texte');
  await new Promise((r) => setTimeout(r, 500));
  const c = open('public/c');
  await new Promise((r) => setTimeout(r, 2000));
  t.notOk(c.provider.synced, 'a third public pad cannot be created past PADS_PUBLIC_MAX_COUNT=2');
  close(c);
  t.equal(await page('/p/c'), 507, 'and its page says so');
  t.equal(await page('/p/a'), 200, 'an existing pad still opens');

  a.text.insert(0, 'x'.repeat(10 * 1024));
  await new Promise((r) => setTimeout(r, 1500));
  close(a);
  const after = await read('public/a');
  t.equal(after, 'petit texte', 'an update past PADS_PUBLIC_MAX_KB=4 is never stored');

  const one = open('private/lea/one', 'lea:lea-secret-123');
  await waitFor('lea synced', () => one.provider.synced);
  one.text.insert(0, 'a'.repeat(600 * 1024));
  await new Promise((r) => setTimeout(r, 1500));
  close(one);
  t.equal((await read('private/lea/one', 'lea:lea-secret-123')).length, 600 * 1024, 'within the quota: stored');
  const two = open('private/lea/two', 'lea:lea-secret-123');
  await waitFor('lea synced on two', () => two.provider.synced);
  two.text.insert(0, 'b'.repeat(600 * 1024));
  await new Promise((r) => setTimeout(r, 1500));
  close(two);
  t.equal(await read('private/lea/two', 'lea:lea-secret-123'), '', 'an update that would pass quotaMb=1 over all her pads is refused');
  const usage = (await app.inject('/api/instances/caps/accounts/lea?usage=true')).json();
  t.ok(usage.usageBytes > 600 * 1024 && usage.usageBytes <= 1024 * 1024, `usage reports her pads' bytes (${usage.usageBytes})`);
  t.equal((await app.inject({ method: 'PATCH', url: '/api/instances/caps/accounts/lea', payload: { quotaMb: 2 } })).statusCode, 200);
  const three = open('private/lea/two', 'lea:lea-secret-123');
  await waitFor('lea synced on two again', () => three.provider.synced);
  three.text.insert(0, 'b'.repeat(600 * 1024));
  await new Promise((r) => setTimeout(r, 1500));
  close(three);
  t.equal((await read('private/lea/two', 'lea:lea-secret-123')).length, 600 * 1024, 'a raised quota takes effect');

  // The idle sweep as of two days from now (PADS_PUBLIC_IDLE_DAYS=1) removes the public pads nobody has open, and
  // never a private one.
  b.provider.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const sweep = await execIn(`${config.hosterId}-caps`, ['/usr/bin/node', '-e',
    `fetch('http://127.0.0.1:1234/_cattery/pads/expire?at=${Date.now() + 2 * 86_400_000}',{method:'POST'}).then(r=>r.text()).then(t=>process.stdout.write(t))`]);
  t.same(JSON.parse(sweep.out).removed.sort(), ['public/a', 'public/b'], 'idle public pads expire');
  t.equal(await read('public/a'), '', 'an expired pad starts empty');
  t.equal((await read('private/lea/one', 'lea:lea-secret-123')).length, 600 * 1024, 'private pads never expire');
  const early = await execIn(`${config.hosterId}-caps`, ['/usr/bin/node', '-e',
    "fetch('http://127.0.0.1:1234/_cattery/pads/expire',{method:'POST'}).then(r=>r.text()).then(t=>process.stdout.write(t))"]);
  t.same(JSON.parse(early.out).removed, [], 'a pad used today does not expire');
});

t.test('pads: a changed password stops opening private pads at once; many parallel sign-ins keep the loop free', async (t) => {
  const rt = await testRuntime(t);
  const { app } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'auth' } });
  const port = created.json().ports.http;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/auth')).json().observed === 'healthy', 120_000, 500);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/auth/accounts', payload: { username: 'lea', password: 'lea:secret-123', quotaMb: 1 } })).statusCode, 201);
  const get = (auth: string) => fetch(`http://127.0.0.1:${port}/private/lea/x`, { headers: { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } }).then((r) => r.status);
  t.equal(await get('lea:lea:secret-123'), 200, 'a password with a colon opens her pad');
  t.equal(await get('lea:lea:secret-123'), 200, 'again (from the cache)');
  t.equal((await app.inject({ method: 'PATCH', url: '/api/instances/auth/accounts/lea', payload: { password: 'lea-other-456' } })).statusCode, 200);
  t.equal(await get('lea:lea:secret-123'), 401, 'the old password stops at once');
  t.equal(await get('lea:lea-other-456'), 200, 'the new one opens');
  const wrong = Array.from({ length: 60 }, (_, i) => get(`lea:wrong-${i}`));
  const t0 = Date.now();
  const home = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
  const lag = Date.now() - t0;
  t.equal(home.status, 200);
  t.ok(lag < 1000, `the home page answered in ${lag} ms while 60 scrypts ran`);
  t.ok((await Promise.all(wrong)).every((s) => s === 401));
});
