// The pads' online dump (manifest backup.dump) on the real container: dumps taken while a client keeps typing
// finish, whole, and the server keeps answering; then, with the live LevelDB deleted (what a restore leaves, the
// backup excluding `pads/db`) and a corrupt and a partial dump.tmp-* left beside it, the service starts again with
// every pad back as of the last dump: text, owner (a private pad opens with its owner's account only) and public
// pads alike; the temporaries are ignored and swept.
import crypto from 'node:crypto';
import t from 'tap';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function client(base: string, room: string, auth?: string) {
  const headers = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
  class AuthWS extends WebSocket { constructor(url: string) { super(url, { headers }); } }
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(base, room, doc, { WebSocketPolyfill: AuthWS as unknown as typeof globalThis.WebSocket, disableBc: true });
  return { doc, provider, text: doc.getText('content'), done: () => { provider.destroy(); doc.destroy(); } };
}

t.test('pads dump: taken while editing, then the store rebuilt from it', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'padsdump' } });
  t.equal(created.statusCode, 202, created.body);
  const port: number = created.json().ports.http;
  const base = `ws://127.0.0.1:${port}`;
  const container = `${config.hosterId}-padsdump`;
  const healthy = () => waitFor('pads healthy', async () => (await app.inject('/api/instances/padsdump')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  await healthy();
  const users = ['alice', 'bob', 'carole'];
  for (const username of users) {
    t.equal((await app.inject({ method: 'POST', url: '/api/instances/padsdump/accounts', payload: { username, password: `${username}-secret-123`, quotaMb: 20 } })).statusCode, 201);
  }
  const auth = (u: string) => `${u}:${u}-secret-123`;
  const clients: ReturnType<typeof client>[] = [];
  t.teardown(() => { for (const c of clients) c.done(); });
  const open = (room: string, a?: string) => { const c = client(base, room, a); clients.push(c); return c; };
  const read = async (room: string, a?: string) => {
    const c = open(room, a);
    await waitFor(`${room} read`, () => c.provider.synced, 30_000);
    const text = c.text.toString();
    c.done();
    return text;
  };
  const internal = async (p: string) => {
    const r = await execIn(container, ['/usr/bin/node', '-e', `fetch('http://127.0.0.1:1234${p}').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
    return JSON.parse(r.out);
  };

  // Pads with content: two or three per account (one of them ~300 KB), and public pads.
  const want = new Map<string, { room: string; auth?: string; text: string }>();
  for (const [i, u] of users.entries()) {
    for (let k = 0; k <= i % 2 + 1; k++) {
      const text = k === 0 && i === 0 ? crypto.randomBytes(225 * 1024).toString('base64') : `Pad ${k} de ${u} : ${crypto.randomBytes(8).toString('hex')}`;
      want.set(`private/${u}/p${k}`, { room: `private/${u}/p${k}`, auth: auth(u), text });
    }
  }
  for (const name of ['quartier', 'courses']) want.set(`public/${name}`, { room: `public/${name}`, text: `Public ${name} ${crypto.randomBytes(6).toString('hex')}` });
  for (const w of want.values()) {
    const c = open(w.room, w.auth);
    await waitFor(`${w.room} synced`, () => c.provider.synced, 30_000);
    c.text.insert(0, w.text);
    await waitFor(`${w.room} stored`, async () => (await read(w.room, w.auth)) === w.text, 30_000);
    c.done();
  }

  // Dumps while a client keeps typing into a public pad.
  const typist = open('public/live');
  await waitFor('typist synced', () => typist.provider.synced, 30_000);
  let typing = true;
  const typed = (async () => { let n = 0; while (typing) { typist.text.insert(typist.text.length, `${n++ % 10}`); await sleep(20); } })();
  await sleep(500);
  const dump = () => execIn(container, ['/usr/bin/node', '/opt/pads/dump.cjs']);
  let answered = 0;
  for (let i = 0; i < 2; i++) {
    const before = typist.text.toString();
    const pending = dump();
    // The server answers while the dump runs (no timing asserted: a bound of 30 s for a page is liveness).
    const page = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(30_000) });
    if (page.status === 200) answered += 1;
    const r = await pending;
    t.equal(r.code, 0, `dump ${i + 1} exits 0 (${r.out.trim()})`);
    t.equal(JSON.parse(r.out).ok, true);
    t.ok(typist.text.toString().length > before.length, 'the client kept typing during the dump');
  }
  t.equal(answered, 2, 'the server answered during each dump');
  typing = false;
  await typed;
  // The last dump, once typing stopped and the text is stored: the state the restore must give back.
  const liveText = typist.text.toString();
  await waitFor('typed text stored', async () => (await read('public/live')) === liveText, 30_000);
  want.set('public/live', { room: 'public/live', text: liveText });
  const last = await dump();
  t.equal(last.code, 0, last.out);
  const ls = await execIn(container, ['ls', '-la', '/var/lib/pads']);
  t.match(ls.out, /-rw------- .* dump\n/, 'the dump is 0600');
  t.notMatch(ls.out, /dump\.tmp-/, 'no temporary left after a dump');
  const listsBefore = Object.fromEntries(await Promise.all(users.map(async (u) => [u, await internal(`/_cattery/pads?user=${u}`)])));
  const publicBefore = (await internal('/_cattery/pads/public')).names.sort();
  for (const c of clients) c.done();

  // What a restore leaves: no LevelDB, the dump, and temporaries of a dump that never finished.
  const sh = (script: string) => execIn(container, ['/bin/sh', '-c', script]);
  t.equal((await sh('head -c 200 /var/lib/pads/dump > /var/lib/pads/dump.tmp-partial1 && head -c 4096 /dev/urandom > /var/lib/pads/dump.tmp-corrupt2 && rm -rf /var/lib/pads/db')).code, 0);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/padsdump/stop' })).statusCode < 300, true, 'stopped');
  await waitFor('stopped', async () => (await app.inject('/api/instances/padsdump')).json().observed !== 'healthy', 60_000, 500);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/padsdump/start' })).statusCode < 300, true, 'started');
  await healthy();

  const after = await sh('ls -a /var/lib/pads /var/lib/pads/db | head -20');
  t.notMatch(after.out, /dump\.tmp-/, 'the temporaries were swept');
  t.match(after.out, /CURRENT/, 'a LevelDB was built');
  for (const w of want.values()) t.equal(await read(w.room, w.auth), w.text, `${w.room} is back as of the dump`);
  for (const u of users) t.same(await internal(`/_cattery/pads?user=${u}`), listsBefore[u], `${u}'s pads and their stored bytes are back`);
  t.same((await internal('/_cattery/pads/public')).names.sort(), publicBefore, 'the public pads are back');
  // Owners: a private pad still opens with its owner's account only.
  const intruder = open('private/alice/p0', auth('bob'));
  await sleep(1500);
  t.notOk(intruder.provider.synced, "bob cannot open alice's restored pad");
  intruder.done();
  // And the restored store takes edits.
  const edit = open('private/bob/p1', auth('bob'));
  await waitFor('edit synced', () => edit.provider.synced, 30_000);
  edit.text.insert(0, 'Après restauration. ');
  await waitFor('edit stored', async () => (await read('private/bob/p1', auth('bob'))).startsWith('Après restauration. '), 30_000);
  edit.done();
});
