// `cattery servers join` and the Swarm runtime against what an outside review of issue 15 found, on a real
// three-node swarm (tests/orchestrator/swarm-fixture.ts):
// - a server reinstalled (its disk new, its address the same) and joined again under its name: its old node is still
//   in the swarm with the label, so the new node is refused the label, and its stateful instance, pinned to the old
//   node's id and label, never runs on the new node's empty volume;
// - `join OTHER --endpoint <an engine already joined as NAME>` is refused and relabels nothing;
// - a name no route could name is refused before anything is made;
// - an instance is reported stopped only once its task's container has exited (a move's final backup follows);
// (An instance's task reaching no server's engine API is the node guard's: tests/agent/swarm-guard.test.ts.)
import t from 'tap';
import { pino } from 'pino';
import { loadValidCatalog } from '../../src/catalog/load.js';
import { serversCommand } from '../../src/cli/servers.js';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import { listServers } from '../../src/orchestrator/servers.js';
import {
  connectEngine, ensureImageOn, ensureServiceImage, listNodes, serviceName, serviceTasks, swarmState, volumeName, type Engine,
} from '../../src/orchestrator/docker/index.js';
import { ensureSwarmInstance, swarmInstanceState, type SwarmInstanceWanted } from '../../src/orchestrator/swarm.js';
import { swarmRuntime } from '../../src/orchestrator/docker/swarm-runtime.js';
import { TEST_CATALOG, testConfig, waitFor } from '../helpers.js';
import { execOn, startSwarmNodes, type SwarmNode } from './swarm-fixture.js';

const swarm = await startSwarmNodes(t, { count: 3 });
const [n1, n2, n3] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode];
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const manager: Engine = connectEngine(n1.endpoint, { hosterId: swarm.prefix, timeoutSeconds: 30, log });
const config = testConfig(t, { hosterId: swarm.prefix, dockerEndpoint: n1.endpoint });
const catalog = loadValidCatalog(TEST_CATALOG);
const probe = catalog.services.get('probe')!;
const probeRef = await ensureServiceImage(swarm.host, probe, { workDir: `${config.dataDir}/build`, progress: () => undefined });
const cli = async (...args: string[]) => {
  const lines: string[] = [];
  const code = await serversCommand(args[0], args.slice(1), config, log, (l) => lines.push(l));
  return { code, out: lines.join('\n') };
};
const rows = () => {
  const db = openDb(config.dbFile);
  try { applyMigrations(db); return listServers(db).map((s) => s.name); } finally { db.$client.close(); }
};

const keep: SwarmInstanceWanted = {
  manifest: probe.manifest,
  instance: { slug: 'keep', generation: 1, service: 'probe', image: probeRef, config: { ports: {}, secrets: { PROBE_SECRET: 's'.repeat(24) }, env: { PROBE_GREETING: 'hello-keep' } } },
  serverName: 'n2',
};

t.before(async () => {
  t.equal((await cli('swarm-init', '--advertise-addr', n1.ip, '--no-new-privileges', '--heartbeat-s', '1')).code, 0);
  // The manager only manages (as in swarm.test.ts): the pinned instance can only go to a node labelled n2.
  const me = (await listNodes(manager)).find((n) => n.hostname === n1.name)!;
  const spec = await manager.docker.getNode(me.id).inspect() as { Version: { Index: number }; Spec: Record<string, unknown> };
  await manager.docker.getNode(me.id).update({ version: spec.Version.Index, ...spec.Spec, Availability: 'drain' } as object);
  t.equal((await cli('join', 'n2', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip, '--insecure-plain-tcp', '--no-new-privileges')).code, 0);
  // Pinned as the reconciler pins it: to the label and to the node id the server joined as.
  keep.nodeId = (await listNodes(manager)).find((n) => n.hostname === n2.name)!.id;
  await ensureImageOn(swarm.host, n2.engine, probeRef);
  await ensureSwarmInstance(manager, keep);
  await waitFor('keep running on n2', async () => (await swarmInstanceState(manager, { manifest: keep.manifest, serverName: 'n2', slug: 'keep' })).status === 'running', 90_000, 500);
});

const runningTaskOf = async (slug: string) => {
  const [tasks, nodes] = await Promise.all([serviceTasks(manager, serviceName(swarm.prefix, slug)), listNodes(manager)]);
  const task = tasks.find((x) => x.desired === 'running' && x.state === 'running' && x.containerId);
  return task ? { task, node: nodes.find((n) => n.id === task.nodeId) } : undefined;
};

t.test('on Swarm, an instance is reported stopped only once its task\'s container has stopped (and its volume is still)', async (t) => {
  // A move takes its final backup as soon as the instance is seen stopped (relocate.ts), then drops the old volume:
  // what the process writes while it shuts down (a database's last checkpoint) must be in that backup.
  const rtm = swarmRuntime(manager, 'n2');
  const manifest = {
    ...probe.manifest, health: undefined,
    command: ['/bin/sh', '-c', "trap 'sleep 4; echo last > /data/last; exit 0' TERM; while true; do sleep 1; done"],
  } as typeof probe.manifest;
  const w = { manifest, instance: { ...keep.instance, slug: 'quiet' }, server: { publishAddress: '127.0.0.1' } };
  const { id } = await rtm.createOrAdopt(w, () => 'replace');
  await rtm.ensureStarted(id, 'quiet');
  const task = await waitFor('quiet running', async () => ((await rtm.state(id, 'quiet')).running ? runningTaskOf('quiet') : undefined), 90_000, 500);
  await rtm.ensureStopped(id, 'quiet');
  await waitFor('quiet reported stopped', async () => !(await rtm.state(id, 'quiet')).running, 30_000, 100);
  const c = await n2.docker.getContainer(task.task.containerId!).inspect();
  t.equal(c.State.Running, false, `its container is ${c.State.Status} when the runtime reports it stopped (it writes /data/last 4 s after SIGTERM)`);
});

t.test('a reinstalled server joined again under its name: its stateful instance never runs on an empty volume', async (t) => {
  const first = (await runningTaskOf('keep'))!;
  t.equal((await execOn(n2.docker, first.task.containerId!, ['/bin/sh', '-c', 'echo precious > /data/precious && cat /data/precious'])).out.trim(), 'precious');
  const oldNodeId = first.node!.id;
  // The reinstall: the engine leaves the swarm (a new install has no swarm state), its disk is new (the volume gone).
  await n2.docker.swarmLeave({ force: true });
  await waitFor('the task container gone from n2', async () => (await n2.docker.listContainers({ all: true })).length === 0, 60_000, 500);
  await n2.docker.getVolume(volumeName(swarm.prefix, 'keep', 'data')).remove();
  // As docs/swarm.md once said ("Joining again is a no-op"): refused now, the old node still carrying the label.
  const again = await cli('join', 'n2', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip, '--insecure-plain-tcp', '--no-new-privileges').catch((err: Error & { code?: string }) => ({ code: -1, out: `${err.code}: ${err.message}` }));
  t.comment(`join again: ${again.code} ${again.out}`);
  const labelled = (await listNodes(manager)).filter((n) => n.server === 'n2');
  t.ok(labelled.length <= 1, `at most one node carries cattery.server=n2 (found ${labelled.map((n) => `${n.id.slice(0, 8)} ${n.state}`).join(', ')}; the old one ${oldNodeId.slice(0, 8)})`);
  // For 45 s: wherever Swarm runs "keep", its data must be there; an instance that stays down is what issue 15 asks.
  const until = Date.now() + 45_000;
  let verdict = 'stayed down';
  while (Date.now() < until) {
    const r = await runningTaskOf('keep');
    if (r && r.node?.id !== oldNodeId) {
      const node = swarm.nodes.find((n) => n.name === r.node?.hostname)!;
      const read = await execOn(node.docker, r.task.containerId!, ['/bin/cat', '/data/precious']);
      verdict = read.code === 0 ? 'runs with its data' : `runs on node ${r.node?.id.slice(0, 8)} (${r.node?.hostname}) with an empty /data`;
      break;
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
  t.not(verdict.includes('empty'), true, `the pinned stateful instance after the rejoin: ${verdict}`);
});

t.test('join OTHER with the endpoint of an engine already joined as n2 is refused; no node relabelled', async (t) => {
  const before = (await listNodes(manager)).map((n) => [n.id, n.server]);
  const r = await cli('join', 'other', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip, '--insecure-plain-tcp').catch((err: Error & { code?: string }) => ({ code: -1, out: String(err.code) }));
  t.not(r.code, 0, `refused (${r.out})`);
  t.same((await listNodes(manager)).map((n) => [n.id, n.server]), before, 'every node keeps its label');
  t.notOk(rows().includes('other'), 'no row for the second name');
});

t.test('join with a name no route can name is refused before anything is made', async (t) => {
  for (const name of ['Mairie', 'école', 'a b', 'mairie.annexe', `m${'x'.repeat(50)}`]) {
    const r = await cli('join', name, '--endpoint', n3.endpoint, '--advertise-addr', n3.ip).then((x) => x.code, (err: Error & { code?: string }) => err.code);
    t.equal(r, 'CATTERY_ERR_VALIDATION', `"${name}" refused as invalid`);
    t.notOk(rows().includes(name), `no row "${name}"`);
  }
  t.equal((await swarmState(n3.engine)).active, false, 'n3 was never joined');
});
