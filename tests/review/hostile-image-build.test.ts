// Outside review of issue 13 (each image's packages read at build time): a hostile image stops `images build`. FAILS on
// purpose on the code as reviewed. The software list is a transparency page's input, read by running the image's own
// /bin/sh; buildImages awaits it inside the build loop, and any failure (exit ≠ 0, or the 120 s deadline) is thrown
// as CATTERY_ERR_BUILD, so one image whose shell does not cooperate aborts the build of every image after it, and
// `cattery serve --build-images` does not start. An image can say nothing true about its packages; it should not be
// able to stop the others' builds.
// Kind: an image whose /bin/sh exits non-zero at once (the timeout is the same path, 120 s later).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir, serviceImageRef } from '../../src/orchestrator/docker/images.js';
import { inventoryFile, softwareDir } from '../../src/orchestrator/docker/software.js';
import { ROOT, TEST_CATALOG, docker, removeHosterObjects, testConfig } from '../helpers.js';

t.test('an image whose shell fails does not stop the build of the others', async (t) => {
  const catalogDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-review13-cat-'));
  t.teardown(() => fs.rmSync(catalogDir, { recursive: true, force: true }));
  // The probe, renamed, with a /bin/sh that answers every run with exit 3.
  const id = `hostile-${process.pid}`;
  const probeDir = path.join(ROOT, 'tests/fixtures/services/probe');
  const dir = path.join(catalogDir, id);
  fs.mkdirSync(dir);
  const manifest = JSON.parse(fs.readFileSync(path.join(probeDir, 'service.json'), 'utf8')) as Record<string, unknown>;
  delete manifest.$schema;
  fs.writeFileSync(path.join(dir, 'service.json'), JSON.stringify({ ...manifest, id }, null, 2));
  fs.writeFileSync(path.join(dir, 'Dockerfile'), `${fs.readFileSync(path.join(probeDir, 'Dockerfile'), 'utf8')}\nRUN ["/bin/rm", "/bin/sh"]\nCOPY sh /bin/sh\n`);
  fs.writeFileSync(path.join(dir, 'sh'), '#!/bin/ash\nexit 3\n', { mode: 0o755 });

  const config = testConfig(t, { catalogDirs: [...TEST_CATALOG, catalogDir] });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  t.teardown(() => removeHosterObjects(config.hosterId));
  const hostile = rt.catalog.services.get(id);
  t.ok(hostile, 'the hostile service is in the catalog');
  if (!hostile) return;
  t.teardown(() => docker.getImage(serviceImageRef(hostile)).remove({ force: true }).catch(() => undefined));
  const engine = connectEngine(config.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: 120, log: pino({ level: 'silent' }) });
  const swDir = softwareDir(config.dataDir);
  let error: Error | undefined;
  try {
    await buildImages(engine, rt.catalog, { mirror: config.debianMirror, workDir: buildWorkDir(config.dataDir), only: [id, 'probe'], progress: () => undefined, inventoryDir: swDir });
  } catch (err) {
    error = err as Error;
  }
  t.notOk(error, `images build went through (${error?.message.slice(0, 160) ?? 'ok'})`);
  const probeRef = serviceImageRef(rt.catalog.services.get('probe')!);
  t.ok(fs.existsSync(inventoryFile(swDir, probeRef)), 'the probe, built beside it, has its software list');
});
