// The import account operation of mail and files, on real instances: export → change → import gives back exactly
// the exported state as the resident's own client sees it (IMAP, WebDAV), other accounts (names sharing prefixes)
// untouched; and, as a kind, generated hostile archives (traversal, absolute names, other accounts' prefixes, links,
// devices, oversize, truncation, garbage, bad headers) are all refused with nothing changed anywhere on the volume.
import crypto from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import fc from 'fast-check';
import { extract, pack } from 'tar-stream';
import { ImapFlow } from 'imapflow';
import { pino } from 'pino';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir } from '../../src/orchestrator/docker/images.js';
import { docker, execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';
import { PROBES, imapOptions, newMarker, type ProbeCtx } from './probes.js';

const SEED = Number(process.env.IMPORT_SEED ?? Date.now() % 2 ** 31);
const RUNS = Number(process.env.IMPORT_RUNS ?? 15);
const DOMAIN = 'quartier.test';
const USERS = ['alice', 'alice2', 'alic', 'bob'] as const;
const PASS: Record<string, string> = Object.fromEntries(USERS.map((u) => [u, `${u}-secret-import`]));

interface Svc { id: 'mail' | 'files'; slug: string; volume: string; home: (u: string) => string; argv: (op: string) => string[] }
const SERVICES: Svc[] = [
  { id: 'mail', slug: 'imp-mail', volume: '/var/mail', home: (u) => `/var/mail/vhosts/${DOMAIN}/${u}`, argv: (op) => ['/usr/local/bin/cattery-account', op] },
  { id: 'files', slug: 'imp-files', volume: '/srv/files', home: (u) => `/srv/files/${u}`, argv: (op) => ['/usr/bin/node', '/opt/files/account.cjs', op] },
];

/** An account operation run as cattery runs it: argv from the manifest, `input` on stdin, then stdin closed. */
async function op(container: string, argv: string[], input: Buffer): Promise<{ code: number; out: Buffer }> {
  const exec = await docker.getContainer(container).exec({ Cmd: argv, AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = await exec.start({ hijack: true, stdin: true });
  const out: Buffer[] = [];
  const sink = { write: (b: Buffer) => { out.push(b); return true; } } as unknown as NodeJS.WritableStream;
  const ended = new Promise<void>((resolve) => { stream.on('end', resolve); stream.on('close', resolve); stream.on('error', () => resolve()); });
  docker.modem.demuxStream(stream, sink, { write: () => true } as unknown as NodeJS.WritableStream);
  // A refusal may come before the whole archive is read: the connection then closes under the writes.
  stream.write(input, () => undefined);
  (stream as unknown as { end(): void }).end();
  await ended;
  const code = await waitFor('exec ended', async () => { const i = await exec.inspect(); return i.Running ? undefined : { c: i.ExitCode ?? -1 }; }, 30_000, 100);
  return { code: code.c, out: Buffer.concat(out) };
}

const importInput = (header: object | string, tar: Buffer) =>
  Buffer.concat([Buffer.from(`${typeof header === 'string' ? header : JSON.stringify(header)}\n`), tar]);

/** Every path of the volume with its type, size, mode and owner, and every file's content hash: a refused import
 * must leave this exactly as it was (no staging folder, nothing written anywhere, every account as before). */
async function fingerprint(container: string, volume: string): Promise<string> {
  const r = await execIn(container, ['sh', '-c', 'find "$1" -printf "%p %y %s %m %U:%G\\n" | LC_ALL=C sort; find "$1" -type f -exec sha256sum {} + | LC_ALL=C sort', 'sh', volume]);
  if (r.code !== 0) throw new Error(`fingerprint: ${r.out}`);
  return r.out;
}

/** A tar built entry by entry with tar-stream. */
async function makeTar(entries: { header: Parameters<ReturnType<typeof pack>['entry']>[0]; body?: Buffer }[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => { chunks.push(c as Buffer); });
  const done = new Promise<void>((resolve, reject) => { p.on('end', resolve); p.on('error', reject); });
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.body) p.entry(e.header, e.body, cb); else p.entry(e.header, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

// ---- hostile archives, as a kind -------------------------------------------------------------------------------
type Entry = { header: { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo'; linkname?: string; size?: number; mode?: number; devmajor?: number; devminor?: number; pax?: Record<string, string> }; body?: Buffer };
type Hostile = { what: string; header?: object | string; entries?: Entry[]; raw?: (valid: Buffer) => Buffer };

const leaf = fc.stringMatching(/^[a-z0-9]{1,8}$/);
const validEntries = (user: string) => fc.array(fc.tuple(leaf, fc.uint8Array({ minLength: 0, maxLength: 300 })), { minLength: 1, maxLength: 4 })
  .map((files) => [
    { header: { name: `${user}/`, type: 'directory' as const } },
    { header: { name: `${user}/cur/`, type: 'directory' as const } },
    ...[...new Map(files).entries()].map(([n, b]) => ({ header: { name: `${user}/cur/${n}`, type: 'file' as const }, body: Buffer.from(b) })),
  ]);
const target = fc.constantFrom('/etc/passwd', '../bob', '../../..', 'cur', 'alice/cur', 'bob/x', '/', '.');
const body = Buffer.from('intrusion\n');
const hostile = (user: string): fc.Arbitrary<Hostile> => fc.oneof(
  fc.constantFrom('../bob/x', `${user}/../../etc/x`, `${user}/../bob/x`, `${user}/cur/../../bob/y`, '..', `${user}/..`, `./${user}/x`, `${user}/./x`, `${user}//x`)
    .map((name) => ({ what: `traversal ${name}`, entries: [{ header: { name, type: 'file' as const }, body }] })),
  fc.constantFrom(`/${user}/x`, '/etc/x', '/var/mail/x', '/srv/files/bob/x', `/tmp/${user}`)
    .map((name) => ({ what: `absolute ${name}`, entries: [{ header: { name, type: 'file' as const }, body }] })),
  fc.constantFrom('bob/x', `${user}2/x`, `${user.slice(0, -1)}/x`, `${user}x`, `${user}2/`, `${user}.old/x`, 'x')
    .map((name) => ({ what: `other prefix ${name}`, entries: [{ header: { name, type: name.endsWith('/') ? 'directory' as const : 'file' as const }, body: name.endsWith('/') ? undefined : body }] })),
  target.map((linkname) => ({ what: `symlink → ${linkname}`, entries: [{ header: { name: `${user}/cur/ln`, type: 'symlink' as const, linkname } }] })),
  fc.constantFrom(`${user}/cur/a`, '/etc/passwd', 'bob/x', '../x', `${user}`).map((linkname) => ({
    what: `hard link → ${linkname}`,
    entries: [{ header: { name: `${user}/cur/a`, type: 'file' as const }, body }, { header: { name: `${user}/cur/hl`, type: 'link' as const, linkname } }],
  })),
  fc.constantFrom('character-device' as const, 'block-device' as const, 'fifo' as const).map((type) => ({
    what: type, entries: [{ header: { name: `${user}/cur/dev`, type, devmajor: 1, devminor: 3 } }],
  })),
  fc.integer({ min: 1, max: 3 }).map((n) => ({
    what: `oversize (${n} files of 0.6 MB, quota 1 MB)`,
    header: { username: user, quotaMb: 1 },
    entries: Array.from({ length: n + 1 }, (_, i) => ({ header: { name: `${user}/cur/big${i}`, type: 'file' as const }, body: Buffer.alloc(600 * 1024, 7) })),
  })),
  fc.constantFrom('mid-data', 'boundary', 'header').map((where) => ({
    what: `truncated (${where})`,
    raw: (valid: Buffer) => {
      // The valid archive's last member is a file of 300+ bytes at most: cut inside its data, at a member boundary
      // (the end-of-archive blocks gone), or inside a header.
      const end = valid.length - 1024; // end-of-archive blocks (tar-stream writes exactly two, no record padding)
      if (where === 'boundary') return valid.subarray(0, end);
      if (where === 'header') return valid.subarray(0, 700);
      return valid.subarray(0, end - 100);
    },
  })),
  fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((g) => ({ what: 'garbage bytes', raw: () => Buffer.from(g) })),
  fc.constantFrom('', '{}', 'null', '[]', '"alice"', '{"username":"alice"', '{"quotaMb":5}').map((h) => ({ what: `bad header ${JSON.stringify(h)}`, header: h })),
  fc.constantFrom('nobody', 'alicia', 'alice3', 'Alice', '../alice', 'alice/', '.import-alice').map((u) => ({
    what: `header for ${u}`, header: { username: u, quotaMb: 5 },
  })),
  fc.constantFrom('../bob/x', `/etc/x`, 'bob/x').map((p) => ({
    what: `pax path ${p}`, entries: [{ header: { name: `${user}/cur/ok`, type: 'file' as const, pax: { path: p } }, body }],
  })),
  fc.constant<Hostile>({ what: `${user} is a file`, entries: [{ header: { name: user, type: 'file' as const }, body }] }),
);

t.test('import on mail and files', async (t) => {
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180 });
  const log = pino({ level: 'silent' });
  const engine = connectEngine('unix:///var/run/docker.sock', { hosterId: rt.config.hosterId, timeoutSeconds: 600, log });
  await buildImages(engine, rt.catalog, { mirror: rt.config.debianMirror, workDir: buildWorkDir(rt.config.dataDir), only: ['mail', 'files'], progress: () => undefined });
  const ctx: Record<string, ProbeCtx> = {};
  for (const s of SERVICES) {
    const env = PROBES[s.id]!.env;
    const r = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: s.id, slug: s.slug, ...(Object.keys(env).length ? { env } : {}) } });
    t.equal(r.statusCode, 202, r.body);
    ctx[s.id] = { container: `${rt.config.hosterId}-${s.slug}`, ports: r.json().ports, env };
  }
  await Promise.all(SERVICES.map((s) => waitFor(`${s.id} healthy`, async () => (await rt.app.inject(`/api/instances/${s.slug}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500)));
  for (const s of SERVICES) {
    for (const u of USERS) {
      const r = await rt.app.inject({ method: 'POST', url: `/api/instances/${s.slug}/accounts`, payload: { username: u, password: PASS[u], quotaMb: 5 } });
      t.equal(r.statusCode, 201, `${s.id}: ${u} created`);
    }
  }

  const exportOf = async (s: Svc, u: string) => {
    const r = await op(ctx[s.id]!.container, s.argv('export'), Buffer.from(JSON.stringify({ username: u })));
    if (r.code !== 0) throw new Error(`export ${u}: ${r.out}`);
    return r.out;
  };
  const importInto = (s: Svc, header: object | string, tar: Buffer) => op(ctx[s.id]!.container, s.argv('import'), importInput(header, tar));
  /** Another account's folder, byte for byte (paths, types, sizes, modes, owners, contents). */
  const folder = async (s: Svc, u: string) => fingerprint(ctx[s.id]!.container, s.home(u));

  await t.test('mail: export, change, import gives back the exported mailbox over IMAP', async (t) => {
    const s = SERVICES[0]!;
    const c = ctx.mail!;
    const first = [newMarker(), newMarker()];
    for (const m of first) await PROBES.mail!.seed(c, 'alice', PASS.alice!, m);
    for (const u of USERS.slice(1)) await PROBES.mail!.seed(c, u, PASS[u]!, newMarker());
    t.same((await PROBES.mail!.data(c, 'alice', PASS.alice!, [])).sort(), [...first].sort(), 'alice reads her two messages');
    const saved = await exportOf(s, 'alice');
    const others = await Promise.all(USERS.slice(1).map((u) => folder(s, u)));

    // Changed: one message more, one of the first deleted (expunged) over IMAP.
    const later = newMarker();
    await PROBES.mail!.seed(c, 'alice', PASS.alice!, later);
    const client = new ImapFlow(await imapOptions(c.container, c.ports.imap!, `alice@${DOMAIN}`, PASS.alice!));
    client.on('error', () => undefined);
    await client.connect();
    await client.mailboxOpen('INBOX');
    const victim = (await client.search({ subject: first[0]! })) || [];
    await client.messageDelete(victim);
    await client.logout();
    t.same((await PROBES.mail!.data(c, 'alice', PASS.alice!, [])).sort(), [first[1]!, later].sort(), 'alice\'s mailbox has changed');

    const r = await importInto(s, { username: 'alice', quotaMb: 5 }, saved);
    t.equal(r.code, 0, `import succeeds: ${r.out}`);
    t.same(JSON.parse(r.out.toString()), { ok: true });
    t.same((await PROBES.mail!.data(c, 'alice', PASS.alice!, [])).sort(), [...first].sort(), 'alice reads exactly the exported messages over IMAP');
    const again = PROBES.mail!.exported(await untarFiles(await exportOf(s, 'alice')), 'alice');
    t.same(again.sort(), [...first].sort(), 'and her export holds them');
    t.same(await Promise.all(USERS.slice(1).map((u) => folder(s, u))), others, 'alice2, alic and bob are byte for byte as before');
    const owners = await execIn(c.container, ['find', s.home('alice'), '!', '-user', 'mail', '-o', '!', '-group', 'mail', '-o', '-type', 'd', '!', '-perm', '0700', '-o', '-type', 'f', '!', '-perm', '0600']);
    t.equal(owners.out.trim(), '', 'the Maildir is mail:mail, 0700 folders and 0600 files, like Dovecot\'s own');
    await PROBES.mail!.seed(c, 'alice', PASS.alice!, later);
    t.same((await PROBES.mail!.data(c, 'alice', PASS.alice!, [])).sort(), [...first, later].sort(), 'and new mail is delivered into it');
  });

  await t.test('files: export, change, import gives back the exported space over WebDAV', async (t) => {
    const s = SERVICES[1]!;
    const base = `http://127.0.0.1:${ctx.files!.ports.http}`;
    const auth = (u: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${PASS[u]}`).toString('base64')}` });
    const put = async (u: string, p: string, b: string | Buffer) => { const r = await fetch(`${base}/${u}/${p}`, { method: 'PUT', headers: auth(u), body: typeof b === 'string' ? b : new Uint8Array(b) }); await r.arrayBuffer(); return r.status; };
    const get = async (u: string, p: string) => { const r = await fetch(`${base}/${u}/${p}`, { headers: auth(u) }); return { status: r.status, body: Buffer.from(await r.arrayBuffer()) }; };
    const mkcol = async (u: string, p: string) => { const r = await fetch(`${base}/${u}/${p}`, { method: 'MKCOL', headers: auth(u) }); await r.arrayBuffer(); return r.status; };
    const names = async (u: string, p: string) => {
      const r = await fetch(`${base}/${u}/${p}`, { method: 'PROPFIND', headers: { ...auth(u), depth: '1' } });
      const text = await r.text();
      return [...text.matchAll(/<(?:\w+:)?href>([^<]*)<\/(?:\w+:)?href>/g)].map((m) => decodeURIComponent(m[1]!).replace(/^https?:\/\/[^/]+/, '')).sort();
    };
    const photo = crypto.randomBytes(70_000);
    t.equal(await put('alice', 'notes.txt', 'Liste des courses'), 201);
    t.equal(await mkcol('alice', 'photos'), 201);
    t.equal(await put('alice', 'photos/fete.jpg', photo), 201);
    for (const u of USERS.slice(1)) t.equal(await put(u, 'mien.txt', `à ${u}`), 201);
    const listed = { root: await names('alice', ''), photos: await names('alice', 'photos/') };
    const saved = await exportOf(s, 'alice');
    const others = await Promise.all(USERS.slice(1).map((u) => folder(s, u)));

    t.ok([200, 204].includes(await put('alice', 'notes.txt', 'autre chose')), 'notes.txt changed');
    t.equal(await put('alice', 'nouveau.txt', 'nouveau'), 201);
    const del = await fetch(`${base}/alice/photos/fete.jpg`, { method: 'DELETE', headers: auth('alice') });
    t.ok([200, 204].includes(del.status), 'the photo deleted');

    const r = await importInto(s, { username: 'alice', quotaMb: 5 }, saved);
    t.equal(r.code, 0, `import succeeds: ${r.out}`);
    t.same(JSON.parse(r.out.toString()), { ok: true });
    t.same({ root: await names('alice', ''), photos: await names('alice', 'photos/') }, listed, 'alice lists exactly the exported tree over WebDAV');
    t.equal((await get('alice', 'notes.txt')).body.toString(), 'Liste des courses');
    t.ok((await get('alice', 'photos/fete.jpg')).body.equals(photo), 'the photo is back, byte for byte');
    t.equal((await get('alice', 'nouveau.txt')).status, 404, 'what came after the export is gone');
    t.same(await Promise.all(USERS.slice(1).map((u) => folder(s, u))), others, 'alice2, alic and bob are byte for byte as before');
    const usage = (await rt.app.inject('/api/instances/imp-files/accounts/alice?usage=true')).json();
    t.equal(usage.usageItems, 2, 'usage counts the imported files');
    // The server measures the new tree (its quota admission starts again from it): 5 MB quota, 70 KB used.
    t.equal(await put('alice', 'apres.bin', Buffer.alloc(4 * 1024 * 1024, 1)), 201, 'a write that fits the quota over the imported tree is admitted');
    t.equal(await put('alice', 'trop.bin', Buffer.alloc(1024 * 1024, 1)), 507, 'and one past it is refused');
    // A suspended account is imported into like any other, and stays suspended.
    const mine = await exportOf(s, 'alice2');
    t.equal((await rt.app.inject({ method: 'POST', url: '/api/instances/imp-files/accounts/alice2/suspend' })).statusCode, 200);
    const back = await importInto(s, { username: 'alice2', quotaMb: 5 }, mine);
    t.equal(back.code, 0, `import into suspended alice2: ${back.out}`);
    t.notOk(await PROBES.files!.login(ctx.files!, 'alice2', PASS.alice2!), 'alice2 is still suspended');
    t.equal((await rt.app.inject({ method: 'POST', url: '/api/instances/imp-files/accounts/alice2/resume' })).statusCode, 200);
    t.equal((await get('alice2', 'mien.txt')).body.toString(), 'à alice2', 'and once resumed has her data');
    const modes = await execIn(ctx.files!.container, ['find', s.home('alice'), '!', '-user', 'node', '-o', '-type', 'd', '!', '-perm', '0755', '-o', '-type', 'f', '!', '-perm', '0644']);
    t.equal(modes.out.trim(), '', 'owned by the service\'s user, with the modes its own writes get');
  });

  for (const s of SERVICES) {
    await t.test(`${s.id}: every hostile archive is refused, and nothing changes anywhere`, async (t) => {
      const c = ctx[s.id]!;
      let run = 0;
      const property = fc.asyncProperty(validEntries('alice'), hostile('alice'), fc.boolean(), async (valid, bad, before) => {
        run++;
        const was = await fingerprint(c.container, s.volume);
        const entries = (bad.entries ?? []) as Entry[];
        const all = before ? [...entries, ...valid] : [...valid, ...entries];
        const validTar = await makeTar(valid);
        const tar = bad.raw ? bad.raw(validTar) : await makeTar(all);
        const header = bad.header ?? { username: 'alice', quotaMb: 5 };
        const r = await importInto(s, header, tar);
        const now = await fingerprint(c.container, s.volume);
        if (r.code === 0 || now !== was) {
          throw new Error(`${bad.what}: exit ${r.code} ${r.out.toString().slice(0, 300)}${now !== was ? `\nvolume changed:\n${diff(was, now)}` : ''}`);
        }
        const answer = JSON.parse(r.out.toString().trim().split('\n').pop()!);
        if (answer.ok !== false || typeof answer.error !== 'string') throw new Error(`${bad.what}: answer ${r.out}`);
      });
      await fc.assert(property, { numRuns: RUNS, seed: SEED, endOnFailure: true })
        .then(() => t.pass(`${s.id}: ${run} hostile archives refused (seed ${SEED})`), (err: Error) => t.fail(`${s.id}: seed ${SEED} (IMPORT_SEED=${SEED} to replay)\n${err.message}`));
      // And a valid import still works after them all (nothing left behind blocks it).
      const ok = await importInto(s, { username: 'alice', quotaMb: 5 }, await exportOf(s, 'alice'));
      t.equal(ok.code, 0, `a valid import afterwards: ${ok.out}`);
      const left = await execIn(c.container, ['find', s.volume, '-name', '.import-*']);
      t.equal(left.out.trim(), '', 'no staging folder left');
    });
  }
});

function diff(a: string, b: string): string {
  const A = new Set(a.split('\n')); const B = new Set(b.split('\n'));
  return [...[...A].filter((x) => !B.has(x)).map((x) => `- ${x}`), ...[...B].filter((x) => !A.has(x)).map((x) => `+ ${x}`)].slice(0, 20).join('\n');
}

async function untarFiles(buf: Buffer): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const x = extract();
  x.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => { chunks.push(c as Buffer); });
    stream.on('end', () => { if (h.type === 'file') files.set(h.name, Buffer.concat(chunks)); next(); });
  });
  await pipeline(Readable.from(buf), x as unknown as Writable);
  return files;
}
