// The reconciler on a real three-node Docker Swarm (tests/orchestrator/swarm-fixture.ts), through the API: an
// instance asked for with POST /api/instances goes where placement says (the node that adds the fewest watts), becomes
// a Swarm service pinned to that node, healthy through the reconciler's passes; an account operation runs inside its
// task's container on that node's engine; stop, start and delete converge; a pinned instance whose node dies is
// observed `down`; and a server of the same association that is no swarm node still runs plain containers. Placement
// passes over a node set to drain; a backup of a Swarm instance pauses its task's container on its node (restic on
// that node's engine, to an SFTP repository beside the nodes), and its DKIM keys are read from that container too.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { addRepository, backupInstance, sshPublicKey } from '../../src/backups/backups.js';
import { createDkimKeys } from '../../src/ingress/dkim-keys.js';
import { createRuntime } from '../../src/runtime.js';
import { detachUnder } from '../../src/orchestrator/sized-volumes.js';
import { ensureImageOn, listNodes, serviceImageRef, serviceName, serviceTasks } from '../../src/orchestrator/docker/index.js';
import { buildImages, buildWorkDir } from '../../src/orchestrator/docker/images.js';
import { ROOT, asOperator, docker, quickHealthChecks, removeHosterObjects, testConfig, waitFor } from '../helpers.js';
import { busyboxService } from '../test-service.js';
import { hostIn } from '../services/beside.js';
import { startSftpRemote } from '../backups/sftp-remote.js';
import { execOn, serversCli, startSwarmNodes, type SwarmNode } from './swarm-fixture.js';

const started = Date.now();
// What each account operation is given is kept in the task's /tmp: read back on the node, it shows where it ran.
const OP = ['/bin/sh', '-c', 'cat > /tmp/last-op; echo \'{"ok":true,"bytes":1,"items":1}\''];
const manifest = busyboxService('swacct', {
  name: { fr: 'Service sur Swarm', en: 'Service on Swarm' },
  description: { fr: 'Un service à comptes.', en: 'A service with accounts.' },
  // What the DKIM keys' reader (ingress/dkim-keys.ts) picks a mail instance by.
  environment: { MAIL_DOMAIN: { value: 'asso.example' } },
  accounts: {
    adapter: 'exec',
    operations: {
      create: { exec: OP }, setPassword: { exec: OP }, suspend: { exec: OP }, resume: { exec: OP }, setQuota: { exec: OP }, delete: { exec: OP }, usage: { exec: OP },
    },
  },
});
// The catalog folder and image as serviceCatalog makes them, without its assertion: an assertion at a file's top level
// ends tap's root test (and runs its teardowns) before the subtests are queued.
const catDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-swacct-'));
t.teardown(() => fs.rmSync(catDir, { recursive: true, force: true }));
fs.mkdirSync(path.join(catDir, 'swacct'));
fs.writeFileSync(path.join(catDir, 'swacct', 'service.json'), JSON.stringify(manifest, null, 2));
fs.copyFileSync(path.join(ROOT, 'tests/fixtures/services/probe/Dockerfile'), path.join(catDir, 'swacct', 'Dockerfile'));
const swarm = await startSwarmNodes(t, { count: 3 });
const [n1, n2, n3] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode];
t.comment(`three nodes up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
// The first server ("local") is the swarm's manager, n1: where cattery would run and build its images.
// A hoster id of its own, not the nodes' prefix: the plain server's passes on the test machine's engine would take
// the node containers (labelled with the prefix as hoster) for orphans of cattery's, and remove them.
const config = testConfig(t, { dockerEndpoint: n1.endpoint, catalogDirs: [path.resolve(catDir)] });
const hoster = config.hosterId;
const cli = serversCli(config, log);
await cli('swarm-init', '--advertise-addr', n1.ip, '--no-new-privileges', '--heartbeat-s', '1');
await cli('join', 'n2', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip, '--insecure-plain-tcp', '--no-new-privileges');
await cli('join', 'n3', '--endpoint', n3.endpoint, '--advertise-addr', n3.ip, '--insecure-plain-tcp', '--no-new-privileges');
// The manager only manages (and placement is steered away from it below).
const n1Id = (await listNodes(n1.engine)).find((n) => n.hostname === n1.name)!.id;
const me = await n1.docker.getNode(n1Id).inspect() as { Version: { Index: number }; Spec: Record<string, unknown> };
await n1.docker.getNode(n1Id).update({ version: me.Version.Index, ...me.Spec, Availability: 'drain' } as object);

const rt = await createRuntime(config, pino({ level: config.logLevel }), { maxBackoffSeconds: 2 });
quickHealthChecks(rt.catalog);
asOperator(rt.app);
t.teardown(async () => {
  await rt.close();
  await removeHosterObjects(config.hosterId);
  await detachUnder(config.dataDir);
  t.comment(`swarm reconcile test file: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
const ref = serviceImageRef(rt.catalog.services.get('swacct')!);
// Built on the test machine's engine (cached by content), then given to the manager: where cattery builds its images,
// and where the reconciler carries them to the nodes from.
await buildImages(swarm.host, rt.catalog, { mirror: config.debianMirror, workDir: buildWorkDir(config.dataDir), only: ['swacct'], progress: () => undefined });
await ensureImageOn(swarm.host, n1.engine, ref);
rt.start(config.reconcileIntervalSeconds);

const api = (method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object) => rt.app.inject({ method, url, ...(payload ? { payload } : {}) });
const energy = (idleWatts: number, maxWatts: number) => ({ idleWatts, maxWatts, embodiedKgCo2e: 1000, serviceLifeYears: 6 });
const taskOf = async (slug: string) => (await serviceTasks(n1.engine, serviceName(hoster, slug))).find((x) => x.state === 'running' && x.desired === 'running');
const nodeName = async (id: string) => (await listNodes(n1.engine)).find((n) => n.id === id)?.server;

t.test('servers: the swarm roles are recorded; a plain server beside them', async (t) => {
  t.equal((await api('POST', '/api/servers', { name: 'plain', dockerEndpoint: 'unix:///var/run/docker.sock' })).statusCode, 201);
  const roles = rt.db.$client.prepare('SELECT name, swarm_role AS role FROM servers ORDER BY id').all();
  t.same(roles, [{ name: 'local', role: 'manager' }, { name: 'n2', role: 'worker' }, { name: 'n3', role: 'worker' }, { name: 'plain', role: null }]);
  // n3 adds the fewest watts, then n2; the manager and the plain server are steep.
  for (const [name, e] of [['local', energy(200, 900)], ['n2', energy(60, 200)], ['n3', energy(40, 100)], ['plain', energy(200, 900)]] as const) {
    t.equal((await api('PUT', `/api/servers/${name}/energy`, e)).statusCode, 200);
  }
});

t.test('placement passes over a node set to drain, and over the drained manager', async (t) => {
  const setAvailability = async (node: SwarmNode, availability: string) => {
    const id = (await listNodes(n1.engine)).find((n) => n.hostname === node.name)!.id;
    const cur = await n1.docker.getNode(id).inspect() as { Version: { Index: number }; Spec: Record<string, unknown> };
    await n1.docker.getNode(id).update({ version: cur.Version.Index, ...cur.Spec, Availability: availability } as object);
  };
  await setAvailability(n3, 'drain');
  try {
    const p = (await api('GET', '/api/servers/placement?service=swacct')).json();
    t.equal(p.server, 'n2', 'not n3, where it would add the fewest watts: its node is drained');
    t.match(p.candidates, [{ name: 'local', refused: 'unavailable' }, { name: 'n2' }, { name: 'n3', refused: 'unavailable' }, { name: 'plain' }]);
  } finally {
    await setAvailability(n3, 'active');
  }
  t.equal((await api('GET', '/api/servers/placement?service=swacct')).json().server, 'n3', 'active again: n3 once more');
});

t.test('POST /api/instances on a swarm: a service on the node placement chose, healthy through the reconciler', async (t) => {
  const res = await api('POST', '/api/instances?wait=true', { service: 'swacct', slug: 'sw-a' });
  t.equal(res.statusCode, 201, res.body);
  t.equal(res.json().server, 'n3', 'where it adds the fewest watts');
  t.equal(res.json().observed, 'healthy');
  const svc = await n1.docker.getService(serviceName(hoster, 'sw-a')).inspect() as { Spec: { TaskTemplate: { Placement: { Constraints: string[] } } } };
  t.ok(svc.Spec.TaskTemplate.Placement.Constraints.includes('node.labels.cattery.server==n3'), 'pinned to its server\'s node (stateful)');
  const task = (await taskOf('sw-a'))!;
  t.equal(await nodeName(task.nodeId), 'n3', 'its task runs there');
  t.ok(await n3.docker.getImage(ref).inspect(), 'the image was carried to the node');
  t.equal((await n3.docker.getVolume(`${hoster}-sw-a-data`).inspect()).Labels?.['cattery.instance'], 'sw-a', 'its volume on its node');
  t.equal((await docker.listContainers({ all: true, filters: { label: [`cattery.instance=sw-a`, `cattery.hoster=${hoster}`] } })).length, 0, 'no plain container anywhere');
  const kinds = rt.db.$client.prepare("SELECT kind FROM operations WHERE instance_slug = 'sw-a' ORDER BY id").all().map((r: { kind: string }) => r.kind);
  t.ok(kinds.includes('create') && kinds.includes('container-created') && kinds.includes('image-copied'), kinds.join(' '));
});

t.test('an account operation runs in the task\'s container, on its node\'s engine', async (t) => {
  const res = await api('POST', '/api/instances/sw-a/accounts', { username: 'ana', password: 'une phrase longue', quotaMb: 10 });
  t.equal(res.statusCode, 201, res.body);
  const task = (await taskOf('sw-a'))!;
  const seen = await execOn(n3.docker, task.containerId!, ['/bin/cat', '/tmp/last-op']);
  t.match(seen.out, /"username":"ana"/, 'the create operation got its input there');
});

t.test('a backup of a Swarm instance pauses its task\'s container on its node; its DKIM keys are read there', async (t) => {
  // cattery's "local" server here is n1, another machine's engine: its SSH key and every restic run go through the
  // engines' API, none through a folder of cattery's.
  for (const n of [n1, n3]) await ensureImageOn(swarm.host, n.engine, rt.backups.image);
  const key = await sshPublicKey(rt.backups, n1.engine);
  const remote = await startSftpRemote(t, { hosterId: hoster, subnetPool: '', key, on: { network: swarm.network, address: hostIn(swarm.subnet, 200) } });
  // everyHours 0: no scheduled backupAll of its own beside this one (both would pause the same container).
  await waitFor('the repository made over SFTP', () => addRepository(rt.backups, { name: 'offsite', url: remote.url('/srv/backups/cattery'), network: swarm.network, everyHours: 0 }, 'test')
    .catch((err: Error) => { if (/connection refused|EOF|closed/i.test(err.message)) return undefined; throw err; }), 60_000, 1000);
  const task = (await taskOf('sw-a'))!;
  const run = await backupInstance(rt.backups, 'offsite', 'sw-a', 'test');
  t.equal(run.status, 'done', run.error ?? 'backed up from n3');
  t.equal(run.consistency, 'paused', 'its task\'s container on n3 was paused for the copy');
  t.equal((await n3.docker.getContainer(task.containerId!).inspect()).State.Paused, false, 'and runs on after it');

  const spki = crypto.generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const keys = await createDkimKeys({
    db: rt.db, catalog: rt.catalog, hosterId: hoster, engineFor: rt.backups.engineFor, log, service: 'swacct',
    command: ['/bin/sh', '-c', `echo '{"domain":"asso.example","keys":[{"selector":"s2026","publicKey":"${spki}"}]}'`],
  })('asso.example');
  t.same(keys.map((k) => k.selector), ['s2026'], 'the key its task\'s container answered');
});

t.test('stop, start: the service scaled to 0 and back, observed by the reconciler', async (t) => {
  const stop = await api('PATCH', '/api/instances/sw-a?wait=true', { desired: 'stopped' });
  t.equal(stop.json().observed, 'stopped', stop.body);
  const spec = await n1.docker.getService(serviceName(hoster, 'sw-a')).inspect() as { Spec: { Mode: { Replicated: { Replicas: number } } } };
  t.equal(spec.Spec.Mode.Replicated.Replicas, 0);
  const start = await api('PATCH', '/api/instances/sw-a?wait=true', { desired: 'running' });
  t.equal(start.json().observed, 'healthy', start.body);
  t.equal(await nodeName((await taskOf('sw-a'))!.nodeId), 'n3', 'back on its node');
});

t.test('a server without Swarm in the same association still runs plain containers', async (t) => {
  const res = await api('POST', '/api/instances?wait=true', { service: 'swacct', slug: 'pl-a', server: 'plain' });
  t.equal(res.statusCode, 201, res.body);
  t.equal(res.json().observed, 'healthy');
  const c = await docker.getContainer(`${hoster}-pl-a`).inspect();
  t.equal(c.State.Running, true, 'a container on the plain engine');
  t.equal(await n1.docker.getService(serviceName(hoster, 'pl-a')).inspect().then(() => true, () => false), false, 'no service for it');
  t.equal((await api('POST', '/api/instances/pl-a/accounts', { username: 'bea', password: 'une phrase longue', quotaMb: 10 })).statusCode, 201);
  t.equal((await api('DELETE', '/api/instances/pl-a?wait=true&purge=true')).json().observed, 'deleted');
});

t.test('a pinned instance whose node dies is observed down; delete removes the service', async (t) => {
  const res = await api('POST', '/api/instances?wait=true', { service: 'swacct', slug: 'sw-b', server: 'n2' });
  t.equal(res.json().observed, 'healthy', res.body);
  t.equal(await nodeName((await taskOf('sw-b'))!.nodeId), 'n2');
  const killedAt = Date.now();
  await swarm.kill(n2);
  const down = await waitFor('sw-b observed down', async () => {
    const r = (await api('GET', '/api/instances/sw-b')).json();
    return r.observed === 'down' ? r : undefined;
  }, 90_000, 500);
  t.comment(`observed down ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`);
  t.match(down.lastError ?? '', /restore its latest backup on another server/);
  t.equal((await api('GET', '/api/instances/sw-a')).json().observed, 'healthy', 'the instance on the other node is unaffected');
  const del = await api('DELETE', '/api/instances/sw-a?wait=true&purge=true');
  t.equal(del.json().observed, 'deleted', del.body);
  t.equal(await n1.docker.getService(serviceName(hoster, 'sw-a')).inspect().then(() => true, () => false), false, 'service gone');
  t.equal(await n1.docker.getNetwork(serviceName(hoster, 'sw-a')).inspect().then(() => true, () => false), false, 'its overlay gone');
});
