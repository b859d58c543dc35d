// One resident's data put back as it was yesterday, in every catalog service with accounts (mail, files, pads), while
// the other residents' data stays as it is today: through the API, which restores the instance beside from the
// snapshot, takes the resident's data there with the service's own export, keeps what the account holds now, and
// replaces it with the service's own import. The instance beside is gone afterwards, with its volumes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { extract } from 'tar-stream';
import t from 'tap';
import { addRepository, backupInstance, replacedDir } from '../../src/backups/backups.js';
import { HEALTHY_WITHIN_MS, docker, testRuntime, waitFor } from '../helpers.js';
import { PROBES, newMarker, signedIn, type ProbeCtx } from '../services/probes.js';

/** The members of a tar file, by name. */
async function tarFiles(file: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const ex = extract();
  ex.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => { if (h.type === 'file') files.set(h.name, Buffer.concat(chunks)); next(); });
    stream.resume();
  });
  await new Promise<void>((resolve, reject) => { ex.on('finish', resolve); ex.on('error', reject); fs.createReadStream(file).pipe(ex); });
  return files;
}

t.test('one resident restored to yesterday, the others as they are today, in every service', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const repoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-restic-'));
  t.teardown(() => fs.rmSync(repoDir, { recursive: true, force: true }));
  await addRepository(rt.backups, { name: 'local', url: `${repoDir}/repo` }, 'test');

  const ids = Object.keys(PROBES).sort();
  t.same(ids, ['files', 'mail', 'pads'], 'every catalog service with accounts is here');
  for (const id of ids) {
    const env = PROBES[id]!.env;
    const r = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: id, slug: `r-${id}`, ...(Object.keys(env).length ? { env } : {}) } });
    t.equal(r.statusCode, 202, r.body);
  }
  for (const id of ids) await waitFor(`${id} healthy`, async () => (await app.inject(`/api/instances/r-${id}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  const ctxOf = async (id: string): Promise<ProbeCtx> => ({ container: `${config.hosterId}-r-${id}`, ports: (await app.inject(`/api/instances/r-${id}`)).json().ports, env: PROBES[id]!.env });
  // Names that share a prefix: the restore of one must not reach the other.
  const people = [{ name: 'alice', password: 'la phrase d’Alice 2026' }, { name: 'alice2', password: 'le secret d’Alice 2, 2026' }];

  await Promise.all(ids.map((id) => t.test(id, async (t) => {
    const probe = PROBES[id]!;
    const ctx = await ctxOf(id);
    for (const p of people) {
      const r = await app.inject({ method: 'POST', url: `/api/instances/r-${id}/accounts`, payload: { username: p.name, password: p.password, quotaMb: 20 } });
      t.equal(r.statusCode, 201, r.body);
    }
    // Yesterday: one marker each. Backed up.
    const yesterday = new Map(people.map((p) => [p.name, newMarker()]));
    for (const p of people) await probe.seed(ctx, p.name, p.password, yesterday.get(p.name)!);
    const snap = await backupInstance(rt.backups, 'local', `r-${id}`, 'test');
    t.equal(snap.status, 'done', snap.error ?? 'yesterday\'s backup');
    // Today: another marker each.
    const today = new Map(people.map((p) => [p.name, newMarker()]));
    for (const p of people) await probe.seed(ctx, p.name, p.password, today.get(p.name)!);

    const r = await app.inject({ method: 'POST', url: '/api/backups/local/restore-account', payload: { instance: `r-${id}`, username: 'alice', snapshot: snap.snapshotId } });
    t.equal(r.statusCode, 200, r.body);
    t.equal(r.json().run.status, 'done', r.json().run.error ?? 'alice restored');
    t.equal(r.json().run.target, `account:r-${id}/alice`);
    t.equal(r.json().kept, true, 'what alice had today is kept');

    const all = [...yesterday.values(), ...today.values()];
    const alice = await signedIn(probe, ctx, 'alice', people[0]!.password, all);
    t.ok(alice, 'alice signs in with today\'s password');
    t.same(alice!.data.sort(), [yesterday.get('alice')].sort(), 'alice has yesterday\'s data, and only it');
    const other = await signedIn(probe, ctx, 'alice2', people[1]!.password, all);
    t.same(other!.data.sort(), [yesterday.get('alice2'), today.get('alice2')].sort(), 'alice2 has today\'s data, untouched');

    // What alice held before the restore is on the server, 0600, in the service's export format.
    // In a folder of the account's own (by its id): removed with the account.
    const accountId = rt.db.$client.prepare("SELECT a.id FROM accounts a JOIN instances i ON i.id = a.instance_id WHERE i.slug = ? AND a.username = 'alice'").pluck().get(`r-${id}`) as number;
    const keptDir = path.join(replacedDir(config.dataDir), String(accountId));
    const kept = fs.readdirSync(keptDir).filter((f) => f.startsWith(`r-${id}-alice-`));
    t.equal(kept.length, 1, 'one copy kept');
    const keptFile = path.join(keptDir, kept[0]!);
    t.equal(fs.statSync(keptFile).mode & 0o777, 0o600, 'kept 0600');
    if (id !== 'pads') t.ok(probe.exported(await tarFiles(keptFile), 'alice').includes(today.get('alice')!), 'and it holds today\'s data');
  })));

  // The instances beside are gone, with their containers and volumes.
  await waitFor('the instances beside gone', async () => (await app.inject('/api/instances')).json().every((i: { slug: string }) => !i.slug.includes('-restore-')), 120_000, 500);
  const left = (await docker.listContainers({ all: true })).filter((c) => c.Names.some((n) => n.includes(`${config.hosterId}-`) && n.includes('-restore-')));
  t.same(left.map((c) => c.Names[0]), [], 'no container of theirs left');
  const vols = ((await docker.listVolumes()).Volumes ?? []).filter((v) => v.Name.startsWith(`${config.hosterId}-`) && v.Name.includes('-restore-'));
  t.same(vols.map((v) => v.Name), [], 'nor a volume (dropped, not archived)');
  t.same(fs.readdirSync(path.join(config.dataDir, 'backups')).filter((f) => f.includes('-restore-')), [], 'nor an archive of them');

  // An unknown resident, a service without the operation, a snapshot that does not exist: clear errors.
  const none = await app.inject({ method: 'POST', url: '/api/backups/local/restore-account', payload: { instance: 'r-mail', username: 'nobody' } });
  t.equal(none.statusCode, 404, none.body);
  const bad = await app.inject({ method: 'POST', url: '/api/backups/local/restore-account', payload: { instance: 'r-mail', username: 'alice', snapshot: 'deadbeef' } });
  t.equal(bad.statusCode, 404, bad.body);
});
