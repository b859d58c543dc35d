// The pads' import account operation on the real container: an export imported again gives back exactly the pads it
// held (changed pads restored, added ones removed, deleted ones back), other accounts and public pads untouched;
// every hostile archive of the kind below is refused whole, leaving alice's and bob's pads as they were and a live
// editor connected; and an import under editors connected to a replaced pad (the browser's and a plain Yjs client
// that keeps typing) ends with the imported text, never the editors' old copy merged back.
import crypto from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { docker, execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function client(base: string, room: string, auth?: string) {
  const headers = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
  class AuthWS extends WebSocket { constructor(url: string) { super(url, { headers }); } }
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(base, room, doc, { WebSocketPolyfill: AuthWS as unknown as typeof globalThis.WebSocket, disableBc: true });
  const closes: number[] = [];
  (provider as unknown as { on(ev: string, f: (e: { code?: number } | null) => void): void }).on('connection-close', (e) => { closes.push(e?.code ?? -1); });
  return { doc, provider, text: doc.getText('content'), closes, done: () => { provider.destroy(); doc.destroy(); } };
}

// ---- A ustar writer with every field in reach: what a hostile archive may hold. ----
interface Member { name: string; body?: Buffer; type?: string; linkname?: string }
function header(m: Member): Buffer {
  const h = Buffer.alloc(512);
  const size = m.body?.length ?? 0;
  h.write(m.name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'ascii');
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  h.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136, 'ascii');
  h.fill(0x20, 148, 156);
  h.write(m.type ?? '0', 156, 'ascii');
  if (m.linkname) h.write(m.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}
function tarOf(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    parts.push(header(m));
    if (m.body) { parts.push(m.body); if (m.body.length % 512) parts.push(Buffer.alloc(512 - (m.body.length % 512))); }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
/** The members of one of the export's own archives (regular files and folders only). */
function untar(buf: Buffer): Member[] {
  const out: Member[] = [];
  for (let pos = 0; pos + 512 <= buf.length;) {
    const h = buf.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const cstr = (at: number, len: number) => { const f = h.subarray(at, at + len); const e = f.indexOf(0); return f.subarray(0, e < 0 ? len : e).toString('utf8'); };
    const prefix = cstr(345, 155);
    const name = prefix ? `${prefix}/${cstr(0, 100)}` : cstr(0, 100);
    const size = parseInt(cstr(124, 12).trim() || '0', 8);
    const type = h[156] === 0 ? '0' : String.fromCharCode(h[156]!);
    out.push({ name, type, body: Buffer.from(buf.subarray(pos + 512, pos + 512 + size)) });
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
const stateOf = (text: string) => { const d = new Y.Doc(); d.getText('content').insert(0, text); const s = Buffer.from(Y.encodeStateAsUpdate(d)); d.destroy(); return s; };

/** Run an account operation with raw bytes on stdin (the import's request line, then the archive). */
async function execInput(container: string, cmd: string[], input: Buffer): Promise<{ code: number; out: string }> {
  const exec = await docker.getContainer(container).exec({ Cmd: cmd, AttachStdin: true, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: true });
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const sink = { write: (b: Buffer) => { chunks.push(b); return true; } } as unknown as NodeJS.WritableStream;
    docker.modem.demuxStream(stream, sink, sink);
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  stream.write(input);
  (stream as unknown as { end(): void }).end();
  await done;
  const info = await exec.inspect();
  return { code: info.ExitCode ?? -1, out: Buffer.concat(chunks).toString() };
}

t.test('pads import: round trip, hostile archives refused whole, editors never merge a replaced pad back', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'padsimp' } });
  t.equal(created.statusCode, 202, created.body);
  const port: number = created.json().ports.http;
  const base = `ws://127.0.0.1:${port}`;
  const container = `${config.hosterId}-padsimp`;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/padsimp')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  for (const [username, quotaMb] of [['alice', 5], ['bob', 5]] as const) {
    t.equal((await app.inject({ method: 'POST', url: '/api/instances/padsimp/accounts', payload: { username, password: `${username}-secret-123`, quotaMb } })).statusCode, 201);
  }
  const A = 'alice:alice-secret-123';
  const B = 'bob:bob-secret-123';
  const clients: ReturnType<typeof client>[] = [];
  t.teardown(() => { for (const c of clients) c.done(); });
  const open = (room: string, auth?: string) => { const c = client(base, room, auth); clients.push(c); return c; };
  const setText = async (room: string, auth: string | undefined, text: string) => {
    const c = open(room, auth);
    await waitFor(`${room} synced`, () => c.provider.synced, 20_000);
    c.doc.transact(() => { c.text.delete(0, c.text.length); c.text.insert(0, text); });
    // Read back through a second connection: the server has it.
    const r = open(room, auth);
    await waitFor(`${room} written`, () => r.provider.synced && r.text.toString() === text, 20_000);
    c.done(); r.done();
  };
  const read = async (room: string, auth?: string) => {
    const c = open(room, auth);
    await waitFor(`${room} read`, () => c.provider.synced, 20_000);
    const text = c.text.toString();
    c.done();
    return text;
  };
  const list = async (user: string) => {
    const r = await execIn(container, ['/usr/bin/node', '-e', `fetch('http://127.0.0.1:1234/_cattery/pads?user=${user}').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
    return JSON.parse(r.out) as { name: string; bytes: number }[];
  };
  const texts = async (user: string, auth: string) => {
    const out: Record<string, string> = {};
    for (const p of await list(user)) out[p.name] = await read(`private/${user}/${p.name}`, auth);
    return out;
  };
  const importOp = (username: string, archive: Buffer, quotaMb = 5) =>
    execInput(container, ['/usr/bin/node', '/opt/pads/account.cjs', 'import'], Buffer.concat([Buffer.from(`${JSON.stringify({ username, quotaMb })}\n`), archive]));
  const exportOf = async (user: string) => {
    const r = await app.inject(`/api/instances/padsimp/accounts/${user}/export`);
    t.equal(r.statusCode, 200, `export of ${user}`);
    return r.rawPayload;
  };

  // ---- Round trip ----
  await setText('private/alice/one', A, '# Un\n\nPremière version.');
  await setText('private/alice/two', A, 'Deux, à garder.');
  await setText('private/bob/notes', B, 'Les notes de Bob.');
  await setText('public/quartier', undefined, 'Le pad public du quartier.');
  const first = await exportOf('alice');
  const firstTexts = await texts('alice', A);
  t.same(firstTexts, { one: '# Un\n\nPremière version.', two: 'Deux, à garder.' });
  const bobBefore = await list('bob');

  // Changed, added, deleted: an import of a second archive holding `one` changed and `three`, without `two`.
  await setText('private/alice/one', A, '# Un\n\nSeconde version.');
  await setText('private/alice/three', A, 'Trois.');
  const second = untar(await exportOf('alice')).filter((m) => !m.name.startsWith('alice/two.'));
  const r2 = await importOp('alice', tarOf(second));
  t.same([r2.code, JSON.parse(r2.out)], [0, { ok: true }], 'an import of a changed archive');
  t.same(await texts('alice', A), { one: '# Un\n\nSeconde version.', three: 'Trois.' }, 'the account holds exactly that archive (two deleted)');

  const r1 = await importOp('alice', first);
  t.same([r1.code, JSON.parse(r1.out)], [0, { ok: true }], 'the first export imported again');
  t.same(await texts('alice', A), firstTexts, 'exactly the first state: one restored, two back, three gone');
  const again = untar(await exportOf('alice'));
  t.same(again.map((m) => [m.name, m.body?.toString('utf8')]).filter(([n]) => String(n).endsWith('.md')),
    untar(first).map((m) => [m.name, m.body?.toString('utf8')]).filter(([n]) => String(n).endsWith('.md')), 'and its export has the same Markdown');
  t.same(await list('bob'), bobBefore, "bob's pads untouched");
  t.equal(await read('private/bob/notes', B), 'Les notes de Bob.');
  t.equal(await read('public/quartier'), 'Le pad public du quartier.', 'public pads untouched');

  // ---- Hostile archives, as a kind ----
  // A live editor on one of alice's pads and one on bob's, connected through every refused import.
  const live = open('private/alice/one', A);
  const liveBob = open('private/bob/notes', B);
  await waitFor('live editors synced', () => live.provider.synced && liveBob.provider.synced, 20_000);
  const aliceBefore = await list('alice');
  const valid = untar(first);
  const big = stateOf(crypto.randomBytes(900 * 1024).toString('base64').slice(0, 1_100_000));
  const garbage = (seed: number) => Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), crypto.createHash('sha256').update(String(seed)).digest()]);
  type Hostile = { kind: string; members?: Member[]; user?: string; cut?: number; quotaMb?: number; flip?: [number, number] };
  const hostile = fc.oneof(
    fc.constantFrom('alice/../bob/notes.yjs', '../notes.yjs', 'alice/../../etc/passwd', 'alice/./../x.yjs').map((name): Hostile => ({ kind: 'traversal', members: [{ name, body: stateOf('x') }] })),
    fc.constantFrom('/alice/x.yjs', '/etc/passwd', '//alice/x.md').map((name): Hostile => ({ kind: 'absolute', members: [{ name, body: stateOf('x') }] })),
    fc.constantFrom('bob/notes.yjs', 'bob/new.yjs', 'bob/').map((name): Hostile => ({ kind: 'other user', members: [{ name, type: name.endsWith('/') ? '5' : '0', body: name.endsWith('/') ? undefined : stateOf('pris à bob') }] })),
    fc.constantFrom('1', '2').map((type): Hostile => ({ kind: 'link', members: [{ name: 'alice/lien.yjs', type, linkname: type === '1' ? 'alice/one.yjs' : '/etc/passwd' }] })),
    fc.constantFrom('3', '4', '6').map((type): Hostile => ({ kind: 'device', members: [{ name: 'alice/dev.yjs', type }] })),
    fc.integer({ min: 0, max: 1_000_000 }).map((seed): Hostile => ({ kind: 'garbage yjs', members: [{ name: 'alice/g.yjs', body: garbage(seed) }] })),
    fc.constantFrom('alice/bad name.yjs', 'alice/x.txt', 'alice/sub/x.yjs', 'alice', 'notes.yjs').map((name): Hostile => ({ kind: 'bad name', members: [{ name, body: stateOf('x') }] })),
    fc.constant<Hostile>({ kind: 'oversize', members: [{ name: 'alice/big.yjs', body: big }], quotaMb: 1 }),
    fc.double({ min: 0, max: 0.99, noNaN: true }).map((cut): Hostile => ({ kind: 'truncated', cut })),
    // A byte of the first header changed (outside its checksum field, whose padding may vary): a bad checksum.
    fc.record({ at: fc.oneof(fc.integer({ min: 0, max: 147 }), fc.integer({ min: 156, max: 511 })), xor: fc.integer({ min: 1, max: 255 }) })
      .map(({ at, xor }): Hostile => ({ kind: 'malformed header', flip: [at, xor] })),
    fc.constantFrom('nobody', 'alicex', 'alic').map((user): Hostile => ({ kind: 'nonexistent user', user })),
  );
  const LISTS = `/usr/bin/node -e "Promise.all(['alice','bob'].map((u)=>fetch('http://127.0.0.1:1234/_cattery/pads?user='+u).then((r)=>r.json()))).then(([alice,bob])=>process.stdout.write(JSON.stringify({alice,bob})))"`;
  let runs = 0;
  const kinds = new Set<string>();
  await fc.assert(fc.asyncProperty(hostile, fc.nat(), async (h, at) => {
    runs += 1;
    kinds.add(h.kind);
    let archive: Buffer;
    if (h.kind === 'truncated') archive = first.subarray(0, Math.floor(h.cut! * (first.length - 1024)));
    else if (h.flip) { archive = Buffer.from(first); archive[h.flip[0]] = archive[h.flip[0]]! ^ h.flip[1]; }
    else {
      const members = [...valid];
      members.splice(at % (members.length + 1), 0, ...(h.members ?? []));
      archive = tarOf(members);
    }
    // One exec per run (each costs seconds on a loaded machine): the import, its exit code, then both accounts' pads.
    const input = Buffer.concat([Buffer.from(`${JSON.stringify({ username: h.user ?? 'alice', quotaMb: h.quotaMb ?? 5 })}\n`), archive]);
    const r = await execInput(container, ['/bin/sh', '-c', `/usr/bin/node /opt/pads/account.cjs import; echo "exit=$?"; ${LISTS}`], input);
    const m = /^(.*)\nexit=(\d+)\n(.*)$/s.exec(r.out);
    if (!m) throw new Error(`${h.kind}: unexpected output ${r.out}`);
    let answer: { ok?: boolean; error?: string } = {};
    try { answer = JSON.parse(m[1]!.trim().split('\n').pop()!); } catch { /* below */ }
    if (m[2] === '0' || answer.ok !== false || !answer.error) throw new Error(`${h.kind}: not refused (${m[2]} ${m[1]})`);
    const { alice: a, bob: b } = JSON.parse(m[3]!) as { alice: unknown; bob: unknown };
    if (JSON.stringify(a) !== JSON.stringify(aliceBefore)) throw new Error(`${h.kind}: alice's pads changed: ${JSON.stringify(a)}`);
    if (JSON.stringify(b) !== JSON.stringify(bobBefore)) throw new Error(`${h.kind}: bob's pads changed: ${JSON.stringify(b)}`);
    return true;
  }), { numRuns: Number(process.env.PADS_IMPORT_RUNS ?? 16), seed: Number(process.env.FC_SEED ?? Date.now() % 1_000_000) });
  t.comment(`hostile kinds tried: ${[...kinds].join(', ')} (${runs} runs)`);
  t.same([live.closes, liveBob.closes], [[], []], 'the live editors were never disconnected');
  const marker = `vivant-${crypto.randomBytes(3).toString('hex')}`;
  live.text.insert(live.text.length, marker);
  await waitFor('live editor still works', async () => (await read('private/alice/one', A)).endsWith(marker), 20_000);
  t.pass('a live editor connection still works after the refused imports');
  live.done(); liveBob.done();
  t.equal(await read('private/alice/two', A), firstTexts.two, "alice's pads as they were");

  // ---- An import under connected editors ----
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  const ctx = await browser.newContext({ httpCredentials: { username: 'alice', password: 'alice-secret-123' } });
  const page = await ctx.newPage();
  await page.goto(`http://127.0.0.1:${port}/private/alice/two`);
  await page.getByText('Connecté').waitFor({ timeout: 60_000 });
  await page.locator('.cm-content').click();
  await page.keyboard.press('End');
  await page.keyboard.type(' Tapé dans le navigateur.');
  const shown = () => page.evaluate(() => (window as unknown as { catteryPad?: { text: { toString(): string } } }).catteryPad?.text.toString()).catch(() => undefined);
  await waitFor('browser text stored', async () => (await read('private/alice/two', A)).includes('Tapé dans le navigateur'), 30_000);
  // A plain Yjs client on the same pad that keeps typing, before and after the import.
  const stale = open('private/alice/two', A);
  await waitFor('stale client synced', () => stale.provider.synced, 20_000);
  let typing = true;
  const typist = (async () => { while (typing) { stale.text.insert(stale.text.length, '!'); await sleep(100); } })();
  await sleep(500);
  const ri = await importOp('alice', first);
  t.same([ri.code, JSON.parse(ri.out)], [0, { ok: true }], 'import while editors are connected');
  await waitFor('the browser shows the imported text', async () => (await shown()) === firstTexts.two, 60_000);
  t.pass('the browser editor reloaded and shows the imported text');
  t.ok(stale.closes.includes(4409), `the plain client was closed with 4409 (closes: ${stale.closes.join(',')})`);
  // It goes on typing and reconnecting with its old copy for a while: the server never takes it back.
  await sleep(4000);
  typing = false;
  await typist;
  t.equal(await read('private/alice/two', A), firstTexts.two, 'the pad still holds exactly the imported text');
  t.equal(await shown(), firstTexts.two, 'and so does the browser');
  stale.done();
  await ctx.close();
});
