// Crash safety: cattery is restarted (SIGTERM) and then killed (SIGKILL) while 20 instances are being created.
// Afterwards every instance exists exactly once and nothing without a desired state is left on the engine.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import t from 'tap';
import { HEALTHY_WITHIN_MS, OPERATOR, OPERATOR_TOKEN, ROOT, TEST_CATALOG, docker, removeHosterObjects, testConfig, waitFor } from '../helpers.js';
import { busyboxService, serviceCatalog } from '../test-service.js';

// The probe's web server and health check, checked every 3 s instead of every second: with 40 of them, the
// probe's check cost about two cores of the test machine in engine execs alone, and checks that then took longer
// than their 2 s timeout made instances unhealthy for reasons of the machine, not of cattery.
const steady = busyboxService('steady', {
  name: { fr: 'Sonde au contrôle de santé espacé', en: 'Probe checked every 3 s' },
  description: { fr: 'Quarante instances créées pendant que cattery redémarre.', en: 'Forty instances created while cattery restarts.' },
  health: { command: ['/bin/wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/index.html'], intervalSeconds: 3, timeoutSeconds: 2, retries: 3, startPeriodSeconds: 0 },
});

t.test('restart and kill -9 during 20 creations', async (t) => {
  const config = testConfig(t, { catalogDirs: [...TEST_CATALOG, await serviceCatalog(t, steady)] });
  const port = 40000 + crypto.randomInt(0, 5000);
  const env = {
    ...process.env,
    CATTERY_DATA_DIR: config.dataDir, CATTERY_CATALOG: config.catalogDirs.join(':'), CATTERY_HOSTER_ID: config.hosterId,
    CATTERY_PORT_RANGE: config.portRange.join('-'), CATTERY_PORT: String(port), CATTERY_LOG_LEVEL: 'warn',
    CATTERY_RECONCILE_INTERVAL_S: '2', CATTERY_CONCURRENCY: '4', CATTERY_ADMIN_TOKEN: OPERATOR_TOKEN,
  };
  t.teardown(() => removeHosterObjects(config.hosterId));
  const base = `http://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    // Bounded generously: on a loaded machine its start (loading, compiling the routes' schemas) took 29 s.
    await waitFor('cattery up', async () => (await fetch(`${base}/healthz`)).ok, 90_000, 100);
    return child;
  };
  t.teardown(() => { child?.kill('SIGKILL'); });
  const exited = (c: ChildProcess) => new Promise((r) => c.once('exit', r));
  const createBatch = (prefix: string) => Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${base}/api/instances`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...OPERATOR }, body: JSON.stringify({ service: 'steady', slug: `${prefix}-${i}` }),
  }).then((r) => r.status)));
  const list = async () => (await (await fetch(`${base}/api/instances`, { headers: OPERATOR })).json()) as { slug: string; observed: string }[];

  async function checkEngine(expected: number) {
    const filters = { label: [`cattery.hoster=${config.hosterId}`] };
    const containers = await docker.listContainers({ all: true, filters });
    const slugs = containers.map((c) => c.Labels['cattery.instance']!);
    const rows = (await list()).map((r) => r.slug);
    t.equal(containers.length, expected, `${expected} containers, one per instance`);
    t.equal(new Set(slugs).size, slugs.length, 'no instance has two containers');
    t.same(slugs.filter((s) => !rows.includes(s)), [], 'no container without a desired state');
    const nets = await docker.listNetworks({ filters });
    t.equal(nets.length, expected, 'one network per instance');
    const vols = (await docker.listVolumes({ filters })).Volumes ?? [];
    t.same(vols.filter((v) => !rows.includes(v.Labels['cattery.instance']!)), [], 'no volume without a desired state');
  }

  let c = await start();
  t.same(await createBatch('term'), Array(20).fill(202));
  await new Promise((r) => setTimeout(r, 300));
  c.kill('SIGTERM');
  t.equal(await exited(c), 0, 'graceful exit on SIGTERM');
  c = await start();
  await waitFor('20 healthy after restart', async () => {
    const l = await list();
    return l.length === 20 && l.every((i) => i.observed === 'healthy');
  }, HEALTHY_WITHIN_MS, 500);
  await checkEngine(20);

  t.same(await createBatch('kill'), Array(20).fill(202));
  await new Promise((r) => setTimeout(r, 400));
  c.kill('SIGKILL');
  await exited(c);
  c = await start();
  await waitFor('40 healthy after kill -9', async () => {
    const l = await list();
    return l.length === 40 && l.every((i) => i.observed === 'healthy');
  }, HEALTHY_WITHIN_MS, 500).catch(async (err) => {
    t.comment(JSON.stringify((await list()).filter((i) => i.observed !== 'healthy')));
    throw err;
  });
  await checkEngine(40);
  c.kill('SIGTERM');
  await exited(c);
});
