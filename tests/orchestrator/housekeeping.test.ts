// Housekeeping on the real engine (issue 12): a volume whose instance row is gone is listed, refused a drop before
// its archive, archived (a 0600 .tar.gz holding what the service wrote), then dropped with its image, from the API,
// the admin page and the CLI; a drop's claim keeps a new instance of the same slug out until the volume is gone; a
// volume a row claims (any desired state, prefix-sharing slugs included) is never listed, archived or dropped, over
// generated rows; image gc keeps what the catalog builds, what a row names and what a container was made from, and
// removes an unused hash-tagged image. Only this test's own images are ever removed (gc is limited with `only`).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import fc from 'fast-check';
import tar from 'tar-stream';
import { eq, inArray } from 'drizzle-orm';
import { pino } from 'pino';
import { instances, operations } from '../../src/db/schema.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import {
  archiveOrphanVolume, claimantsOf, collectImages, dropOrphanVolume, listOrphanVolumes, type HousekeepingDeps,
} from '../../src/orchestrator/housekeeping.js';
import { baseImageRef, serviceImageRef } from '../../src/orchestrator/docker/index.js';
import { attachedLoop, volumeFiles } from '../../src/orchestrator/sized-volumes.js';
import { loadCatalog } from '../../src/catalog/load.js';
import { pageBrowser } from '../page-browser.js';
import { HEALTHY_WITHIN_MS, ROOT, docker, execIn, testRuntime, waitFor } from '../helpers.js';

/** The files of a .tar.gz, by name (leading ./ dropped). */
async function tarFiles(file: string): Promise<Map<string, { mode: number; body: string }>> {
  const out = new Map<string, { mode: number; body: string }>();
  const ex = tar.extract();
  ex.on('entry', (h, s, next) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => { out.set(h.name.replace(/^\.\//, ''), { mode: h.mode ?? 0, body: Buffer.concat(chunks).toString() }); next(); });
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve);
    ex.on('error', reject);
    fs.createReadStream(file).pipe(zlib.createGunzip()).pipe(ex);
  });
  return out;
}

const codeOf = async (p: Promise<unknown>) => p.then(() => 'resolved', (err: { code?: string }) => err.code ?? String(err));

t.test('orphan volumes and unused images', async (t) => {
  const started = Date.now();
  const rt = await testRuntime(t);
  const { app, config, db } = rt;
  const hoster = config.hosterId;
  const log = pino({ level: 'silent' });
  // A hook run while a drop asks the engine which containers use its volume: the window between its check and the
  // removal, where a new instance could appear.
  let duringDrop: (() => Promise<void>) | undefined;
  const deps: HousekeepingDeps = {
    db, catalog: rt.catalog, hosterId: hoster, log,
    backupsDir: path.join(config.dataDir, 'backups'), volumesDir: path.join(config.dataDir, 'volumes'),
    engineFor: (server) => {
      const e = rt.engines.engineFor(server);
      const d = new Proxy(e.docker, {
        get(target, prop) {
          const v = Reflect.get(target, prop) as unknown;
          if (prop === 'listContainers' && duringDrop) {
            const hook = duringDrop;
            duringDrop = undefined;
            return async (opts: unknown) => { await hook(); return (v as (o: unknown) => Promise<unknown>).call(target, opts); };
          }
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      return { ...e, docker: d };
    },
  };
  const serverId = db.select({ id: instances.serverId }).from(instances).limit(1).get()?.serverId
    ?? (await import('../../src/orchestrator/servers.js')).listServers(db)[0]!.id;
  /** A row the reconciler cannot act on (its service is in no catalog): it claims what its slug claims, and nothing
   * happens to the engine because of it. */
  const inertRow = (slug: string, desired: 'running' | 'stopped' | 'deleted', image = 'cattery/none:000000000000') =>
    db.insert(instances).values({ slug, service: 'zz-no-such-service', serverId, desired, image, config: { ports: {}, secrets: {}, env: {} } }).run();

  await t.test('a volume whose row is gone: listed, archived, then dropped', async (t) => {
    const r = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'orph' } });
    t.equal(r.statusCode, 202, r.body);
    await waitFor('orph healthy', async () => (await app.inject('/api/instances/orph')).json().observed === 'healthy', HEALTHY_WITHIN_MS);
    const written = await execIn(`${hoster}-orph`, ['/bin/sh', '-c', 'echo précieux > /data/note.txt']);
    t.equal(written.code, 0);
    const name = `${hoster}-orph-data`;
    t.same((await listOrphanVolumes(deps)).map((v) => v.name), [], 'a volume its row claims is not an orphan');
    t.equal(await codeOf(dropOrphanVolume(deps, name, { actor: 'test', force: true })), 'CATTERY_ERR_VOLUME_CLAIMED', 'nor can it be dropped, even with force');

    // Behind the reconciler's back: the row goes, as a crash between steps or a restored database would leave it.
    db.delete(instances).where(eq(instances.slug, 'orph')).run();
    await rt.reconciler.trigger('test');
    await waitFor('the orphan container swept', async () => (await docker.listContainers({ all: true, filters: { name: [`${hoster}-orph`] } })).length === 0);
    t.ok(await docker.getVolume(name).inspect(), 'the reconciler keeps the volume');

    // An orphan's archive helper has no row either: the reconciler's sweep lets it be while it may be read, and
    // still removes a plain container with no row in the same pass.
    const probeImage = serviceImageRef(rt.catalog.services.get('probe')!);
    const made = [];
    for (const [cname, labels] of [[`${hoster}-ghost-data-archive`, { 'cattery.role': 'archive' }], [`${hoster}-ghost`, {}]] as const) {
      made.push(await docker.createContainer({
        name: cname, Image: probeImage, Entrypoint: ['/nonexistent'], NetworkDisabled: true,
        Labels: { 'cattery.hoster': hoster, 'cattery.instance': 'ghost', ...labels },
      }));
    }
    await rt.reconciler.trigger('test');
    const ghosts = async () => (await docker.listContainers({ all: true, filters: { label: ['cattery.instance=ghost', `cattery.hoster=${hoster}`] } })).map((c) => c.Names[0]);
    await waitFor('the plain orphan container swept', async () => !(await ghosts()).includes(`/${hoster}-ghost`));
    t.same(await ghosts(), [`/${hoster}-ghost-data-archive`], 'only the helper is left');
    t.ok(await made[0]!.inspect(), 'a young archive helper is not swept');
    await made[0]!.remove({ force: true });

    const listed = (await app.inject('/api/volumes/orphans')).json();
    t.equal(listed.length, 1, JSON.stringify(listed));
    t.match(listed[0], { name, slug: 'orph', service: 'probe', volume: 'data', sizeBytes: 16 * 1024 * 1024, archive: null, server: 'local' });
    t.ok(listed[0].usedBytes > 0 && listed[0].usedBytes <= 16 * 1024 * 1024, 'the space its image takes on the disk');

    let res = await app.inject({ method: 'POST', url: `/api/volumes/orphans/${name}/drop`, payload: {} });
    t.equal(res.statusCode, 409);
    t.equal(res.json().code, 'CATTERY_ERR_VOLUME_NOT_ARCHIVED', 'no drop before an archive');
    t.ok(await docker.getVolume(name).inspect(), 'still there');

    res = await app.inject({ method: 'POST', url: `/api/volumes/orphans/${name}/archive`, payload: {} });
    t.equal(res.statusCode, 200, res.body);
    const { file, bytes } = res.json();
    t.equal(path.dirname(file), deps.backupsDir);
    t.equal(fs.statSync(file).mode & 0o777, 0o600, 'the archive is 0600');
    t.equal(fs.statSync(deps.backupsDir).mode & 0o777, 0o700, 'its folder 0700');
    t.equal(fs.statSync(file).size, bytes);
    const files = await tarFiles(file);
    t.equal(files.get('note.txt')?.body, 'précieux\n', 'the archive holds what the service wrote');
    t.same(fs.readdirSync(deps.backupsDir).filter((f) => f.endsWith('.partial')), [], 'no partial file left');
    t.equal((await docker.listContainers({ all: true, filters: { name: [`${name}-archive`] } })).length, 0, 'the helper is gone');
    const archived = db.select().from(operations).where(eq(operations.kind, 'volume-archive')).all();
    t.match(archived, [{ instanceSlug: 'orph', actor: 'operator', status: 'done', detail: { volume: name, file } }], 'journaled with its actor');
    t.match((await listOrphanVolumes(deps))[0]?.archive, { file }, 'the listing says it is archived');

    // While the drop runs, a new instance of the same slug would adopt the volume: it has to wait.
    let meanwhile: number | undefined;
    duringDrop = async () => {
      meanwhile = (await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'orph', desired: 'stopped' } })).statusCode;
    };
    await dropOrphanVolume(deps, name, { actor: 'test' });
    t.equal(meanwhile, 409, 'an instance of that slug is refused while the drop is under way');
    t.equal((await docker.getVolume(name).inspect().then(() => 200, (e: { statusCode: number }) => e.statusCode)), 404, 'the volume is gone');
    const { image } = volumeFiles(deps.volumesDir, name);
    t.notOk(fs.existsSync(image), 'its image file too');
    t.equal(attachedLoop(image), null, 'and its loop device');
    t.ok(fs.existsSync(file), 'the archive stays');
    t.match(db.select().from(operations).where(eq(operations.kind, 'volume-drop')).all(), [{ instanceSlug: 'orph', actor: 'test', status: 'done' }]);
    t.same(await listOrphanVolumes(deps), []);
    const again = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'orph', desired: 'stopped' } });
    t.equal(again.statusCode, 202, 'once dropped, the slug is free again');
  });

  await t.test('the admin page lists orphans and drops them through its forms', async (t) => {
    // A volume made directly with the labels the reconciler gives: the row never existed (a restored database).
    const name = `${hoster}-page-data`;
    await docker.createVolume({ Name: name, Labels: { 'cattery.hoster': hoster, 'cattery.instance': 'page', 'cattery.service': 'probe', 'cattery.generation': '0' } });
    const admin = await createUser(db, { login: 'hk-admin', name: 'Admin', roles: ['admin'] });
    const b = pageBrowser(app, { authorization: null });
    b.jar.set('cattery_session', createSession(db, { idleMinutes: 60, maxHours: 1 }, admin.id, 'password'));
    let page = await b.get('/admin');
    t.equal(page.statusCode, 200);
    t.match(page.body, 'Volumes sans instance');
    t.match(page.body, `action="/admin/volumes/${name}/drop"`);
    let r = await b.post(`/admin/volumes/${name}/drop`, { server: 'local' }, { csrfFrom: '/admin' });
    t.equal(r.statusCode, 303);
    t.equal(r.headers.location, '/admin?vol=not-archived#volumes');
    page = await b.get('/admin?vol=not-archived&lang=en');
    t.match(page.body, 'Nothing was dropped: archive this volume first');
    t.ok(await docker.getVolume(name).inspect(), 'still there');
    r = await b.post(`/admin/volumes/${name}/drop`, { server: 'local', force: 'on' });
    t.equal(r.statusCode, 403, 'a form without its CSRF token is refused');
    r = await b.post(`/admin/volumes/${name}/drop`, { server: 'local', force: 'on' }, { csrfFrom: '/admin' });
    t.equal(r.headers.location, '/admin?vol=dropped#volumes', 'force drops an unarchived volume when asked');
    t.equal((await docker.getVolume(name).inspect().then(() => 200, (e: { statusCode: number }) => e.statusCode)), 404);
    t.match(db.select().from(operations).where(eq(operations.kind, 'volume-drop')).all().at(-1), { actor: 'user:hk-admin', detail: { force: true } });
    r = await b.post(`/admin/volumes/${name}/archive`, { server: 'local' }, { csrfFrom: '/admin' });
    t.equal(r.headers.location, '/admin?vol=gone#volumes');
  });

  await t.test('a volume a row claims is never listed, archived or dropped', async (t) => {
    // Slugs sharing prefixes, and volume names that two slugs could both make (`ab` + `c-data`, `ab-c` + `data`).
    const slugs = ['hk-ab', 'hk-ab-c', 'hk-ab-c-d', 'hk-x1', 'hk-x1-y'];
    const vols = ['data', 'c-data', 'db'];
    const universe = slugs.flatMap((slug) => vols.map((v) => ({ slug, name: `${hoster}-${slug}-${v}` })));
    const unique = [...new Map(universe.map((u) => [u.name, u])).values()];
    for (const u of unique) {
      await docker.createVolume({ Name: u.name, Labels: { 'cattery.hoster': hoster, 'cattery.instance': u.slug, 'cattery.service': 'probe' } });
    }
    const byName = new Map(unique.map((u) => [u.name, u]));
    let runs = 0;
    await fc.assert(fc.asyncProperty(
      fc.uniqueArray(fc.constantFrom(...slugs), { maxLength: 4 }),
      fc.array(fc.constantFrom('running', 'stopped', 'deleted') as fc.Arbitrary<'running' | 'stopped' | 'deleted'>, { minLength: 4, maxLength: 4 }),
      fc.constantFrom(...unique.map((u) => u.name)),
      async (rows, desired, target) => {
        runs++;
        rows.forEach((s, i) => inertRow(s, desired[i]!));
        try {
          const claimed = (n: string) => rows.some((s) => s === byName.get(n)!.slug || n.startsWith(`${hoster}-${s}-`));
          const listed = new Set((await listOrphanVolumes(deps)).filter((v) => byName.has(v.name)).map((v) => v.name));
          for (const u of unique) {
            if (claimed(u.name) === listed.has(u.name)) throw new Error(`${u.name}: claimed=${claimed(u.name)} listed=${listed.has(u.name)} rows=${rows}`);
          }
          if (claimed(target)) {
            const codes = [await codeOf(dropOrphanVolume(deps, target, { actor: 'test', force: true })), await codeOf(archiveOrphanVolume(deps, target, { actor: 'test' }))];
            if (codes.some((c) => c !== 'CATTERY_ERR_VOLUME_CLAIMED')) throw new Error(`${target} claimed by ${rows}: ${codes}`);
            await docker.getVolume(target).inspect();
          }
        } finally {
          db.delete(instances).where(inArray(instances.slug, rows)).run();
        }
      },
    ), { numRuns: 25 });
    t.pass(`${runs} generated row sets over ${unique.length} volumes`);
    t.same(claimantsOf('h', 'h-ab-c-data', 'ab-c').sort(), ['ab', 'ab-c'], 'its label\'s slug and every prefix a slug could be');
  });

  await t.test('image gc keeps what is used and removes an unused hash-tagged image', async (t) => {
    const repo = `cattery/${hoster}gc`;
    const probe = serviceImageRef(rt.catalog.services.get('probe')!);
    // Four distinct images (a label each: a different id), tagged under this test's own repository.
    const build = async (tag: string) => {
      const pack = tar.pack();
      pack.entry({ name: 'Dockerfile' }, `FROM ${probe}\nLABEL cattery.test=${hoster}-${tag}\n`);
      pack.finalize();
      const stream = await docker.buildImage(pack as unknown as NodeJS.ReadableStream, { t: `${repo}:${tag}` });
      await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve(null))));
      t.teardown(() => docker.getImage(`${repo}:${tag}`).remove({ force: true }).catch(() => undefined));
    };
    // The catalog's current build of a service named like the repository: a copy of the probe's folder.
    const dir = fs.mkdtempSync(path.join(config.dataDir, 'svc-'));
    fs.cpSync(path.join(ROOT, 'tests/fixtures/services/probe'), path.join(dir, `${hoster}gc`), { recursive: true });
    const manifestFile = path.join(dir, `${hoster}gc`, 'service.json');
    const m = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    fs.writeFileSync(manifestFile, JSON.stringify({ ...m, id: `${hoster}gc`, $schema: undefined }));
    const svc = loadCatalog([dir]).services.get(`${hoster}gc`)!;
    t.ok(svc, 'the copied service loads');
    rt.catalog.services.set(svc.manifest.id, svc);
    const current = serviceImageRef(svc);
    const [unused, named, contained] = ['a1a1a1a1a1a1', 'b2b2b2b2b2b2', 'c3c3c3c3c3c3'].map((h) => `${repo}:${h}`) as [string, string, string];
    for (const ref of [unused, named, contained, current]) await build(ref.split(':')[1]!);
    inertRow('hk-img', 'stopped', named);
    // Not labelled as this hoster's: the reconciler would sweep it as an orphan container.
    const c = await docker.createContainer({ Image: contained, Entrypoint: ['/nonexistent'], NetworkDisabled: true, Labels: { 'cattery.test': hoster } });
    t.teardown(() => c.remove({ force: true }).catch(() => undefined));

    // A dry run over everything on the engine: nothing removed, and never what the catalog builds or a row names.
    const all = await collectImages(deps, { actor: 'test' });
    t.equal(all.applied, false);
    const refs = new Set(all.images.map((i) => i.ref));
    t.ok(refs.has(unused), 'the unused image is a candidate');
    for (const kept of [named, contained, current, probe, baseImageRef(), ...db.select({ image: instances.image }).from(instances).all().map((r) => r.image)]) {
      t.notOk(refs.has(kept), `${kept} is kept`);
    }
    for (const s of rt.catalog.services.values()) t.notOk(refs.has(serviceImageRef(s)), `${s.manifest.id}'s current image is kept`);
    t.ok(all.images.every((i) => /^cattery\/[a-z0-9._-]+:[0-9a-f]{12}$/.test(i.ref)), 'only hash-tagged images');
    t.ok(await docker.getImage(unused).inspect(), 'a dry run removes nothing');

    // The CLI's dry run, limited to this test's repository.
    const env = { ...process.env, CATTERY_DATA_DIR: config.dataDir, CATTERY_HOSTER_ID: hoster, CATTERY_CATALOG: config.catalogDirs.join(':'), CATTERY_LOG_LEVEL: 'silent' };
    const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin/cattery.js'), ...args], { env, encoding: 'utf8', timeout: 60_000 });
    const dry = cli('images', 'gc', '--only', `${hoster}gc`);
    t.equal(dry.status, 0, dry.stderr);
    t.match(dry.stdout, `would remove ${unused}`);
    t.notMatch(dry.stdout, named);
    t.notMatch(dry.stdout, contained, 'the CLI has no such service in its catalog, yet keeps what a container uses');
    t.match(dry.stdout, /would free \d+\.\d MB \(run with --apply to remove\)/);

    const applied = await collectImages(deps, { apply: true, only: [`${hoster}gc`], actor: 'test' });
    t.same(applied.images.map((i) => [i.ref, i.removed]), [[unused, true]], 'exactly the unused image went');
    t.ok(applied.bytes > 0, 'with the bytes it freed');
    t.equal(await docker.getImage(unused).inspect().then(() => 200, (e: { statusCode: number }) => e.statusCode), 404);
    for (const kept of [named, contained, current]) t.ok(await docker.getImage(kept).inspect(), `${kept} is still there`);
    t.match(db.select().from(operations).where(eq(operations.kind, 'image-remove')).all(), [{ actor: 'test', status: 'done', detail: { ref: unused } }]);
    db.delete(instances).where(eq(instances.slug, 'hk-img')).run();
  });

  await t.test('the CLI lists, archives and drops an orphan', async (t) => {
    const name = `${hoster}-cli-data`;
    await docker.createVolume({ Name: name, Labels: { 'cattery.hoster': hoster, 'cattery.instance': 'cli', 'cattery.service': 'probe' } });
    const env = { ...process.env, CATTERY_DATA_DIR: config.dataDir, CATTERY_HOSTER_ID: hoster, CATTERY_CATALOG: config.catalogDirs.join(':'), CATTERY_LOG_LEVEL: 'silent' };
    const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin/cattery.js'), ...args], { env, encoding: 'utf8', timeout: 60_000 });
    let r = cli('volumes', 'orphans');
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, new RegExp(`^${name}  instance cli \\(probe\\)  server local .* not archived$`, 'm'));
    r = cli('volumes', 'drop', name);
    t.equal(r.status, 1);
    t.match(r.stderr, /Archive this volume first, or drop it with force: .* \[CATTERY_ERR_VOLUME_NOT_ARCHIVED\]/);
    r = cli('volumes', 'archive', name);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, new RegExp(`${name} archived to ${deps.backupsDir}/${name}-.*\\.tar\\.gz`));
    r = cli('volumes', 'drop', name);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout.trim(), `${name} dropped`);
    t.match(db.select().from(operations).where(eq(operations.kind, 'volume-drop')).all().at(-1), { instanceSlug: 'cli', actor: 'cli', status: 'done' });
    r = cli('volumes', 'drop', name);
    t.match(r.stderr, /\[CATTERY_ERR_NOT_FOUND\]/);
  });

  t.comment(`housekeeping took ${Math.round((Date.now() - started) / 1000)} s`);
});
