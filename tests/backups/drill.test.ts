// The disaster drill, end to end on real parts: a hoster with every catalog service that has accounts (mail, files,
// pads), two residents' data in each, backed up over SFTP to another machine; then everything is destroyed — the
// data folder, every container, volume and network of the hoster — and a new machine restores it with
// `cattery restore`, the repository's address and the recovery sheet's password alone. Each resident finds their own
// data (and not the other's) by signing in with their own password, at the service and at cattery.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import t from 'tap';
import { addRepository, backupAll, recoverySheet, sshPublicKey } from '../../src/backups/backups.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createUser } from '../../src/identity/users.js';
import { detachUnder } from '../../src/orchestrator/sized-volumes.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import {
  HEALTHY_WITHIN_MS, OPERATOR_TOKEN, ROOT, TEST_CATALOG, asOperator, docker, quickHealthChecks, removeHosterObjects, subnetPoolSlice,
  testConfig, waitFor,
} from '../helpers.js';
import { pageBrowser } from '../page-browser.js';
import { PROBES, newMarker, signedIn, type ProbeCtx } from '../services/probes.js';
import { startSftpRemote } from './sftp-remote.js';

const run = promisify(execFile);

async function startRuntime(t: Parameters<Parameters<typeof t.test>[1]>[0], config: Config): Promise<Runtime> {
  const rt = await createRuntime(config, pino({ level: 'silent' }), { maxBackoffSeconds: 2 });
  quickHealthChecks(rt.catalog);
  rt.start(config.reconcileIntervalSeconds);
  asOperator(rt.app);
  return rt;
}

t.test('disaster drill: back up over SFTP, lose the machine, restore on a new one', async (t) => {
  const config = testConfig(t, { subnetPool: subnetPoolSlice(0) });
  const { hosterId } = config;
  t.teardown(async () => { await removeHosterObjects(hosterId); });
  let rt = await startRuntime(t, config);
  let closed = false;
  t.teardown(async () => { if (!closed) await rt.close(); await detachUnder(config.dataDir); });

  const ids = Object.keys(PROBES);
  t.same(ids.sort(), ['files', 'mail', 'pads'], 'every catalog service with accounts is in the drill');
  const ctxOf = async (id: string): Promise<ProbeCtx> => ({
    container: `${hosterId}-drill-${id}`, ports: (await rt.app.inject(`/api/instances/drill-${id}`)).json().ports, env: PROBES[id]!.env,
  });
  for (const id of ids) {
    const env = PROBES[id]!.env;
    const r = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: id, slug: `drill-${id}`, ...(Object.keys(env).length ? { env } : {}) } });
    t.equal(r.statusCode, 202, r.body);
  }
  for (const id of ids) await waitFor(`${id} healthy`, async () => (await rt.app.inject(`/api/instances/drill-${id}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);

  // Two residents in each service, each with data of their own put in through the service as their client would.
  const people = [{ name: 'alice', password: 'la phrase d’Alice 2026' }, { name: 'bob', password: 'le secret de Bob, 2026' }];
  const markers = new Map<string, string>();
  await Promise.all(ids.map(async (id) => {
    const ctx = await ctxOf(id);
    for (const p of people) {
      const made = await rt.app.inject({ method: 'POST', url: `/api/instances/drill-${id}/accounts`, payload: { username: p.name, password: p.password, quotaMb: 20 } });
      t.equal(made.statusCode, 201, `${id}: ${p.name}'s account ${made.body.slice(0, 200)}`);
      const marker = newMarker();
      await PROBES[id]!.seed(ctx, p.name, p.password, marker);
      markers.set(`${id}/${p.name}`, marker);
    }
  }));
  await createUser(rt.db, { login: 'lea.martin', name: 'Léa Martin', roles: ['resident'], password: 'le mot de passe de Léa' });

  // Backed up over SFTP to the other machine, and the recovery sheet printed.
  const remote = await startSftpRemote(t, { hosterId, subnetPool: subnetPoolSlice(1), key: await sshPublicKey(rt.backups, rt.engines.engineFor(rt.backups.localServer())) });
  const url = remote.url('/srv/backups/quartier');
  await waitFor('the repository made over SFTP', () => addRepository(rt.backups, { name: 'offsite', url, network: remote.network }, 'test').catch((err: Error) => {
    if (/connection refused|EOF|closed/i.test(err.message)) return undefined;
    throw err;
  }), 60_000, 1000);
  const runs = await backupAll(rt.backups, 'offsite', 'test');
  t.same(runs.filter((r) => r.status !== 'done').map((r) => `${r.target}: ${r.error}`), [], `${runs.length} runs, all done`);
  t.same(runs.filter((r) => r.kind === 'backup').map((r) => r.target).sort(), ['hoster', ...ids.map((id) => `instance:drill-${id}`)].sort());
  const sheet = await recoverySheet(rt.backups, 'offsite');
  const password = /Password \/ mot de passe : (\S+)/.exec(sheet)?.[1];
  t.ok(password, 'the sheet gives the password');

  // The disaster: cattery gone, its data folder gone, every container, volume and network of the hoster gone.
  await rt.close();
  closed = true;
  await removeHosterObjects(hosterId);
  await detachUnder(config.dataDir);
  fs.rmSync(config.dataDir, { recursive: true, force: true });
  const filters = { label: [`cattery.hoster=${hosterId}`] };
  t.equal((await docker.listContainers({ all: true, filters })).length + ((await docker.listVolumes({ filters })).Volumes ?? []).length, 0, 'nothing of the hoster is left');

  // A new machine: the repository's address and the sheet's password, nothing else.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-newmachine-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const sheetPassword = path.join(dataDir, '..', `${path.basename(dataDir)}.password`);
  fs.writeFileSync(sheetPassword, `${password}\n`, { mode: 0o600 });
  t.teardown(() => fs.rmSync(sheetPassword, { force: true }));
  const env = {
    ...process.env, CATTERY_DATA_DIR: dataDir, CATTERY_HOSTER_ID: hosterId, CATTERY_CATALOG: TEST_CATALOG.join(':'),
    CATTERY_PORT_RANGE: config.portRange.join('-'), CATTERY_SUBNET_POOL: config.subnetPool, CATTERY_LOG_LEVEL: 'warn', CATTERY_ADMIN_TOKEN: OPERATOR_TOKEN,
  };
  const restore = () => run(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'restore', '--from', url, '--password-file', sheetPassword, '--network', remote.network],
    { env, timeout: 900_000 }).then((r) => ({ code: 0, out: r.stdout + r.stderr }), (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }));
  const first = await restore();
  t.equal(first.code, 2, 'the first try asks for the new machine\'s key to be added on the remote');
  const newKey = /^ssh-ed25519 \S+ \S+$/m.exec(first.out)?.[0];
  t.ok(newKey, `and prints it: ${first.out.slice(0, 300)}`);
  await remote.authorize(newKey!);
  const second = await restore();
  t.equal(second.code, 0, `cattery restore: ${second.out}`);

  const config2 = loadConfig({
    CATTERY_DATA_DIR: dataDir, CATTERY_CATALOG: env.CATTERY_CATALOG, CATTERY_HOSTER_ID: hosterId, CATTERY_PORT_RANGE: env.CATTERY_PORT_RANGE,
    CATTERY_PORT: '0', CATTERY_LOG_LEVEL: 'silent', CATTERY_RECONCILE_INTERVAL_S: '2', CATTERY_HEALTH_TIMEOUT_S: '60',
    CATTERY_SUBNET_POOL: env.CATTERY_SUBNET_POOL, CATTERY_ADMIN_TOKEN: OPERATOR_TOKEN,
  });
  rt = await startRuntime(t, config2);
  closed = false;
  t.teardown(() => detachUnder(dataDir));
  for (const id of ids) await waitFor(`${id} healthy on the new machine`, async () => (await rt.app.inject(`/api/instances/drill-${id}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);

  // Each resident signs in with their own password and finds their own data, and only theirs.
  for (const id of ids) {
    const ctx = await ctxOf(id);
    for (const p of people) {
      const mine = markers.get(`${id}/${p.name}`)!;
      const other = markers.get(`${id}/${people.find((x) => x !== p)!.name}`)!;
      const got = await signedIn(PROBES[id]!, ctx, p.name, p.password, [mine, other]);
      t.ok(got, `${id}: ${p.name} signs in with their password`);
      t.same(got?.data, [mine], `${id}: ${p.name}'s data is back, and only theirs`);
    }
  }
  const b = pageBrowser(rt.app, { authorization: null });
  t.equal((await b.post('/login', { login: 'lea.martin', password: 'le mot de passe de Léa' }, { csrfFrom: '/login' })).statusCode, 303, 'a resident signs in to cattery with her password');
});
