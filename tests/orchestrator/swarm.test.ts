// On a real three-node Docker Swarm (tests/orchestrator/swarm-fixture.ts): `cattery servers` forms it and labels its
// nodes; instances placed by label run with every hardening, read back from each task's container through its own
// node's dockerd; two instances cannot reach each other, on different nodes or on one; when a node dies, the stateful
// instance pinned there stays down and is reported, the stateless one is rescheduled.
import t from 'tap';
import { pino } from 'pino';
import { loadValidCatalog } from '../../src/catalog/load.js';
import type { Manifest } from '../../src/catalog/manifest.js';
import { serversCommand } from '../../src/cli/servers.js';
import {
  connectEngine, ensureImageOn, ensureServiceImage, listNodes, serviceName, serviceTasks, type Engine, type TaskView,
} from '../../src/orchestrator/docker/index.js';
import { swarmRuntime } from '../../src/orchestrator/docker/swarm-runtime.js';
import { ensureSwarmInstance, removeSwarmInstance, swarmInstanceState, type SwarmInstanceWanted } from '../../src/orchestrator/swarm.js';
import { TEST_CATALOG, testConfig, waitFor } from '../helpers.js';
import { execOn, startSwarmNodes, type SwarmNode } from './swarm-fixture.js';

const started = Date.now();
const swarm = await startSwarmNodes(t, { count: 3 });
const [n1, n2, n3] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode];
t.comment(`three nodes up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const manager: Engine = connectEngine(n1.endpoint, { hosterId: swarm.prefix, timeoutSeconds: 30, log });
const config = testConfig(t, { hosterId: swarm.prefix, dockerEndpoint: n1.endpoint });
const catalog = loadValidCatalog(TEST_CATALOG);
const probe = catalog.services.get('probe')!;
const probeRef = await ensureServiceImage(swarm.host, probe, { workDir: `${config.dataDir}/build`, progress: () => undefined });

const cliWith = (c: typeof config) => async (...args: string[]) => {
  const lines: string[] = [];
  const code = await serversCommand(args[0], args.slice(1), c, log, (l) => lines.push(l));
  return { code, out: lines.join('\n') };
};
const cli = cliWith(config);
const nodeByName = async (hostname: string) => (await listNodes(manager)).find((n) => n.hostname === hostname)!;

// Each probe answers with its own greeting: what one instance reads is then known to come from the other.
const wanted = (slug: string, serverName: string, over: Partial<Manifest> = {}): SwarmInstanceWanted => ({
  manifest: { ...probe.manifest, ...over },
  instance: { slug, generation: 1, service: 'probe', image: probeRef, config: { ports: {}, secrets: { PROBE_SECRET: 's'.repeat(24) }, env: { PROBE_GREETING: `hello-${slug}` } } },
  serverName,
});
const running = async (w: SwarmInstanceWanted) => waitFor(`${w.instance.slug} running`, async () => {
  const st = await swarmInstanceState(manager, { manifest: w.manifest, serverName: w.serverName, slug: w.instance.slug });
  return st.status === 'running' ? st : undefined;
}, 90_000, 500);
const taskOf = async (slug: string): Promise<TaskView> => (await serviceTasks(manager, serviceName(swarm.prefix, slug))).find((x) => x.state === 'running')!;
const nodeHolding = (hostname: string) => swarm.nodes.find((n) => n.name === hostname)!;

t.test('a single server without Swarm stays as it is: `cattery servers list` reads, changes nothing', async (t) => {
  // The test machine's own engine, which is no swarm node: asked, never changed.
  const plain = testConfig(t);
  const list = await cliWith(plain)('list');
  t.equal(list.code, 0);
  t.match(list.out, /^local {2}unix:\/\/\/var\/run\/docker\.sock {2}site local {2}no swarm$/m);
  await t.rejects(cliWith(plain)('join', 'n9', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip), { code: 'CATTERY_ERR_CONFLICT' }, 'joining needs a swarm first');
  t.match((await cliWith(plain)('list')).out, /no swarm$/, 'and nothing was added');
  t.notMatch((await cliWith(plain)('list')).out, /n9/);
});

t.test('cattery servers: swarm-init on the first server, join tokens, join and label the others, node state', async (t) => {
  const init = await cli('swarm-init', '--advertise-addr', n1.ip, '--no-new-privileges', '--disk', 'ssd', '--heartbeat-s', '1');
  t.equal(init.code, 0, init.out);
  t.equal((await cli('swarm-init', '--advertise-addr', n1.ip)).code, 0, 'a second init is a no-op');
  const tokens = await cli('join-tokens');
  t.match(tokens.out, /^worker {2}SWMTKN-1-/m);
  t.match(tokens.out, new RegExp(`${n1.ip.replace(/\./g, '\\.')}:2377`));
  for (const [name, node, site, disk] of [['n2', n2, 'mairie', 'hdd'], ['n3', n3, 'ecole', 'ssd']] as const) {
    const j = await cli('join', name, '--endpoint', node.endpoint, '--advertise-addr', node.ip, '--site', site, '--disk', disk, '--no-new-privileges', '--insecure-plain-tcp');
    t.equal(j.code, 0, j.out);
  }
  t.equal((await cli('join', 'n2', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip, '--insecure-plain-tcp')).code, 0, 'joining again is a no-op');
  t.equal((await cli('label', 'n2', '--disk', 'nvme')).code, 0);
  // The manager keeps to managing: instances go to the workers (and a worker is what the tests kill).
  const me = await manager.docker.getNode((await nodeByName(n1.name)).id).inspect() as { Version: { Index: number }; Spec: Record<string, unknown> };
  await manager.docker.getNode((await nodeByName(n1.name)).id).update({ version: me.Version.Index, ...me.Spec, Availability: 'drain' } as object);
  const nodes = await listNodes(manager);
  t.same(nodes.map((n) => [n.hostname, n.server, n.site, n.disk, n.noNewPrivileges, n.state]), [
    [n1.name, 'local', 'local', 'ssd', true, 'ready'],
    [n2.name, 'n2', 'mairie', 'nvme', true, 'ready'],
    [n3.name, 'n3', 'ecole', 'ssd', true, 'ready'],
  ]);
  const list = await cli('list');
  t.match(list.out, /^local .* node \S+-n1 manager \(leader\) ready\/drain site=local disk=ssd no-new-privileges=true/m);
  t.match(list.out, /^n3 .* node \S+-n3 worker ready\/active site=ecole disk=ssd/m);
});

t.test('images are carried to every node through the API', async (t) => {
  for (const n of swarm.nodes) t.equal(await ensureImageOn(swarm.host, n.engine, probeRef), 'copied', n.name);
  t.equal(await ensureImageOn(swarm.host, n2.engine, probeRef), 'present');
});

const isoA = wanted('iso-a', 'n2');
const isoB = wanted('iso-b', 'n3', { network: { encrypted: true } });
// On b's node, to check the same across two overlays of one node (where Docker's docker_gwbridge joins every task).
const isoC = wanted('iso-c', 'n3');

t.test('placement by label; the hardening read back from the task\'s container on its node', async (t) => {
  t.equal((await ensureSwarmInstance(manager, isoA)).how, 'created');
  t.equal((await ensureSwarmInstance(manager, isoB)).how, 'created');
  await ensureSwarmInstance(manager, isoC);
  t.equal((await ensureSwarmInstance(manager, isoA)).how, 'unchanged', 'idempotent');
  await t.rejects(ensureImageOn(swarm.host, n2.engine, `cattery/probe:${'0'.repeat(12)}`), { code: 'CATTERY_ERR_IMAGE_MISSING' }, 'an image nobody built is said so');
  const [a, b] = await Promise.all([running(isoA), running(isoB)]);
  t.equal(a.node?.server, 'n2');
  t.equal(b.node?.server, 'n3');
  t.equal(a.pinnedTo, 'n2');
  const ta = await taskOf('iso-a');
  const c = await n2.docker.getContainer(ta.containerId!).inspect();
  const h = c.HostConfig;
  t.same(h.CapDrop, ['ALL']);
  t.same(h.CapAdd ?? [], []);
  t.equal(h.Privileged, false);
  t.equal(h.ReadonlyRootfs, true);
  t.equal(h.Memory, 32 * 1024 * 1024);
  t.equal(h.NanoCpus, 0.25e9);
  t.equal(h.PidsLimit, 32);
  t.notOk(h.PidMode === 'host' || h.IpcMode === 'host' || h.UTSMode === 'host' || h.UsernsMode === 'host' || h.NetworkMode === 'host', 'no host namespace');
  t.same(h.Binds ?? [], [], 'no bind mount');
  t.same((c.Mounts ?? []).map((m) => m.Type).sort(), ['tmpfs', 'volume']);
  t.equal(c.Config.User, '65534:65534');
  t.equal(c.Config.Labels['cattery.hoster'], swarm.prefix);
  t.equal(c.Config.Labels['cattery.instance'], 'iso-a');
  t.same(Object.keys(c.NetworkSettings.Networks).filter((n) => n !== 'ingress'), [`${swarm.prefix}-iso-a`], 'its own overlay only');
  const vol = await n2.docker.getVolume(`${swarm.prefix}-iso-a-data`).inspect();
  t.equal((vol.Labels as Record<string, string>)['cattery.hoster'], swarm.prefix, 'its volume, made on its node, is labelled');
  // What the kernel says, inside: no-new-privileges set (the node's dockerd gives it), no capability, / read-only,
  // the tmpfs nosuid and nodev and of its size.
  const status = await execOn(n2.docker, ta.containerId!, ['/bin/cat', '/proc/self/status']);
  t.match(status.out, /^NoNewPrivs:\s+1$/m);
  t.match(status.out, /^CapEff:\s+0+$/m);
  t.match(status.out, /^CapBnd:\s+0+$/m);
  const mounts = (await execOn(n2.docker, ta.containerId!, ['/bin/cat', '/proc/mounts'])).out.split('\n');
  t.ok(mounts.some((l) => / \/ overlay ro[,\s]/.test(l)), 'root read-only');
  const tmp = mounts.find((l) => l.split(' ')[1] === '/tmp') ?? '';
  t.match(tmp, /nosuid/);
  t.match(tmp, /nodev/);
  t.match(tmp, /size=4096k/);
  const nets = await manager.docker.listNetworks({ filters: { label: [`cattery.hoster=${swarm.prefix}`] } });
  const netA = nets.find((n) => n.Name === `${swarm.prefix}-iso-a`)!;
  const netB = nets.find((n) => n.Name === `${swarm.prefix}-iso-b`)!;
  t.equal(netA.Driver, 'overlay');
  t.equal(netA.Attachable, true, 'attachable (a web instance): the front door joins it');
  t.notOk(netA.Options?.encrypted, 'a plain overlay when not asked');
  t.ok(netB.Options && 'encrypted' in netB.Options, 'encrypted where the manifest asks');
  const svc = await manager.docker.getService(serviceName(swarm.prefix, 'iso-a')).inspect() as { Endpoint?: { Ports?: unknown[] } };
  t.same(svc.Endpoint?.Ports ?? [], [], 'nothing published');
  // A new generation updates the service in place: Swarm replaces the task, on the same pinned node, same volume.
  const gen2 = { ...isoA, instance: { ...isoA.instance, generation: 2 } };
  t.equal((await ensureSwarmInstance(manager, gen2)).how, 'updated');
  const t2 = await waitFor('the generation 2 task', async () => {
    const x = await taskOf('iso-a').catch(() => undefined);
    if (!x || x.id === ta.id) return undefined;
    const ci = await n2.docker.getContainer(x.containerId!).inspect();
    return ci.Config.Labels['cattery.generation'] === '2' ? x : undefined;
  }, 60_000, 500);
  t.equal(t2.nodeId, (await nodeByName(n2.name)).id, 'on its pinned node still');
});

t.test('isolation: instances cannot reach each other, on different nodes or on one', async (t) => {
  const [ta, tb] = [await taskOf('iso-a'), await taskOf('iso-b')];
  const b = await n3.docker.getContainer(tb.containerId!).inspect();
  const ipB = b.NetworkSettings.Networks[`${swarm.prefix}-iso-b`]!.IPAddress;
  const svcB = (await manager.docker.getService(serviceName(swarm.prefix, 'iso-b')).inspect()) as { Spec: { EndpointSpec?: { Mode?: string } }; Endpoint?: { VirtualIPs?: unknown[] } };
  t.equal(svcB.Spec.EndpointSpec?.Mode, 'dnsrr', 'its name resolves to its task (no virtual IP: IPVS is not needed)');
  t.same(svcB.Endpoint?.VirtualIPs ?? [], []);
  t.ok(ipB, `b has ${ipB}`);
  const vip: string[] = [];
  const get = (ip: string) => ['/bin/timeout', '8', '/bin/sh', '-c', `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 8080`];
  const self = await execOn(n3.docker, tb.containerId!, get(ipB));
  t.equal(self.code, 0, 'b answers on its own network (the probe itself works)');
  t.match(self.out, /hello-iso-b/);
  t.match((await execOn(n3.docker, tb.containerId!, get(serviceName(swarm.prefix, 'iso-b')))).out, /hello-iso-b/, 'and by its service\'s name there');
  const a = await n2.docker.getContainer(ta.containerId!).inspect();
  const selfA = await execOn(n2.docker, ta.containerId!, get(a.NetworkSettings.Networks[`${swarm.prefix}-iso-a`]!.IPAddress));
  t.match(selfA.out, /hello-iso-a/, 'a reaches its own address (its nc works)');
  // The answer decides, not nc's exit code: a's packets to an address it has no route for leave through the node's
  // gateway bridge to the test machine, whose egress may accept any connection (nc then exits 0 with nothing read).
  for (const ip of [ipB, ...vip]) {
    const cross = await execOn(n2.docker, ta.containerId!, get(ip));
    t.notMatch(cross.out, /hello-iso-b/, `a (on ${n2.name}) cannot reach b (on ${n3.name}) at ${ip} (exit ${cross.code})`);
  }
  const byName = await execOn(n2.docker, ta.containerId!, get(serviceName(swarm.prefix, 'iso-b')));
  t.notMatch(byName.out, /hello-iso-b/, 'nor by its name');
  t.not(byName.code, 0, 'its name does not even resolve on a\'s network');
  // The same on one node: c shares b's node, not its network. b's address on the node's gateway bridge too.
  const tc = await waitFor('c running', () => taskOf('iso-c').catch(() => undefined), 90_000, 500);
  // Swarm attaches a task to its node's docker_gwbridge outside the container's own network list: the bridge says.
  const gwNet = await n3.docker.getNetwork('docker_gwbridge').inspect() as { Containers?: Record<string, { IPv4Address?: string }> };
  const gw = gwNet.Containers?.[b.Id]?.IPv4Address?.split('/')[0];
  for (const ip of [ipB, ...vip, ...(gw ? [gw] : [])]) {
    const near = await execOn(n3.docker, tc.containerId!, get(ip));
    t.notMatch(near.out, /hello-iso-b/, `c (on ${n3.name} too) cannot reach b at ${ip} (exit ${near.code})`);
  }
  t.ok(gw, 'b has an address on the gateway bridge, tried above');
});

t.test('the Swarm InstanceRuntime: create scaled to zero, start, healthy, restart, stop, adopt, remove', async (t) => {
  const rt = swarmRuntime(manager, 'n3');
  const w = wanted('unit', 'n3');
  const unitWanted = { manifest: w.manifest, instance: w.instance, server: { publishAddress: '127.0.0.1' } };
  const ours = (labels: Record<string, string>) => (labels['cattery.hoster'] !== swarm.prefix ? 'foreign' : labels['cattery.generation'] === '1' ? 'adopt' : 'replace') as 'adopt';
  const made = await rt.createOrAdopt(unitWanted, ours);
  t.equal(made.how, 'created');
  const name = serviceName(swarm.prefix, 'unit');
  t.equal((await rt.state(made.id, name)).running, false, 'created, not started');
  t.same(await rt.createOrAdopt(unitWanted, ours), { id: made.id, how: 'adopted' }, 'a second create adopts');
  await rt.ensureStarted(made.id, name);
  let last: unknown;
  const up = await waitFor('healthy', async () => { const st = await rt.state(made.id, name); last = st; return st.running && st.health === 'healthy' ? st : undefined; }, 60_000, 500)
    .catch(async (err) => { t.comment(JSON.stringify({ last, tasks: await serviceTasks(manager, name), svc: (await manager.docker.getService(name).inspect()).Spec.Mode })); throw err; });
  t.equal(up.health, 'healthy');
  const first = (await taskOf('unit')).id;
  await rt.restart(made.id, name);
  await waitFor('a new task after the restart', async () => { const x = await taskOf('unit').catch(() => undefined); return x && x.id !== first; }, 60_000, 500);
  t.equal((await taskOf('unit')).nodeId, (await nodeByName(n3.name)).id, 'restarted on its pinned node');
  await rt.ensureStopped(made.id, name);
  await waitFor('stopped', async () => !(await rt.state(made.id, name)).running, 30_000, 500);
  t.equal((await swarmInstanceState(manager, { manifest: w.manifest, serverName: 'n3', slug: 'unit' })).status, 'stopped');
  await rt.ensureRemoved(made.id, name);
  t.equal(await manager.docker.getService(name).inspect().then(() => true, () => false), false, 'service gone');
  t.equal(await manager.docker.getNetwork(name).inspect().then(() => true, () => false), false, 'its overlay gone');
  t.equal((await swarmInstanceState(manager, { manifest: w.manifest, serverName: 'n3', slug: 'unit' })).status, 'missing');
  await rt.ensureRemoved(made.id, name);
});

t.test('a node that does not declare no-new-privileges never receives an instance', async (t) => {
  t.equal((await cli('label', 'n3', '--without-no-new-privileges')).code, 0);
  t.equal((await nodeByName(n3.name)).noNewPrivileges, false);
  const w = wanted('nnp', 'n3');
  await ensureSwarmInstance(manager, w);
  const st = await waitFor('pending', async () => {
    const x = await swarmInstanceState(manager, { manifest: w.manifest, serverName: 'n3', slug: 'nnp' });
    // First "pending task scheduling", then the scheduler's reason.
    return x.status === 'pending' && /constraint|suitable node/i.test(x.message) ? x : undefined;
  }, 30_000, 500);
  t.comment(`Swarm says: ${st.message}`);
  await new Promise((r) => setTimeout(r, 2_000));
  t.equal((await swarmInstanceState(manager, { manifest: w.manifest, serverName: 'n3', slug: 'nnp' })).status, 'pending', 'still waiting, nothing ran');
  t.equal((await cli('label', 'n3', '--no-new-privileges')).code, 0);
  t.equal((await running(w)).node?.server, 'n3', 'placed once the node says it');
  await removeSwarmInstance(manager, 'nnp');
});

t.test('a node dies: the stateful instance pinned there stays down and is reported, the stateless one moves', async (t) => {
  await removeSwarmInstance(manager, 'iso-a');
  await removeSwarmInstance(manager, 'iso-b');
  await removeSwarmInstance(manager, 'iso-c');
  const roam = wanted('roam', 'n2', { volumes: [] });
  await ensureSwarmInstance(manager, roam);
  const r0 = await running(roam);
  t.equal(r0.pinnedTo, undefined, 'a stateless instance is not pinned');
  const victimServer = r0.node!.server!;
  const otherServer = victimServer === 'n2' ? 'n3' : 'n2';
  const keep = wanted('keep', victimServer);
  await ensureSwarmInstance(manager, keep);
  const k0 = await running(keep);
  t.equal(k0.node?.server, victimServer);
  const victim = nodeHolding(k0.node!.hostname);
  const victimId = k0.node!.id;

  const killedAt = Date.now();
  await swarm.kill(victim);
  const moved = await waitFor('the stateless instance rescheduled', async () => {
    const st = await swarmInstanceState(manager, { manifest: roam.manifest, serverName: roam.serverName, slug: 'roam' });
    return st.status === 'running' && st.node?.server === otherServer ? st : undefined;
  }, 90_000, 500);
  t.comment(`rescheduled ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`);
  t.equal(moved.node?.server, otherServer);
  const down = await waitFor('the stateful instance reported down', async () => {
    const st = await swarmInstanceState(manager, { manifest: keep.manifest, serverName: keep.serverName, slug: 'keep' });
    return st.status === 'down' ? st : undefined;
  }, 60_000, 500);
  t.equal(down.pinnedTo, victimServer);
  t.equal(down.node?.state, 'down');
  t.match(down.message, /restore its latest backup on another server/);
  // Longer than the stateless one took to move: still down, and no task of it was ever placed elsewhere.
  await new Promise((r) => setTimeout(r, 5_000));
  const again = await swarmInstanceState(manager, { manifest: keep.manifest, serverName: keep.serverName, slug: 'keep' });
  t.equal(again.status, 'down');
  const tasks = await serviceTasks(manager, serviceName(swarm.prefix, 'keep'));
  t.ok(tasks.length > 0 && tasks.every((x) => !x.nodeId || x.nodeId === victimId), `every task of it on ${victim.name} or unplaced (${tasks.map((x) => `${x.nodeId.slice(0, 6)}:${x.state}`).join(' ')})`);
  t.notOk(tasks.some((x) => x.state === 'running' && x.nodeId !== victimId), 'never running elsewhere');
  const list = await cli('list');
  t.match(list.out, new RegExp(`^${victimServer} .* worker down/active`, 'm'), 'cattery servers list shows the node down');
});

t.teardown(() => { t.comment(`swarm test file: ${((Date.now() - started) / 1000).toFixed(1)} s`); });
