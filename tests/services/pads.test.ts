// The pads service end to end: two Yjs clients edit one pad at once and converge; private pads open only with their
// owner's account; text survives a restart; the export holds Markdown and the Yjs state. Then the safety properties
// over their whole kind, on the real container: no Yjs message of any type, size or count an anonymous client sends
// restarts it; insert/delete cycles keep the bytes stored within each limit plus its slack; usage and export of an
// account holding many large pads stay within the memory limit, and an export larger than the 16 MB /tmp works.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import t, { type Test } from 'tap';
import tar from 'tar-fs';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { docker, execIn, HEALTHY_WITHIN_MS, subnetPoolSlice, testRuntime, waitFor } from '../helpers.js';

// The five tests below run in two lanes at the same time (the lanes at the end of the file), each test with its own
// runtime and instance, each lane with its own quarter of the file's subnet pool: most of a test's time is spent
// waiting on its container, and the file took as long as its five tests one after another.
type Body = (t: Test, subnetPool: string) => Promise<void>;
const lanes: [string, Body][][] = [[], []];
const lane = (n: 0 | 1, name: string, body: Body) => { lanes[n]!.push([name, body]); };

function client(base: string, room: string, auth?: string) {
  const headers = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
  // y-websocket builds its socket with `new WebSocketPolyfill(url)`: this one adds the account's credentials.
  class AuthWS extends WebSocket { constructor(url: string) { super(url, { headers }); } }
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(base, room, doc, { WebSocketPolyfill: AuthWS as unknown as typeof globalThis.WebSocket, disableBc: true });
  return { doc, provider, text: doc.getText('content') };
}

lane(0, 'pads: convergence, privacy, persistence, export, deletion', async (t, subnetPool) => {
  const rt = await testRuntime(t, { subnetPool });
  const { app } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'pads' } });
  t.equal(created.statusCode, 202, created.body);
  const base = `ws://127.0.0.1:${created.json().ports.http}`;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/pads')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
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
  await waitFor('pads healthy again', async () => (await app.inject('/api/instances/pads')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
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

lane(0, 'pads: public pads capped in number and size, idle expiry, private pads within the account quota', async (t, subnetPool) => {
  const rt = await testRuntime(t, { subnetPool });
  const { app, config } = rt;
  const env = { PADS_PUBLIC_MAX_COUNT: '2', PADS_PUBLIC_MAX_KB: '4', PADS_PUBLIC_IDLE_DAYS: '1' };
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'caps', env } });
  t.equal(created.statusCode, 202, created.body);
  const port = created.json().ports.http;
  const base = `ws://127.0.0.1:${port}`;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/caps')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
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

lane(1, 'pads: a changed password stops opening private pads at once; many parallel sign-ins keep the loop free', async (t, subnetPool) => {
  const rt = await testRuntime(t, { subnetPool });
  const { app } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'auth' } });
  const port = created.json().ports.http;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/auth')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
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

// ---- Wire-level helpers: a raw Yjs WebSocket client, as a hostile one would write it. ----

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const frame = (type: number, ...parts: ((e: encoding.Encoder) => void)[]) => {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, type);
  for (const p of parts) p(e);
  return Buffer.from(encoding.toUint8Array(e));
};
const syncUpdate = (u: Uint8Array) => frame(0, (e) => encoding.writeVarUint(e, 2), (e) => encoding.writeVarUint8Array(e, u));
const syncStep1 = (sv: Uint8Array) => frame(0, (e) => encoding.writeVarUint(e, 0), (e) => encoding.writeVarUint8Array(e, sv));
/** One awareness message declaring `count` clients from `firstId` on, each with a state of about `stateBytes`. */
function awarenessMsg(firstId: number, count: number, stateBytes: number) {
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, count);
  const state = JSON.stringify({ user: { name: 'x'.repeat(Math.max(0, stateBytes)) } });
  for (let i = 0; i < count; i++) { encoding.writeVarUint(inner, firstId + i); encoding.writeVarUint(inner, 1); encoding.writeVarString(inner, state); }
  return frame(1, (e) => encoding.writeVarUint8Array(e, encoding.toUint8Array(inner)));
}

interface Raw { ws: WebSocket; doc: Y.Doc; text: Y.Text; closed: () => number | undefined; flushed: () => Promise<boolean> }
/** A raw connection to `room`, with a local Y.Doc whose every change is sent as an update. `flushed` sends a sync
 * step 1 and waits for its answer: the server handles a connection's messages in order, so everything sent before
 * has then been handled (false if the connection closed first). */
async function rawPad(port: number, room: string, auth?: string): Promise<Raw> {
  const headers = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : undefined;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/${room}`, { headers });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  let closed: number | undefined;
  const waiters: (() => void)[] = [];
  ws.on('close', (code) => { closed = code; for (const w of waiters.splice(0)) w(); });
  ws.on('error', () => undefined);
  ws.on('message', (m: Buffer) => {
    try {
      const d = decoding.createDecoder(new Uint8Array(m));
      if (decoding.readVarUint(d) === 0 && decoding.readVarUint(d) === 1) waiters.shift()?.();
    } catch { /* not ours to check */ }
  });
  const doc = new Y.Doc();
  doc.on('update', (u: Uint8Array) => { if (ws.readyState === ws.OPEN) ws.send(syncUpdate(u)); });
  const flushed = () => new Promise<boolean>((resolve) => {
    if (ws.readyState !== ws.OPEN) { resolve(false); return; }
    waiters.push(() => resolve(ws.readyState === ws.OPEN));
    ws.send(syncStep1(Y.encodeStateVector(doc)));
  });
  return { ws, doc, text: doc.getText('content'), closed: () => closed, flushed };
}

const hex = (bytes: number) => crypto.randomBytes(Math.ceil(bytes / 2)).toString('hex').slice(0, bytes);

async function containerState(name: string) {
  const i = await docker.getContainer(name).inspect();
  return { restarts: i.RestartCount, oom: i.State.OOMKilled, running: i.State.Running, started: i.State.StartedAt };
}
/** The server's peak resident memory (VmHWM of the container's PID 1, the node server), in MB. */
async function serverPeakMb(name: string): Promise<number> {
  const r = await execIn(name, ['/usr/bin/node', '-e', "process.stdout.write(require('fs').readFileSync('/proc/1/status','utf8'))"]);
  const m = /VmHWM:\s+(\d+) kB/.exec(r.out);
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}
async function internal(name: string, p: string) {
  const r = await execIn(name, ['/usr/bin/node', '-e', `fetch('http://127.0.0.1:1234${p}').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
  return JSON.parse(r.out);
}
async function dbBytes(name: string): Promise<number> {
  const r = await execIn(name, ['du', '-sb', '/var/lib/pads/db']);
  return Number(r.out.trim().split(/\s+/)[0]);
}
/** A pad is usable: a client syncs it, writes a marker, and a second client reads it. */
async function usable(base: string, room: string, auth?: string) {
  const a = client(base, room, auth);
  const b = client(base, room, auth);
  try {
    await waitFor(`${room} synced`, () => a.provider.synced && b.provider.synced, 20_000);
    const marker = `ok-${crypto.randomBytes(4).toString('hex')}`;
    a.text.insert(0, marker);
    await waitFor(`${room} marker seen`, () => b.text.toString().includes(marker), 20_000);
    return true;
  } finally { for (const c of [a, b]) { c.provider.destroy(); c.doc.destroy(); } }
}

lane(0, 'pads: no Yjs message of any type, size or count from an anonymous client restarts the container', async (t, subnetPool) => {
  const rt = await testRuntime(t, { subnetPool });
  const { app, config } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'wire' } });
  t.equal(created.statusCode, 202, created.body);
  const port: number = created.json().ports.http;
  const base = `ws://127.0.0.1:${port}`;
  const container = `${config.hosterId}-wire`;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/wire')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  const before = await containerState(container);

  // A burst: one kind of message, in a generated size and count, on both sides of the frame limit (1 MB + 64 KB: a
  // larger frame is refused by ws before it is handed on; that refusal once ended the process).
  const kind = fc.constantFrom('awareness', 'syncStep1', 'update', 'garbageSync', 'otherType', 'random');
  const burst = fc.record({ kind, size: fc.integer({ min: 0, max: 1_300_000 }), count: fc.integer({ min: 1, max: 200 }), repeat: fc.integer({ min: 1, max: 150 }) });
  const message = (b: { kind: string; size: number; count: number }, i: number): Buffer => {
    switch (b.kind) {
      case 'awareness': return awarenessMsg(1_000_000 + i * b.count, b.count, Math.floor(b.size / b.count) - 24);
      case 'syncStep1': return syncStep1(Y.encodeStateVector(new Y.Doc()));
      case 'update': { const d = new Y.Doc(); d.getText('content').insert(0, hex(Math.min(b.size, 200_000))); return syncUpdate(Y.encodeStateAsUpdate(d)); }
      case 'garbageSync': return frame(0, (e) => encoding.writeVarUint(e, b.count % 4), (e) => encoding.writeVarUint8Array(e, crypto.randomBytes(b.size)));
      case 'otherType': return frame(2 + (b.count % 100), (e) => encoding.writeVarUint8Array(e, crypto.randomBytes(b.size)));
      default: return crypto.randomBytes(Math.max(1, b.size));
    }
  };
  let run = 0;
  const peaks: number[] = [];
  await fc.assert(fc.asyncProperty(fc.array(burst, { minLength: 1, maxLength: 3 }), async (bursts) => {
    const room = `public/wire${run++}`;
    // Peers that never read (their sockets paused): what the server sends them piles up on its side.
    const peers = await Promise.all(Array.from({ length: 5 }, () => rawPad(port, room)));
    for (const p of peers) (p.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const attackers = await Promise.all(Array.from({ length: 2 }, () => rawPad(port, room)));
    const deadline = Date.now() + 4000;
    await Promise.all(attackers.map(async (a, n) => {
      for (const b of bursts) {
        for (let i = 0; i < b.repeat && Date.now() < deadline && a.ws.readyState === a.ws.OPEN; i++) {
          a.ws.send(message(b, i + n * 10_000));
          // As fast as the server takes them, without piling up more than a few MB in this test process.
          while (a.ws.bufferedAmount > 8 * 1024 * 1024 && Date.now() < deadline) await sleep(20);
          if (i % 20 === 19) await sleep(20);
        }
      }
    }));
    await sleep(1500);
    for (const c of [...peers, ...attackers]) c.ws.terminate();
    const now = await containerState(container);
    peaks.push(await serverPeakMb(container));
    if (now.restarts !== before.restarts || now.oom || !now.running || now.started !== before.started) {
      throw new Error(`the container restarted: ${JSON.stringify(now)} after ${JSON.stringify(bursts)}`);
    }
    if (!(await usable(base, room))) throw new Error(`${room} unusable after ${JSON.stringify(bursts)}`);
    return true;
  }), {
    numRuns: 5,
    // The review's attack: 100 new clients of ~10 KB a message, 120 messages, 5 silent peers.
    examples: [[[{ kind: 'awareness', size: 1_000_000, count: 100, repeat: 120 }]], [[{ kind: 'syncStep1', size: 0, count: 1, repeat: 150 }, { kind: 'update', size: 200_000, count: 1, repeat: 40 }]]],
  });
  const after = await containerState(container);
  t.same({ restarts: after.restarts, oom: after.oom, running: after.running }, { restarts: before.restarts, oom: false, running: true }, 'never restarted, never OOM-killed');
  t.comment(`server peak RSS (VmHWM) after each run, MB: ${peaks.join(', ')}`);
  t.ok(await usable(base, 'public/after-all'), 'a new pad works after all the runs');
});

lane(1, 'pads: insert/delete cycles keep stored bytes within each limit plus its slack; usage and a large export stay within memory', async (t, subnetPool) => {
  const rt = await testRuntime(t, { subnetPool });
  const { app, config } = rt;
  const PUBLIC_KB = 64;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'store', env: { PADS_PUBLIC_MAX_KB: String(PUBLIC_KB) } } });
  t.equal(created.statusCode, 202, created.body);
  const port: number = created.json().ports.http;
  const base = `ws://127.0.0.1:${port}`;
  const container = `${config.hosterId}-store`;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/store')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  const QUOTA_MB = 20;
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/store/accounts', payload: { username: 'lea', password: 'lea-secret-123', quotaMb: QUOTA_MB } })).statusCode, 201);
  const LEA = 'lea:lea-secret-123';
  const info = await internal(container, '/_cattery/pads/public');
  const publicCap: number = info.limits.publicMaxBytes;
  const privateCap: number = info.limits.privateMaxBytes;
  // The documented slack (limits.cjs): stored bytes may pass a limit by a quarter of it, at least 64 KiB, before the
  // pad is compacted to its merged state.
  const slack = { public: info.slack.public as number, private: info.slack.private as number };
  t.equal(slack.public, Math.max(64 * 1024, publicCap / 4));
  const before = await containerState(container);

  /** Insert then delete, cycle after cycle, on one pad; `keep` characters of each insert stay. Stops at a refusal
   * (a pad or the account full: the connection is closed, nothing more is stored). */
  const cycle = async (room: string, cap: number, cycles: { insert: number; keep: number }[], auth?: string) => {
    const p = await rawPad(port, room, auth);
    for (const c of cycles) {
      if (p.closed() !== undefined) break;
      const len = Math.max(1, Math.floor((cap * 0.9 * c.insert) / 100));
      p.text.insert(0, hex(len));
      if (!(await p.flushed())) break;
      p.text.delete(0, Math.max(0, len - c.keep));
      if (!(await p.flushed())) break;
    }
    return p;
  };
  const cycles = fc.array(fc.record({ insert: fc.integer({ min: 1, max: 100 }), keep: fc.integer({ min: 0, max: 300 }) }), { minLength: 2, maxLength: 5 });
  const plan = fc.record({ pub: fc.array(cycles, { minLength: 1, maxLength: 3 }), priv: fc.array(cycles, { minLength: 1, maxLength: 3 }) });
  let run = 0;
  const check = async (what: string) => {
    const pub = await internal(container, '/_cattery/pads/public');
    for (const [name, bytes] of Object.entries(pub.stored as Record<string, number>)) {
      if (bytes > publicCap + slack.public) throw new Error(`${what}: ${name} stores ${bytes} bytes > ${publicCap} + ${slack.public}`);
    }
    const mine = await internal(container, '/_cattery/pads?user=lea') as { name: string; bytes: number }[];
    for (const p of mine) if (p.bytes > privateCap + slack.private) throw new Error(`${what}: private ${p.name} stores ${p.bytes}`);
    const total = mine.reduce((s, p) => s + p.bytes, 0);
    if (total > QUOTA_MB * 1024 * 1024 + slack.private) throw new Error(`${what}: lea's pads store ${total} bytes > quota + slack`);
    return { pads: Object.keys(pub.stored).length, total, privatePads: mine.length };
  };
  await fc.assert(fc.asyncProperty(plan, async ({ pub, priv }) => {
    const r = run++;
    const open = await Promise.all([
      ...pub.map((c, i) => cycle(`public/cyc${r}-${i}`, publicCap, c)),
      ...priv.map((c, i) => cycle(`private/lea/cyc${r}-${i}`, privateCap, c, LEA)),
    ]);
    await check('connections open');
    for (const p of open) p.ws.close();
    await sleep(500);
    await check('connections closed');
    return true;
  }), {
    numRuns: 2,
    // Heavy: three private pads, each filled to 1.8 MB and emptied four times (22 MB written), and a public pad 30 times.
    examples: [[{ pub: [Array.from({ length: 30 }, () => ({ insert: 100, keep: 0 }))], priv: Array.from({ length: 3 }, () => Array.from({ length: 4 }, () => ({ insert: 100, keep: 0 }))) }]],
  });
  // The LevelDB folder on disk: what the pads may store, plus LevelDB's own overhead (its write-ahead log and level-0
  // tables not yet compacted: a write buffer of 4 MB, a few tables), allowed here as 24 MB in all.
  const onDisk = await dbBytes(container);
  const { pads, total, privatePads } = await check('at the end');
  const allowed = pads * (publicCap + slack.public) + Math.min(QUOTA_MB * 1024 * 1024 + slack.private, privatePads * (privateCap + slack.private)) + 24 * 1024 * 1024;
  t.ok(onDisk <= allowed, `the LevelDB folder holds ${onDisk} bytes (lea's pads: ${total}), within ${allowed}`);
  t.ok(await usable(base, 'private/lea/cyc0-0', LEA), 'a cycled private pad still opens and takes text');

  // Usage and export of an account with many large pads: ten pads of 1.8 MB each (under PADS_PRIVATE_MAX_KB=2048),
  // more than 16 MB in all (the size of the container's /tmp).
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/store/accounts', payload: { username: 'max', password: 'max-secret-123', quotaMb: 64 } })).statusCode, 201);
  const MAX = 'max:max-secret-123';
  const CHUNK = 900 * 1024;
  const texts = new Map<string, string>();
  const BIG = 10;
  for (let i = 0; i < BIG; i++) {
    // A 503 (the server near its memory mark after the cycles above) is a "later": retried as a client would.
    const p = await waitFor(`big${i} open`, () => rawPad(port, `private/max/big${i}`, MAX), 30_000, 1000);
    for (let k = 0; k < 2; k++) p.text.insert(p.text.length, hex(CHUNK));
    t.ok(await p.flushed(), `big${i} written`);
    texts.set(`big${i}`, p.text.toString());
    // One more chunk passes the pad's own cap: refused, the connection closed with 4507.
    p.text.insert(p.text.length, hex(CHUNK));
    await p.flushed();
    await waitFor('refused', () => p.closed() !== undefined, 10_000);
    t.equal(p.closed(), 4507, `big${i}: a pad past PADS_PRIVATE_MAX_KB is refused`);
  }
  const usage = await app.inject('/api/instances/store/accounts/max?usage=true');
  t.equal(usage.statusCode, 200, usage.body);
  t.equal(usage.json().usageItems, BIG);
  t.ok(usage.json().usageBytes >= BIG * 2 * CHUNK && usage.json().usageBytes <= BIG * (privateCap + slack.private), `usage: ${usage.json().usageBytes} bytes`);
  const exp = await app.inject('/api/instances/store/accounts/max/export');
  t.equal(exp.statusCode, 200, 'the export succeeds');
  t.ok(exp.rawPayload.length > 16 * 1024 * 1024, `the export (${exp.rawPayload.length} bytes) is larger than the container's 16 MB /tmp`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-export-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await pipeline(Readable.from(exp.rawPayload), tar.extract(dir));
  for (const [name, text] of texts) {
    t.ok(fs.readFileSync(path.join(dir, 'max', `${name}.md`), 'utf8') === text, `${name}.md holds the pad's text`);
    const restored = new Y.Doc();
    Y.applyUpdate(restored, fs.readFileSync(path.join(dir, 'max', `${name}.yjs`)));
    t.equal(restored.getText('content').length, text.length, `${name}.yjs restores it`);
  }
  const after = await containerState(container);
  t.same({ restarts: after.restarts, oom: after.oom, running: after.running }, { restarts: before.restarts, oom: false, running: true }, 'cycles, usage and export never restarted the container');
  t.comment(`server peak RSS (VmHWM): ${await serverPeakMb(container)} MB; LevelDB folder: ${onDisk} bytes`);
});

// Lane 1: convergence, caps, hostile wire messages; lane 2: the sign-in test (its event-loop measurement beside the
// other lane's lighter start rather than beside the wire bursts), then the long store test. Each lane's tests one
// after another, each test's runtime torn down before the next one starts.
t.jobs = 2;
for (const [n, tests] of lanes.entries()) {
  t.test(`pads, lane ${n + 1} of ${lanes.length}`, async (t) => {
    for (const [name, body] of tests) await t.test(name, (t) => body(t, subnetPoolSlice(n)));
  });
}
