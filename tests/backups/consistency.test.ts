// A backup taken while residents write: a client keeps adding data to pads (LevelDB) and to files (WebDAV) during the
// backup; restored into place, each service starts without repair, every piece of data written before the backup
// began is there, and nothing appears that was never written. pads is copied through its own dump while it runs (its
// LevelDB rebuilt from the dump at the restart); files is paused for the copy, so the writer waits (it is never
// refused) and goes on after.
import t from 'tap';
import { addRepository, backupInstance, restoreVolumes } from '../../src/backups/backups.js';
import { getInstance } from '../../src/orchestrator/instances.js';
import { HEALTHY_WITHIN_MS, subnetPoolSlice, testRuntime, waitFor } from '../helpers.js';
import { PROBES, newMarker, signedIn, type ProbeCtx } from '../services/probes.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

t.test('backups taken while clients write restore a state each service opens', async (t) => {
  const rt = await testRuntime(t, { subnetPool: subnetPoolSlice(0) });
  const { app, config } = rt;
  const repoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-restic-'));
  t.teardown(() => fs.rmSync(repoDir, { recursive: true, force: true }));
  await addRepository(rt.backups, { name: 'local', url: `${repoDir}/repo` }, 'test');
  const ids = ['pads', 'files'];
  for (const id of ids) t.equal((await app.inject({ method: 'POST', url: '/api/instances', payload: { service: id, slug: `w-${id}` } })).statusCode, 202);
  for (const id of ids) await waitFor(`${id} healthy`, async () => (await app.inject(`/api/instances/w-${id}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);

  for (const id of ids) {
    const probe = PROBES[id]!;
    const ctx: ProbeCtx = { container: `${config.hosterId}-w-${id}`, ports: (await app.inject(`/api/instances/w-${id}`)).json().ports, env: {} };
    const pass = 'une phrase assez longue';
    t.equal((await app.inject({ method: 'POST', url: `/api/instances/w-${id}/accounts`, payload: { username: 'zoe', password: pass, quotaMb: 20 } })).statusCode, 201);
    const before: string[] = [];
    for (let i = 0; i < 3; i++) { const m = newMarker(); await probe.seed(ctx, 'zoe', pass, m); before.push(m); }

    // The writer: one piece of data after another until told to stop, each recorded once the service said yes.
    const written: string[] = [...before];
    let stop = false;
    const writer = (async () => {
      while (!stop) {
        const m = newMarker();
        try { await probe.seed(ctx, 'zoe', pass, m); written.push(m); } catch { /* refused or cut: not counted */ }
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const run = await backupInstance(rt.backups, 'local', `w-${id}`, 'test');
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await writer;
    t.equal(run.status, 'done', run.error ?? `${id}: backed up while a client wrote (${written.length - before.length} writes during and after)`);
    t.ok(written.length > before.length + 1, `${id}: the writer went on after the pause`);
    // pads declares a dump of its own (manifest backup.dump): taken live, its LevelDB left out, never paused; files
    // has none, and is paused for the copy.
    t.equal(run.consistency, id === 'pads' ? 'dump' : 'paused', `${id}: ${run.consistency}`);

    const restored = await restoreVolumes(rt.backups, 'local', { slug: `w-${id}` }, getInstance(rt.db, `w-${id}`), 'test');
    t.equal(restored.status, 'done', restored.error ?? `${id}: restored into place`);
    await rt.reconciler.restart(`w-${id}`, 'test');
    await waitFor(`${id} healthy after the restore`, async () => (await app.inject(`/api/instances/w-${id}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
    const got = await signedIn(probe, ctx, 'zoe', pass, written);
    t.ok(got, `${id}: the service opens the restored data and lets its owner in`);
    const data = got?.data ?? [];
    t.same(before.filter((m) => !data.includes(m)), [], `${id}: everything written before the backup is there`);
    t.same(data.filter((m) => !written.includes(m)), [], `${id}: nothing that was never written`);
    t.comment(`${id}: ${data.length} of ${written.length} pieces restored (the rest came after the snapshot)`);
  }
});
