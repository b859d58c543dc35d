// Outside review of issue 13 (the software list read from each image at build time): a hostile image. FAILS on
// purpose on the code as reviewed. The image is the test catalog's busybox probe with a `dpkg-query` of its own that
// lists more packages than the reader keeps (its stdout cap, 8 MiB): runOneShot stops keeping output at the cap
// without saying so, inventoryImage sees exit 0, and the cut list is written and published as the image's whole
// software. The same list then makes /transparency/software, a public page rendered at every request, weigh megabytes
// on the wire (the sobriety budget is 100 KB).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pack } from 'tar-stream';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir, serviceImageRef } from '../../src/orchestrator/docker/images.js';
import { inventoryFile, inventoryImage, softwareDir } from '../../src/orchestrator/docker/software.js';
import { docker, removeHosterObjects, testConfig } from '../helpers.js';

const PACKAGES = 250_000;

// Answers the reader's first call (the one whose format names ${Version}) with one package line per number; the
// second call (names only, for the copyright loop) gets nothing, so the run stays short.
const FAKE_DPKG_QUERY = `#!/bin/sh
case "$*" in
  *Version*) awk 'BEGIN { for (i = 1; i <= ${PACKAGES}; i++) printf "P\\tpkg%d\\t1.0\\tpkg%d\\t1.0\\tnon-free/net\\n", i, i }' ;;
esac
exit 0
`;

t.test('a hostile image: the software list is whole or refused, and the public page stays within budget', async (t) => {
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  t.teardown(() => removeHosterObjects(config.hosterId));
  const engine = connectEngine(config.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: 120, log: pino({ level: 'silent' }) });
  const probe = rt.catalog.services.get('probe')!;
  await buildImages(engine, rt.catalog, { mirror: config.debianMirror, workDir: buildWorkDir(config.dataDir), only: ['probe'], progress: () => undefined });
  const probeRef = serviceImageRef(probe);

  const hostileRef = `cattery/review-hostile-${config.hosterId}:0123456789ab`;
  const ctx = pack();
  ctx.entry({ name: 'Dockerfile' }, `FROM ${probeRef}\nCOPY dpkg-query /bin/dpkg-query\n`);
  ctx.entry({ name: 'dpkg-query', mode: 0o755 }, FAKE_DPKG_QUERY);
  ctx.finalize();
  const stream = await docker.buildImage(ctx as unknown as NodeJS.ReadableStream, { t: hostileRef, labels: { 'cattery.hoster': config.hosterId } });
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  t.teardown(() => docker.getImage(hostileRef).remove({ force: true }).catch(() => undefined));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-review13-sw-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  let listed: number | undefined;
  try {
    listed = (await inventoryImage(engine, probe, hostileRef, dir)).debian.length;
  } catch (err) {
    t.comment(`refused: ${(err as Error).message.slice(0, 200)}`);
  }
  t.ok(listed === undefined || listed === PACKAGES, `the image lists ${PACKAGES} packages; the inventory written says ${listed} (refused would be fine, a silent cut is not)`);

  // The same list as the probe's own (a hostile build of it): what the public page then sends a browser.
  if (listed !== undefined) {
    const file = inventoryFile(softwareDir(config.dataDir), probeRef);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.copyFileSync(inventoryFile(dir, hostileRef), file);
    const r = await rt.app.inject({ method: 'GET', url: '/transparency/software', headers: { 'sec-fetch-site': 'none', 'accept-encoding': 'br, gzip' } });
    t.equal(r.statusCode, 200);
    const wire = r.rawPayload.length;
    t.ok(wire < 100_000, `/transparency/software: ${wire} bytes on the wire (${r.headers['content-encoding'] ?? 'identity'}) for anyone, at every request`);
  }
});
