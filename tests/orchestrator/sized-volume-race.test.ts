// A sized volume asked for by several callers at once (a restore beside an instance and the reconciler's pass), on
// this host's engine with real loop-backed images: every call succeeds, one image is made, the volume is there.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { connectEngine } from '../../src/orchestrator/docker/index.js';
import { ensureSizedVolume, releaseSizedVolume, volumeFiles } from '../../src/orchestrator/sized-volumes.js';
import { docker, testConfig } from '../helpers.js';

const config = testConfig(t);
const engine = connectEngine('unix:///var/run/docker.sock', { hosterId: config.hosterId, timeoutSeconds: 60, log: pino({ level: 'silent' }) });
const dir = path.join(config.dataDir, 'volumes');

for (const callers of [2, 3, 5]) {
  t.test(`${callers} callers at once for one volume`, async (t) => {
    const name = `${config.hosterId}-race${callers}-data`;
    t.teardown(async () => {
      await docker.getVolume(name).remove().catch(() => undefined);
      await releaseSizedVolume(dir, name).catch(() => undefined);
    });
    const labels = { 'cattery.hoster': config.hosterId };
    const results = await Promise.allSettled(Array.from({ length: callers }, () => ensureSizedVolume(engine, dir, name, labels, 16)));
    t.same(results.map((r) => r.status), Array(callers).fill('fulfilled'), results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join(' / '));
    const files = volumeFiles(dir, name);
    t.ok(fs.existsSync(files.image), 'the image made');
    t.notOk(fs.existsSync(`${files.image}.partial`), 'no half-made file left');
    t.equal((await docker.getVolume(name).inspect()).Options?.device, files.link, 'the volume backed by it');
  });
}
