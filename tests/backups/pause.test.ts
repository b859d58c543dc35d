// A backup pauses an instance's container for the copy; the rest of cattery must live with a paused container and no
// two runs may share one pause. A reconcile pass that meets a paused container (a backup under way, or one a crash
// left) does not fail the instance; a second backup or a restore of an instance already paused is refused (otherwise
// the first run's unpause lets the service write, and a resident's process race, during the second run's copy), and
// the refused run leaves the pause to its owner.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { addRepository, backupInstance, restoreVolumes } from '../../src/backups/backups.js';
import { getInstance } from '../../src/orchestrator/instances.js';
import { HEALTHY_WITHIN_MS, docker, testRuntime, waitFor } from '../helpers.js';

t.test('a paused instance: the reconciler lets it be, a second backup or a restore waits its turn', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const deps = rt.backups;
  const repoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-restic-'));
  t.teardown(() => fs.rmSync(repoDir, { recursive: true, force: true }));
  t.equal((await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'gel' } })).statusCode, 202);
  await waitFor('gel healthy', async () => (await app.inject('/api/instances/gel')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 250);
  await addRepository(deps, { name: 'local', url: `${repoDir}/repo` }, 'test');
  const first = await backupInstance(deps, 'local', 'gel', 'test');
  t.equal(first.status, 'done', first.error ?? 'a first backup');

  const c = docker.getContainer(`${config.hosterId}-gel`);
  t.teardown(() => c.unpause().catch(() => undefined));
  // Another run holds the instance paused: a restic container with the same labels (sleeping) stands for it.
  const holder = await docker.createContainer({
    name: `${config.hosterId}-restic-holder`, Image: deps.image, Entrypoint: ['/bin/sleep'], Cmd: ['120'],
    Labels: { 'cattery.hoster': config.hosterId, 'cattery.role': 'backup', 'cattery.holds': 'gel' },
  });
  t.teardown(() => holder.remove({ force: true }).catch(() => undefined));
  await holder.start();
  await c.pause();
  const second = await backupInstance(deps, 'local', 'gel', 'test');
  t.equal(second.status, 'failed', 'a backup of an instance already paused is refused');
  t.match(second.error ?? '', /paused/, `and says why: ${second.error}`);
  t.equal((await c.inspect()).State.Paused, true, 'the pause is left to its owner');
  const restore = await restoreVolumes(deps, 'local', { slug: 'gel' }, getInstance(rt.db, 'gel'), 'test');
  t.equal(restore.status, 'failed', 'a restore into an instance already paused is refused');
  t.equal((await c.inspect()).State.Paused, true, 'and leaves it paused');

  // A pass meets the held pause: it leaves it, and does not fail the instance.
  const before = (await c.inspect()).Id;
  await rt.reconciler.trigger('test', 'gel');
  const row = getInstance(rt.db, 'gel');
  // (Docker's health check may still report a check that timed out during the first backup's pause: a blip that
  // the next check clears, not this pass's doing.)
  t.notMatch(row.lastError ?? '', /start|conflict|paused/i, `a pass does not fail on a paused container: ${row.lastError}`);
  t.equal(row.attempts, 0, 'nor counts an attempt');
  t.equal((await c.inspect()).State.Paused, true, 'the held pause is left to its holder');
  t.equal((await c.inspect()).Id, before, 'the container is the same');

  // The holder is gone without unpausing (a crash between pause and unpause): the next pass unpauses, and says so.
  await holder.remove({ force: true });
  await rt.reconciler.trigger('test', 'gel');
  t.equal((await c.inspect()).State.Paused, false, 'a pause nobody holds is undone by the next pass');
  t.ok(rt.db.$client.prepare("SELECT 1 FROM operations WHERE instance_slug = 'gel' AND kind = 'unpaused'").get(), 'and journaled');

  // The real runs: a backup and a restore into place, then the service runs again.
  const again = await backupInstance(deps, 'local', 'gel', 'test');
  t.equal(again.status, 'done', again.error ?? 'a backup after all that');
  t.equal(again.consistency, 'paused');
  const back = await restoreVolumes(deps, 'local', { slug: 'gel' }, getInstance(rt.db, 'gel'), 'test');
  t.equal(back.status, 'done', back.error ?? 'a restore into place');
  t.equal((await c.inspect()).State.Paused, false, 'not left paused');
});
