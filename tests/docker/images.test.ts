// Local images: named by the hash of their inputs, so an unchanged service is never rebuilt and a changed one is.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
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
  const unknown = spawnSync(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'images', 'build', '--only', 'nosuch'], { env, encoding: 'utf8' });
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /No service "nosuch"/);
});
