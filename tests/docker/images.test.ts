// Local images: named by the hash of their inputs, so an unchanged service is never rebuilt and a changed one is.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import tar from 'tar-stream';
import { loadCatalog } from '../../src/catalog/load.js';
import { serviceImageRef } from '../../src/orchestrator/docker/images.js';
import { ROOT, docker } from '../helpers.js';

t.test('the image tag follows the inputs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-img-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.cpSync(path.join(ROOT, 'tests/fixtures/services/probe'), path.join(dir, 'probe'), { recursive: true });
  const ref = () => serviceImageRef(loadCatalog([dir]).services.get('probe')!);
  const first = ref();
  t.equal(ref(), first, 'stable');
  t.match(first, /^cattery\/probe:[0-9a-f]{12}$/);
  fs.appendFileSync(path.join(dir, 'probe/Dockerfile'), '# a change\n');
  t.not(ref(), first, 'a changed Dockerfile gives a new tag');
});

t.test('cattery images build: a second build of the same inputs is skipped', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-img-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const env = { ...process.env, CATTERY_DATA_DIR: dataDir, CATTERY_CATALOG: `${ROOT}/services:${ROOT}/tests/fixtures/services` };
  const run = () => spawnSync(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'images', 'build', '--only', 'probe'], { env, encoding: 'utf8' });
  const first = run();
  t.equal(first.status, 0, first.stderr);
  const second = run();
  t.equal(second.status, 0);
  t.match(second.stdout, /cattery\/probe:[0-9a-f]{12}: already built/);
  const ref = second.stdout.match(/(cattery\/probe:[0-9a-f]{12})/)![1]!;
  t.ok(await docker.getImage(ref).inspect(), 'the image is on the engine');
  const list = path.join(dataDir, 'software', 'probe', `${ref.split(':')[1]}.json`);
  t.same(JSON.parse(fs.readFileSync(list, 'utf8')).image, ref, 'the build wrote the image\'s software list (transparency page)');
  const unknown = spawnSync(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'images', 'build', '--only', 'nosuch'], { env, encoding: 'utf8' });
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /No service "nosuch"/);
});

// Docker 20.10 gives a restarted container's tmpfs the mode of the image's folder at that path (a fresh start gets
// 1777): a service running as its own user on a read-only root would lose its /tmp at the first restart. So every
// tmpfs path of every catalog service must be a folder in its image that anyone may write, sticky.
t.test('every tmpfs path of every catalog service is a sticky world-writable folder in its image', async (t) => {
  const catalog = loadCatalog([path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')]);
  for (const svc of catalog.services.values()) {
    const ref = serviceImageRef(svc);
    const c = await docker.createContainer({ Image: ref, Entrypoint: ['/nonexistent'], NetworkDisabled: true, Labels: { 'cattery.test': 'tmpfs-modes' } });
    try {
      for (const tmp of svc.manifest.tmpfs) {
        const stream = await c.getArchive({ path: tmp.path }).catch(() => null);
        t.ok(stream, `${svc.manifest.id}: ${tmp.path} exists in ${ref}`);
        if (!stream) continue;
        const modes = await new Promise<number[]>((resolve, reject) => {
          const found: number[] = [];
          const ex = tar.extract();
          ex.on('entry', (h, s, next) => { if (found.length === 0) found.push(h.type === 'directory' ? h.mode ?? 0 : -1); s.resume(); s.on('end', next); });
          ex.on('finish', () => resolve(found));
          ex.on('error', reject);
          stream.pipe(ex);
        });
        t.equal((modes[0] ?? 0) & 0o7777, 0o1777, `${svc.manifest.id}: ${tmp.path} is a folder with mode 1777`);
      }
    } finally {
      await c.remove({ force: true });
    }
  }
});
