// The data size limit of item 4, on the real engine: a container writing past its volume's sizeMb gets ENOSPC and
// the host's file system does not fill; the limit grows and never shrinks; a reboot (loop devices gone, links stale)
// is recovered without a container ever mounting another's data; delete archives then removes the images.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { execIn, testRuntime, waitFor } from '../helpers.js';
import { attachedLoop, detachUnder, sweepStaleLinks, volumeFiles } from '../../src/orchestrator/sized-volumes.js';
import { instances } from '../../src/db/schema.js';
import { eq } from 'drizzle-orm';

const MiB = 1024 * 1024;
const freeBytes = (dir: string) => { const s = fs.statfsSync(dir); return s.bavail * s.bsize; };

t.test('a volume holds its sizeMb and no more; grows, never shrinks; survives a reboot; goes with its instance', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const volumesDir = path.join(config.dataDir, 'volumes');
  t.teardown(() => detachUnder(config.dataDir));
  const healthy = (slug: string) => waitFor(`${slug} healthy`, async () => {
    const r = (await app.inject(`/api/instances/${slug}`)).json();
    if (r.observed !== 'healthy') throw new Error(`${r.observed}: ${r.lastError}`);
    return true;
  });

  t.equal((await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'full' } })).statusCode, 202);
  await healthy('full');
  const vname = `${config.hosterId}-full-data`;
  const { image, link } = volumeFiles(volumesDir, vname);
  t.equal(fs.statSync(volumesDir).mode & 0o777, 0o700, 'data/volumes is 0700');
  t.equal(fs.statSync(image).mode & 0o777, 0o600, 'the image is 0600');
  t.equal(fs.statSync(image).size, 16 * MiB, 'the image has the manifest\'s size');
  t.equal(fs.readlinkSync(link), attachedLoop(image), 'the link names the image\'s own loop device');

  const container = `${config.hosterId}-full`;
  t.equal((await execIn(container, ['/bin/sh', '-c', 'echo précieux > /data/note.txt'])).code, 0, 'the service writes its data as its own user (the image folder\'s owner was copied)');
  const before = freeBytes(config.dataDir);
  const fill = await execIn(container, ['/bin/sh', '-c', 'dd if=/dev/zero of=/data/big bs=1M count=64 2>&1; echo "rc=$?"']);
  t.match(fill.out, /No space left on device/, 'writing past the limit gets ENOSPC');
  t.match(fill.out, /rc=1/);
  t.ok(before - freeBytes(config.dataDir) < 20 * MiB, `the host lost at most the declared size (${Math.round((before - freeBytes(config.dataDir)) / MiB)} MB)`);
  t.ok(fs.statSync(image).blocks * 512 <= 17 * MiB, 'the image never takes more than its size on the host');
  t.equal((await execIn(container, ['/bin/cat', '/data/note.txt'])).out.trim(), 'précieux', 'what was there is intact');
  await execIn(container, ['/bin/rm', '/data/big']);

  // Grow: the manifest says more. The image grows at once; the file system online where the kernel lets cattery
  // (CAP_SYS_RESOURCE), else as soon as the volume is not mounted: here, a stop.
  const fsKb = async () => {
    const [blocks, bsize] = (await execIn(container, ['/bin/stat', '-f', '-c', '%b %S', '/data'])).out.trim().split(' ').map(Number);
    return (blocks! * bsize!) / 1024;
  };
  const vol = rt.catalog.services.get('probe')!.manifest.volumes[0]!;
  vol.sizeMb = 32;
  await rt.reconciler.trigger('test', 'full');
  t.equal(fs.statSync(image).size, 32 * MiB, 'the image grew');
  // A container that never ran is started each time: the probe cannot restart the same container (its tmpfs
  // comes back root-owned on Docker 20.10), so a stop is followed by an upgrade, which makes a new one.
  const stopUpgradeStart = async () => {
    const stop = await app.inject({ method: 'POST', url: '/api/instances/full/stop?wait=true' });
    t.equal(stop.json().observed, 'stopped', stop.body);
    await app.inject({ method: 'POST', url: '/api/instances/full/upgrade?wait=true' });
    await app.inject({ method: 'POST', url: '/api/instances/full/start' });
    await healthy('full');
  };
  if ((await fsKb()) < 24 * 1024) await stopUpgradeStart();
  t.ok((await fsKb()) > 24 * 1024, `the mounted file system grew (${await fsKb()} kB)`);
  t.equal((await execIn(container, ['/bin/cat', '/data/note.txt'])).out.trim(), 'précieux', 'the data is still there');
  // Shrink: refused, said in the instance's last error, data untouched.
  vol.sizeMb = 16;
  await rt.reconciler.trigger('test', 'full');
  t.match((await app.inject('/api/instances/full')).json().lastError, /shrinking is refused/);
  t.equal(fs.statSync(image).size, 32 * MiB);
  vol.sizeMb = 32;
  rt.db.update(instances).set({ nextAttemptAt: null }).where(eq(instances.slug, 'full')).run();
  await rt.reconciler.trigger('test', 'full');

  // A reboot: the container stops, the loop device is gone, and the link names a device that is not the image's.
  const stop = await app.inject({ method: 'POST', url: '/api/instances/full/stop?wait=true' });
  t.equal(stop.json().observed, 'stopped', stop.body);
  // Synchronous from here to the sweep, so that no reconcile pass re-attaches in between.
  execFileSync('losetup', ['--detach', attachedLoop(image)!]);
  t.equal(attachedLoop(image), null);
  fs.rmSync(link);
  fs.symlinkSync('/dev/loop-that-is-not-ours', link);
  t.same(sweepStaleLinks(volumesDir), [`${vname}.dev`], 'a stale link is dropped at start');
  t.notOk(fs.existsSync(link));
  await app.inject({ method: 'POST', url: '/api/instances/full/upgrade?wait=true' });
  await app.inject({ method: 'POST', url: '/api/instances/full/start' });
  await healthy('full');
  t.equal(fs.readlinkSync(link), attachedLoop(image), 're-attached and re-linked before the container started');
  t.equal((await execIn(container, ['/bin/cat', '/data/note.txt'])).out.trim(), 'précieux', 'the data came back with it');

  // Delete: archived first, then the image is detached and removed.
  const del = await app.inject({ method: 'DELETE', url: '/api/instances/full?wait=true' });
  t.equal(del.json().observed, 'deleted', del.body);
  const backups = fs.readdirSync(path.join(config.dataDir, 'backups'));
  t.equal(backups.length, 1);
  t.ok(fs.statSync(path.join(config.dataDir, 'backups', backups[0]!, 'data.tar.gz')).size > 0, 'the volume was archived');
  t.notOk(fs.existsSync(image), 'the image is removed');
  t.notOk(fs.existsSync(link));
  t.equal(attachedLoop(image), null, 'and detached');

  // Purge: nothing archived, nothing left.
  await app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'probe', slug: 'gone' } });
  await healthy('gone');
  const gone = volumeFiles(volumesDir, `${config.hosterId}-gone-data`);
  t.ok(fs.existsSync(gone.image));
  t.equal((await app.inject({ method: 'DELETE', url: '/api/instances/gone?purge=true&wait=true' })).json().observed, 'deleted');
  t.notOk(fs.existsSync(gone.image));
  t.equal(fs.readdirSync(path.join(config.dataDir, 'backups')).length, 1, 'purge wrote no archive');
});

t.test('a delete whose image is gone archives with the service\'s image, or finishes with purge', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  t.teardown(() => detachUnder(config.dataDir));
  for (const slug of ['old-image', 'no-service']) {
    await app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'probe', slug } });
    await waitFor(`${slug} healthy`, async () => (await app.inject(`/api/instances/${slug}`)).json().observed === 'healthy');
  }
  // The image it was made from was removed (an upgrade and an image prune).
  rt.db.update(instances).set({ image: 'cattery/probe:gone-long-ago' }).where(eq(instances.slug, 'old-image')).run();
  const del = await app.inject({ method: 'DELETE', url: '/api/instances/old-image?wait=true' });
  t.equal(del.json().observed, 'deleted', del.body);
  t.equal(fs.readdirSync(path.join(config.dataDir, 'backups')).filter((d) => d.startsWith('old-image-')).length, 1, 'archived with the service\'s current image');

  // The service left the catalog: no archive can be made; the delete is stuck until purge is asked for.
  rt.db.update(instances).set({ service: 'retired' }).where(eq(instances.slug, 'no-service')).run();
  const stuck = await app.inject({ method: 'DELETE', url: '/api/instances/no-service?wait=true' });
  t.equal(stuck.statusCode, 409, 'a wait on a delete that cannot finish is a clear error, not a long wait');
  t.match(stuck.json().message, /purge=true/);
  t.match((await app.inject('/api/instances/no-service')).json().lastError, /purge=true/);
  const purge = await app.inject({ method: 'DELETE', url: '/api/instances/no-service?purge=true&wait=true' });
  t.equal(purge.json().observed, 'deleted', purge.body);
  t.equal((await app.inject('/api/instances/no-service')).statusCode, 404);
  t.equal((await app.inject({ method: 'PATCH', url: '/api/instances/old-image', payload: { desired: 'running' } })).statusCode, 404);
});
