// The node guard (agent/guard.ts, deploy/guard) deployed for real as a global Swarm service on a two-node swarm of the
// tests (swarm-fixture.ts): before it, an instance's task reaches the other node's engine API (port 2375, which the
// fixture's nodes expose without TLS) and its own node's; with it, neither, while the instances still resolve and
// reach themselves on their own overlays. A rule deleted by hand, or the whole DOCKER-USER chain flushed, is back
// within a few seconds; dockerd re-arranging its chains (a network created) leaves the rules working. The guard's
// hardening is read back from its task's container.
import t from 'tap';
import { pino } from 'pino';
import { deployGuard, refreshGuardNodes } from '../../src/agent/guard.js';
import { loadValidCatalog } from '../../src/catalog/load.js';
import { serversCommand } from '../../src/cli/servers.js';
import type { Server } from '../../src/db/schema.js';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import {
  connectEngine, ensureImageOn, ensureServiceImage, guardRunningNodes, guardServiceName, listNodes, serviceName, serviceTasks, type Engine,
} from '../../src/orchestrator/docker/index.js';
import { fleet } from '../../src/orchestrator/placement.js';
import { listServers } from '../../src/orchestrator/servers.js';
import { ensureSwarmInstance, swarmInstanceState, type SwarmInstanceWanted } from '../../src/orchestrator/swarm.js';
import { TEST_CATALOG, testConfig, waitFor } from '../helpers.js';
import { execOn, startSwarmNodes, type SwarmNode } from '../orchestrator/swarm-fixture.js';

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
// Three nodes: n1 and n2 form the swarm; n3 joins it at the end, once the guard runs.
const swarm = await startSwarmNodes(t, { count: 3 });
const [n1, n2, n3] = swarm.nodes as [SwarmNode, SwarmNode, SwarmNode];
const members = [n1, n2];
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const manager: Engine = connectEngine(n1.endpoint, { hosterId: swarm.prefix, timeoutSeconds: 60, log });
const config = testConfig(t, { hosterId: swarm.prefix, dockerEndpoint: n1.endpoint });
const cli = async (...args: string[]) => {
  const lines: string[] = [];
  if (await serversCommand(args[0], args.slice(1), config, log, (l) => lines.push(l)) !== 0) throw new Error(`cattery servers ${args.join(' ')}: ${lines.join('\n')}`);
  return lines.join('\n');
};
await cli('swarm-init', '--advertise-addr', n1.ip, '--no-new-privileges', '--heartbeat-s', '1');
await cli('join', 'n2', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip, '--no-new-privileges', '--insecure-plain-tcp');
const db = openDb(config.dbFile);
applyMigrations(db);
t.teardown(() => db.$client.close());

// Two probes, one pinned to each node (the probe has a volume: stateful, pinned to its server).
const catalog = loadValidCatalog(TEST_CATALOG);
const probe = catalog.services.get('probe')!;
const probeRef = await ensureServiceImage(swarm.host, probe, { workDir: `${config.dataDir}/build`, progress: () => undefined });
await Promise.all(members.map((n) => ensureImageOn(swarm.host, n.engine, probeRef)));
const wanted = (slug: string, serverName: string): SwarmInstanceWanted => ({
  manifest: probe.manifest, serverName,
  instance: { slug, generation: 1, service: 'probe', image: probeRef, config: { ports: {}, secrets: { PROBE_SECRET: 's'.repeat(24) }, env: { PROBE_GREETING: `hello-${slug}` } } },
});
const a = wanted('ga', 'local');
const b = wanted('gb', 'n2');
await Promise.all([a, b].map((w) => ensureSwarmInstance(manager, w)));
const taskOn = async (w: SwarmInstanceWanted) => waitFor(`${w.instance.slug} running`, async () => {
  const st = await swarmInstanceState(manager, { manifest: w.manifest, serverName: w.serverName, slug: w.instance.slug });
  if (st.status !== 'running') return undefined;
  const task = (await serviceTasks(manager, serviceName(swarm.prefix, w.instance.slug))).find((x) => x.state === 'running' && x.containerId);
  const node = swarm.nodes.find((n) => n.name === st.node?.hostname);
  return task && node ? { node, id: task.containerId! } : undefined;
}, 90_000, 500);
const [ta, tb] = await Promise.all([taskOn(a), taskOn(b)]);
t.comment(`swarm and two probes ready at ${elapsed()}`);

/** What a task gets over HTTP from an address (busybox nc, 3 s at most): the body, or undefined when nothing answers.
 * (This busybox's wget crashes: its static libc's resolver; nc and nslookup do not use it.) The answer decides, not
 * nc's exit code. A name is first resolved by Docker's resolver inside the task. */
const fetchFrom = async (task: { node: SwarmNode; id: string }, url: string) => {
  const u = new URL(url);
  let host = u.hostname;
  if (!/^[\d.]+$/.test(host)) {
    const ns = await execOn(task.node.docker, task.id, ['/bin/timeout', '5', '/bin/nslookup', host, '127.0.0.11']);
    const after = ns.out.split(/^Name:/m)[1] ?? '';
    host = /^Address:\s*([\d.]+)\s*$/m.exec(after)?.[1] ?? '';
    if (!host) return undefined;
  }
  const r = await execOn(task.node.docker, task.id, ['/bin/timeout', '8', '/bin/sh', '-c', `printf 'GET ${u.pathname} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${u.port}`]);
  if (process.env.GUARD_DEBUG) t.comment(`${url} (${host}): ${r.code} ${JSON.stringify(r.out.slice(0, 200))}`);
  return r.out.split('\r\n\r\n')[1]?.trim() || undefined;
};
const engineApi = (n: SwarmNode) => `http://${n.ip}:2375/_ping`;
/** A command in a node's own namespace (the node container: its dockerd's iptables). Tests only. */
const onNode = async (n: SwarmNode, cmd: string[]) => execOn(swarm.host.docker, n.containerId, cmd);
const guardRules = async (n: SwarmNode) => {
  const [input, user] = await Promise.all([onNode(n, ['iptables', '-S', 'INPUT']), onNode(n, ['iptables', '-S', 'DOCKER-USER'])]);
  return `${input.out}${user.out}`.split('\n').filter((l) => l.includes('cattery-guard'));
};

t.test('before the guard: a task reaches the nodes\' engine APIs through its way out', async (t) => {
  t.equal(await fetchFrom(ta, engineApi(n2)), 'OK', 'a task on n1 reaches n2\'s dockerd');
  t.equal(await fetchFrom(ta, engineApi(n1)), 'OK', 'and its own node\'s');
  t.equal(await fetchFrom(tb, engineApi(n1)), 'OK', 'a task on n2 reaches n1\'s dockerd');
  // `tasks.<service name>`: the task's own address on its overlay, from Docker's resolver (an instance's service has
  // no virtual IP: DNS round robin, swarm-spec.ts).
  t.equal(await fetchFrom(ta, `http://tasks.${serviceName(swarm.prefix, 'ga')}:8080/index.html`), 'hello-ga', 'a resolves its name and reaches itself on its overlay');
  t.equal(await fetchFrom(tb, `http://tasks.${serviceName(swarm.prefix, 'gb')}:8080/index.html`), 'hello-gb', 'b too');
});

let guardImage = '';
t.test('`cattery guard deploy`: one healthy task per node; the rules in place; the tasks cut from the nodes, not from themselves', async (t) => {
  const t0 = Date.now();
  const engineOf = (s: Server) => connectEngine(s.dockerEndpoint, { hosterId: swarm.prefix, timeoutSeconds: 60, log });
  const deploy = () => deployGuard({ db, manager, build: swarm.host, engineOf, hosterId: swarm.prefix, workDir: `${config.dataDir}/build`, log, intervalSeconds: 1 });
  const d = await deploy();
  guardImage = d.image;
  t.equal(d.service, 'created');
  t.same(d.nodeAddrs, [n1.ip, n2.ip].sort(), 'the swarm\'s node addresses, from the swarm');
  const nodes = await listNodes(manager);
  await waitFor('a healthy guard task on each node', async () => (await guardRunningNodes(manager))?.size === 2, 90_000, 500);
  t.same([...(await guardRunningNodes(manager))!].sort(), nodes.map((n) => n.id).sort(), 'running (so healthy: its check passes) on both nodes');
  t.comment(`guard built, carried and healthy in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  t.equal((await deploy()).service, 'unchanged', 'a second deploy changes nothing');
  for (const n of members) {
    const rules = await guardRules(n);
    t.equal(rules.filter((l) => l.startsWith('-A INPUT -i docker_gwbridge')).length, 1, `${n.name}: one INPUT rule`);
    for (const other of members) t.equal(rules.filter((l) => l.startsWith(`-A DOCKER-USER -d ${other.ip}/32 -i docker_gwbridge`)).length, 1, `${n.name}: one DOCKER-USER rule for ${other.name}`);
  }
  t.equal(await fetchFrom(ta, engineApi(n2)), undefined, 'n1\'s task no longer reaches n2\'s dockerd');
  t.equal(await fetchFrom(ta, engineApi(n1)), undefined, 'nor its own node\'s');
  t.equal(await fetchFrom(tb, engineApi(n1)), undefined, 'n2\'s task no longer reaches n1\'s');
  t.equal(await fetchFrom(tb, engineApi(n2)), undefined, 'nor its own node\'s');
  // Docker's resolver inside the task (127.0.0.11) and the instance's own overlay still work.
  t.equal(await fetchFrom(ta, `http://tasks.${serviceName(swarm.prefix, 'ga')}:8080/index.html`), 'hello-ga', 'a resolves its own name and reaches itself on its overlay');
  t.equal(await fetchFrom(tb, `http://tasks.${serviceName(swarm.prefix, 'gb')}:8080/index.html`), 'hello-gb', 'b too');
  t.equal(await fetchFrom(ta, `http://tasks.${serviceName(swarm.prefix, 'gb')}:8080/index.html`), undefined, 'and the instances still do not reach each other');
});

t.test('the guard puts back a rule deleted by hand, a flushed DOCKER-USER, and survives dockerd re-arranging its chains', async (t) => {
  const input = ['INPUT', '-i', 'docker_gwbridge', '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED', '-m', 'comment', '--comment', 'cattery-guard', '-j', 'DROP'];
  t.equal((await onNode(n2, ['iptables', '-D', ...input])).code, 0, 'deleted by hand on n2');
  t.equal((await onNode(n2, ['iptables', '-F', 'DOCKER-USER'])).code, 0, 'DOCKER-USER flushed on n2');
  const t0 = Date.now();
  await waitFor('the rules back on n2', async () => (await guardRules(n2)).length === 3, 20_000, 250);
  t.comment(`back in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t.equal(await fetchFrom(tb, engineApi(n1)), undefined, 'n2\'s task is cut from n1 again');
  t.equal(await fetchFrom(tb, engineApi(n2)), undefined, 'and from n2');
  // Its own rules only: one bearing its comment for an address that is no node of the swarm is deleted; the same rule
  // without the comment (an administrator's) is left alone. (A documentation address: the rule is never used.)
  const stale = ['DOCKER-USER', '-d', '192.0.2.77/32', '-i', 'docker_gwbridge', '-j', 'DROP'];
  const tagged = [...stale.slice(0, 5), '-m', 'comment', '--comment', 'cattery-guard', '-j', 'DROP'];
  t.equal((await onNode(n2, ['iptables', '-I', ...stale])).code, 0);
  t.teardown(() => onNode(n2, ['iptables', '-D', ...stale]).then(() => undefined, () => undefined));
  t.equal((await onNode(n2, ['iptables', '-I', ...tagged])).code, 0);
  await waitFor('its stale rule deleted', async () => (await onNode(n2, ['iptables', '-C', ...tagged])).code !== 0, 20_000, 250);
  t.equal((await onNode(n2, ['iptables', '-C', ...stale])).code, 0, 'the administrator\'s rule is still there');
  t.equal((await guardRules(n2)).length, 3, 'and its own rules for the nodes too');
  t.equal(await refreshGuardNodes(manager), 'unchanged', 'the swarm\'s addresses did not change: the service is left as it is');
  // A bridge network created on n2: libnetwork re-inserts its jump to DOCKER-USER at the top of FORWARD.
  const net = await n2.docker.createNetwork({ Name: `${swarm.prefix}-rearrange`, Driver: 'bridge', Labels: { 'cattery.hoster': swarm.prefix } });
  t.teardown(() => net.remove().catch(() => undefined));
  const forward = await onNode(n2, ['iptables', '-S', 'FORWARD']);
  t.equal(forward.out.split('\n').find((l) => l.startsWith('-A FORWARD')), '-A FORWARD -j DOCKER-USER', 'DOCKER-USER is still FORWARD\'s first jump');
  t.equal((await guardRules(n2)).length, 3, 'the rules are still there');
  t.equal(await fetchFrom(tb, engineApi(n1)), undefined, 'n2\'s task is still cut from n1');
});

t.test('what the guard is given, read back from its task on each node', async (t) => {
  const tasks = (await serviceTasks(manager, guardServiceName(swarm.prefix))).filter((x) => x.state === 'running');
  t.equal(tasks.length, 2);
  const nodes = await listNodes(manager);
  for (const task of tasks) {
    const node = members.find((n) => n.name === nodes.find((x) => x.id === task.nodeId)?.hostname)!;
    const info = await node.docker.getContainer(task.containerId!).inspect();
    t.equal(info.Config.Image.split('@')[0], guardImage, `${node.name}: the guard's image`);
    t.equal(info.HostConfig.NetworkMode, 'host', 'the node\'s network namespace');
    t.ok(info.HostConfig.ReadonlyRootfs, 'read-only root');
    t.same(info.HostConfig.CapDrop, ['ALL']);
    t.same([...(info.HostConfig.CapAdd ?? [])].sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    t.equal(info.HostConfig.PidsLimit, 32);
    t.equal(info.HostConfig.Memory, 32 * 1024 * 1024);
    t.notOk(info.HostConfig.Privileged);
    t.same((info.Mounts ?? []).map((m) => `${m.Type}:${m.Destination}`), ['tmpfs:/run'], 'no bind, no volume: a tmpfs on /run only');
    t.notOk(JSON.stringify(info.HostConfig).includes('docker.sock'), 'no Docker socket');
    const status = await execOn(node.docker, task.containerId!, ['cat', '/proc/self/status']);
    const field = (k: string) => new RegExp(`^${k}:\\s+(\\S+)`, 'm').exec(status.out)?.[1];
    // CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13: 0x3000 and nothing else.
    t.equal(BigInt(`0x${field('CapEff')}`), 0x3000n, 'effective capabilities: NET_ADMIN and NET_RAW only');
    t.equal(BigInt(`0x${field('CapBnd')}`), 0x3000n, 'and no more in its bounding set');
    t.equal(field('NoNewPrivs'), '1');
    t.not((await execOn(node.docker, task.containerId!, ['touch', '/x'])).code, 0, 'writing to / fails');
    const logs = (await node.docker.getContainer(task.containerId!).logs({ stdout: true, stderr: true, tail: 50 })).toString();
    const backend = /\((nft|legacy)\) inserted/.exec(logs)?.[1];
    // The node's own `iptables` (the one its dockerd runs) says its backend: "(nf_tables)" or "(legacy)".
    const own = /\((nf_tables|legacy)\)/.exec((await onNode(node, ['iptables', '-V'])).out)?.[1];
    t.equal(backend === 'nft' ? 'nf_tables' : backend, own, `${node.name}: it wrote with the backend its dockerd uses (${backend ?? 'none said'})`);
  }
  t.comment(`file done at ${elapsed()}`);
});

t.test('a server joins: the guard is given its address, and placement refuses it until its own guard runs', async (t) => {
  const t0 = Date.now();
  const out = await cli('join', 'n3', '--endpoint', n3.endpoint, '--advertise-addr', n3.ip, '--no-new-privileges', '--insecure-plain-tcp');
  t.comment(`n3 joined in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t.match(out, /the node guard guards its address now; `cattery guard deploy` carries the guard's image to n3/);
  await waitFor('n1 and n2 cut from n3', async () => (await Promise.all(members.map(guardRules))).every((r) => r.some((l) => l.startsWith(`-A DOCKER-USER -d ${n3.ip}/32 `))), 30_000, 250);
  t.pass('the rule for n3 is on n1 and n2 (the service updated with the new address)');
  t.comment(`n3's rule on n1 and n2 ${((Date.now() - t0) / 1000).toFixed(1)} s after the join began`);
  const fleetDeps = {
    db, catalog, servers: () => listServers(db),
    engineFor: (s: Server) => connectEngine(s.dockerEndpoint, { hosterId: swarm.prefix, timeoutSeconds: 30, log }),
  };
  // n3 has no guard image yet: its guard task cannot start, and placement refuses it. (n1's and n2's tasks were just
  // replaced with the new address: each counts again once its first health check passed.)
  await waitFor('n1\'s and n2\'s new guard tasks healthy', async () => (await guardRunningNodes(manager))?.size === 2, 30_000, 250);
  const before = await fleet(fleetDeps);
  t.match(before.find((l) => l.name === 'n3')?.isolation ?? '', /node guard is not running/, 'n3 refused: no guard runs there');
  t.notOk(before.find((l) => l.name === 'local')?.isolation, 'n1 is not');
  t.match((await cli('list')), /^n3 .* guard=NOT-RUNNING$/m, '`cattery servers list` says so');
  const engineOf = (s: Server) => connectEngine(s.dockerEndpoint, { hosterId: swarm.prefix, timeoutSeconds: 60, log });
  t.equal((await deployGuard({ db, manager, build: swarm.host, engineOf, hosterId: swarm.prefix, workDir: `${config.dataDir}/build`, log, intervalSeconds: 1 })).service, 'unchanged',
    'deploying again carries the image; the service already had the address');
  await waitFor('a healthy guard on n3', async () => (await guardRunningNodes(manager))?.size === 3, 60_000, 500);
  t.comment(`a healthy guard on n3 ${((Date.now() - t0) / 1000).toFixed(1)} s after the join began`);
  t.equal((await guardRules(n3)).length, 4, 'n3 keeps its INPUT rule and one for each of the three nodes');
  t.notOk((await fleet(fleetDeps)).find((l) => l.name === 'n3')?.isolation, 'and placement takes n3 again');
  t.match((await cli('list')), /^n3 .* guard=running$/m);
  t.comment(`file done at ${elapsed()}`);
});
