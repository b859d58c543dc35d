// `cattery agent` deployed for real as one Swarm service per node on a two-node swarm of the tests (swarm-fixture.ts):
// its image built here and carried to each node, one enrolment token per node given as a Swarm secret, one task per
// node; each enrols with cattery (listening, behind TLS as behind the front door in production, on the test
// network's gateway address: the nodes' way to this host) and sends signed samples; each node's energy is conserved
// with a real instance of its own credited; a sample whose signature does not verify is refused; the agent's
// hardening is read back from its task's container on its node.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { deployAgents } from '../../src/agent/deploy.js';
import { agentServiceName } from '../../src/agent/service-spec.js';
import { listAgents } from '../../src/agent/enrolment.js';
import { serversCommand } from '../../src/cli/servers.js';
import { loadValidCatalog } from '../../src/catalog/load.js';
import type { Server } from '../../src/db/schema.js';
import { connectEngine, ensureImageOn, ensureServiceImage, listNodes, serviceTasks, type Engine } from '../../src/orchestrator/docker/index.js';
import { ensureSwarmInstance } from '../../src/orchestrator/swarm.js';
import { fleet, place, refusal } from '../../src/orchestrator/placement.js';
import { listServers } from '../../src/orchestrator/servers.js';
import { createRuntime } from '../../src/runtime.js';
import { TEST_CATALOG, testConfig, waitFor } from '../helpers.js';
import { execOn, startSwarmNodes, type SwarmNode } from '../orchestrator/swarm-fixture.js';

const started = Date.now();
const swarm = await startSwarmNodes(t, { count: 2 });
const [n1, n2] = swarm.nodes as [SwarmNode, SwarmNode];
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const manager: Engine = connectEngine(n1.endpoint, { hosterId: swarm.prefix, timeoutSeconds: 60, log });
const config = testConfig(t, { hosterId: swarm.prefix, dockerEndpoint: n1.endpoint, idlePolicy: 'equal' });
const rt = await createRuntime(config, log);
t.teardown(() => rt.close());
// Set up at the top level, where an assertion would end tap's root test (and run its teardown) early: a failure throws.
const cli = async (...args: string[]) => {
  const lines: string[] = [];
  if (await serversCommand(args[0], args.slice(1), config, log, (l) => lines.push(l)) !== 0) throw new Error(`cattery servers ${args.join(' ')}: ${lines.join('\n')}`);
};
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;

// The swarm: n1 its manager (server `local`), n2 a worker (server `n2`).
await cli('swarm-init', '--advertise-addr', n1.ip, '--no-new-privileges', '--heartbeat-s', '1');
await cli('join', 'n2', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip, '--insecure-plain-tcp', '--no-new-privileges');
const serverNamed = (name: string) => rt.db.$client.prepare('SELECT * FROM servers WHERE name = ?').get(name) as { id: number; name: string };
const serverOf = { [n1.name]: serverNamed('local'), [n2.name]: serverNamed('n2') };

// cattery where the nodes reach it: the gateway of the test's bridge (this host), over TLS with a certificate made
// for that address, trusted by the agents through a Swarm config. The TLS front keeps each sample body it forwards.
const net = Object.values((await swarm.host.docker.getContainer(n1.containerId).inspect()).NetworkSettings.Networks)[0]!;
const gw = net.Gateway;
if (!/^\d+\.\d+\.\d+\.\d+$/.test(gw)) throw new Error(`no gateway on the test network: ${gw}`);
const tls = fs.mkdtempSync(path.join(config.dataDir, 'tls-'));
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=cattery-test',
  '-addext', `subjectAltName=IP:${gw}`, '-keyout', path.join(tls, 'key.pem'), '-out', path.join(tls, 'cert.pem')], { stdio: 'ignore' });
await rt.app.listen({ host: '127.0.0.1', port: 0 });
const appPort = (rt.app.server.address() as { port: number }).port;
const sampleBodies: string[] = [];
const front = https.createServer({ key: fs.readFileSync(path.join(tls, 'key.pem')), cert: fs.readFileSync(path.join(tls, 'cert.pem')) }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (req.url === '/api/agent/samples') sampleBodies.push(body.toString());
    const up = http.request({ host: '127.0.0.1', port: appPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => { res.writeHead(502); res.end(); });
    up.end(body);
  });
});
await new Promise<void>((resolve) => front.listen(0, gw, resolve));
t.teardown(() => new Promise<void>((resolve) => { front.closeAllConnections(); front.close(() => resolve()); }));
const managerUrl = `https://${gw}:${(front.address() as { port: number }).port}`;

t.comment(`swarm and TLS front ready at ${elapsed()}`);

/** Every node's agent tasks (one service per node, agent/service-spec.ts). */
const agentTasks = async () => (await Promise.all((await listNodes(manager)).map((n) => serviceTasks(manager, agentServiceName(swarm.prefix, n.id)).catch(() => [])))).flat();
const engineOf = (s: Server) => connectEngine(s.dockerEndpoint, { hosterId: swarm.prefix, timeoutSeconds: 60, log });
const ca = fs.readFileSync(path.join(tls, 'cert.pem'), 'utf8');
const deploy = (progress?: (l: string) => void) => deployAgents({
  db: rt.db, manager, build: swarm.host, engineOf, hosterId: swarm.prefix, managerUrl, managerCa: ca, intervalSeconds: 1,
  workDir: `${config.dataDir}/build`, log, ...(progress ? { progress } : {}),
});
// The agents are deployed while the instances are made (most of the file's time is the image's way to the nodes):
// an agent lists the instance containers at each sample, and credits them from the first sample after their rows.
const comments: string[] = [];
const firstDeploy = deploy((l) => { if (!l.startsWith('[agent]')) comments.push(`${elapsed()}: ${l}`); });
firstDeploy.catch(() => undefined);

// A real instance on each node, known to cattery (its row), so that the agent's sample credits it.
const catalog = loadValidCatalog(TEST_CATALOG);
const probe = catalog.services.get('probe')!;
const probeRef = await ensureServiceImage(swarm.host, probe, { workDir: `${config.dataDir}/build`, progress: () => undefined });
for (const n of swarm.nodes) await ensureImageOn(swarm.host, n.engine, probeRef);
const instances = [{ slug: 'on-one', server: 'local' }, { slug: 'on-two', server: 'n2' }];
for (const i of instances) {
  await ensureSwarmInstance(manager, {
    manifest: probe.manifest, serverName: i.server,
    instance: { slug: i.slug, generation: 1, service: 'probe', image: probeRef, config: { ports: {}, secrets: { PROBE_SECRET: 's'.repeat(24) }, env: {} } },
  });
  rt.db.$client.prepare("INSERT INTO instances (slug, service, server_id, image, config, observed) VALUES (?, 'probe', ?, ?, '{\"ports\":{},\"secrets\":{},\"env\":{}}', 'running')")
    .run(i.slug, serverNamed(i.server).id, probeRef);
}
t.comment(`instances made at ${elapsed()}`);

t.test('deployed as one service per node, pinned by node id and holding that node\'s token only, each enrolled', async (t) => {
  const d = await firstDeploy;
  for (const c of comments) t.comment(c);
  t.comment(`agent image ${d.image} built and carried at ${elapsed()}`);
  t.same(Object.values(d.services), ['created', 'created']);
  t.same(d.nodes.map((n) => [n.hostname, n.server, n.agent]).sort(), [[n1.name, 'local', 'token issued'], [n2.name, 'n2', 'token issued']]);
  const nodeIds = new Map((await listNodes(manager)).map((n) => [n.id, n.hostname]));
  const tasks = await waitFor('an agent running on each node', async () => {
    const running = (await agentTasks()).filter((x) => x.state === 'running');
    return running.length === 2 ? running : undefined;
  }, 60_000, 500).catch(async (err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(await agentTasks())}`); });
  t.same(tasks.map((x) => nodeIds.get(x.nodeId)).sort(), [n1.name, n2.name], 'one task per node');
  // Each node's service names one secret, its own token, and no other node's.
  for (const [id, hostname] of nodeIds) {
    const svc = await manager.docker.getService(agentServiceName(swarm.prefix, id)).inspect() as { Spec: { TaskTemplate: { Placement: { Constraints: string[] }; ContainerSpec: { Secrets?: { SecretName: string }[] } } } };
    t.same(svc.Spec.TaskTemplate.Placement.Constraints, [`node.id==${id}`], `${hostname}: pinned to its node by id`);
    const secrets = svc.Spec.TaskTemplate.ContainerSpec.Secrets ?? [];
    t.equal(secrets.length, 1, `${hostname}: one secret`);
    t.ok(secrets[0]!.SecretName.includes(id), `${hostname}: its own token's (${secrets[0]!.SecretName})`);
  }
  await waitFor('both nodes enrolled', () => listAgents(rt.db).filter((a) => a.kid && (a.server === 'local' || a.server === 'n2')).length === 2, 60_000, 500);
  const agents = listAgents(rt.db);
  t.not(agents.find((a) => a.server === 'local')!.kid, agents.find((a) => a.server === 'n2')!.kid, 'each node its own key');
  t.ok(agents.every((a) => a.enrolmentOpenUntil === null), 'every token spent');
  const again = await deploy();
  t.same(Object.values(again.services), ['unchanged', 'unchanged'], 'deploying again changes nothing');
  t.same(again.nodes.map((n) => n.agent), ['enrolled', 'enrolled'], 'and issues no token');
});

t.test('samples from both nodes: energy conserved per node, each node\'s instance credited', async (t) => {
  const passesOf = (serverId: number) => rt.db.$client.prepare(`SELECT ts, SUM(CASE WHEN scope = 'server' THEN energy_j ELSE 0 END) server,
      SUM(CASE WHEN scope != 'server' THEN energy_j ELSE 0 END) parts, GROUP_CONCAT(CASE WHEN scope = 'instance' THEN slug END) slugs
    FROM meter_samples WHERE server_id = ? GROUP BY ts ORDER BY ts`).all(serverId) as { ts: string; server: number; parts: number; slugs: string | null }[];
  await waitFor('three samples recorded for each node', () => Object.values(serverOf).every((s) => passesOf(s.id).length >= 3), 60_000, 500);
  for (const [node, s] of Object.entries(serverOf)) {
    const passes = passesOf(s.id);
    for (const p of passes) t.ok(p.server > 0 && Math.abs(p.server - p.parts) < 1e-6 * p.server, `${node} ${p.ts}: ${p.server.toFixed(2)} J = idle + other + instances`);
    const mine = instances.find((i) => i.server === s.name)!.slug;
    t.ok(passes.some((p) => p.slugs?.split(',').includes(mine)), `${node}'s own instance ${mine} is credited`);
    t.notOk(passes.some((p) => p.slugs?.split(',').some((x) => x !== mine)), `and no instance of the other node`);
  }
  // The isolation check (agent/isolation.ts): each instance task's NoNewPrivs, read by the agent from the node's
  // /proc without privilege, signed into the samples; the manager records every instance task measured with it.
  const listed = sampleBodies.flatMap((b) => (JSON.parse(Buffer.from((JSON.parse(b) as { jws: string }).jws.split('.')[1]!, 'base64url').toString()) as { containers: { slug: string; noNewPrivs?: number }[] }).containers);
  for (const i of instances) t.ok(listed.some((c) => c.slug === i.slug && c.noNewPrivs === 1), `${i.slug}'s task is sent with NoNewPrivs 1`);
  t.notOk(listed.some((c) => c.noNewPrivs === 0), 'and no task without it');
  for (const s of Object.values(serverOf)) {
    const row = rt.db.$client.prepare('SELECT isolation FROM servers WHERE id = ?').get(s.id) as { isolation: string | null };
    t.match(JSON.parse(row.isolation ?? 'null'), { noNewPrivs: 'ok', missing: [] }, `${s.name}: recorded as measured`);
  }
});

t.test('a sample with a bad signature is refused; the same sample sent again is a replay', async (t) => {
  const body = sampleBodies.at(-1)!;
  t.ok(body, 'a sample the front forwarded');
  const jws = (JSON.parse(body) as { jws: string }).jws;
  const [h, p, s] = jws.split('.') as [string, string, string];
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as { seq: number; at: number };
  // A later sequence and time, so that only the signature is wrong: the payload no longer matches it.
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, seq: payload.seq + 1e6, at: Date.now() })).toString('base64url')}.${s}`;
  const post = (j: string) => rt.app.inject({ method: 'POST', url: '/api/agent/samples', payload: { jws: j } });
  const bad = await post(forged);
  t.equal(bad.statusCode, 401, bad.body);
  t.equal(bad.json().code, 'CATTERY_ERR_AGENT_SIGNATURE');
  const flipped = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
  t.equal((await post(flipped)).json().code, 'CATTERY_ERR_AGENT_SIGNATURE', 'a signature with one character changed');
  const replay = await post(jws);
  t.match(replay.json().code, /^CATTERY_ERR_AGENT_(REPLAY|CLOCK)$/, 'the genuine sample, sent again, is refused');
});

t.test('the agent\'s hardening, read back from its task container on each node', async (t) => {
  const nodeIds = new Map((await listNodes(manager)).map((n) => [n.id, n.hostname]));
  for (const task of (await agentTasks()).filter((x) => x.state === 'running')) {
    const node = swarm.nodes.find((n) => n.name === nodeIds.get(task.nodeId))!;
    const c = await node.docker.getContainer(task.containerId!).inspect();
    const h = c.HostConfig;
    t.equal(h.ReadonlyRootfs, true, `${node.name}: read-only root`);
    t.same(h.CapDrop, ['ALL'], `${node.name}: every capability dropped`);
    t.same(h.CapAdd ?? [], []);
    t.equal(h.Privileged, false);
    t.notOk(h.PidMode === 'host' || h.NetworkMode === 'host' || h.IpcMode === 'host', 'no host namespace');
    const binds = (c.Mounts ?? []).filter((m) => m.Type === 'bind');
    t.same(binds.map((m) => [m.Source, m.RW]).sort(), [['/proc', false], ['/sys', false], ['/var/run/docker.sock', false]], `${node.name}: its views of the node are read-only`);
    // The image has no shell and no cat: its own node reads for the test.
    const read = async (file: string) => (await execOn(node.docker, task.containerId!, ['/usr/local/bin/node', '-e', `process.stdout.write(require('fs').readFileSync(${JSON.stringify(file)}, 'utf8'))`])).out;
    const status = await read('/proc/1/status');
    t.match(status, /^CapEff:\s+0+$/m, 'no effective capability inside');
    t.match(status, /^NoNewPrivs:\s+1$/m, 'no new privileges (the node\'s dockerd gives it)');
    const mounts = (await read('/proc/self/mountinfo')).split('\n');
    const opts = (target: string) => mounts.map((l) => l.split(' ')).find((f) => f[4] === target)?.[5] ?? '';
    for (const target of ['/', '/host/sys', '/host/proc']) t.match(opts(target), /^ro\b/, `${node.name}: ${target} mounted ro`);
    // Engine 20.10 makes a read-only bind read-only at its top only: what lies below (the cgroup hierarchies under
    // /sys) is read back and reported (docs/swarm.md), not assumed.
    const below = mounts.map((l) => l.split(' ')).filter((f) => f[4]?.startsWith('/host/sys/fs/cgroup/'));
    t.comment(`${node.name}: cgroup mounts under /host/sys: ${below.map((f) => `${f[4]} ${f[5]}`).join('; ')}`);
    const tryWrite = `for (const f of ['/x', '/host/proc/sys/kernel/hostname', '/host/sys/kernel/uevent_helper', '/var/run/docker.sock.x']) { try { require('fs').writeFileSync(f, 'x'); console.log(f, 'written'); } catch (e) { console.log(f, e.code); } }`;
    const wrote = (await execOn(node.docker, task.containerId!, ['/usr/local/bin/node', '-e', tryWrite])).out;
    t.notMatch(wrote, /written/, `${node.name}: the root, /host/proc and /host/sys are not writable: ${wrote.replace(/\n/g, ' ')}`);
    const bins = (await execOn(node.docker, task.containerId!, ['/usr/local/bin/node', '-e', `console.log(['/bin/sh', '/bin/busybox', '/usr/bin/apt'].filter((f) => require('fs').existsSync(f)).join(','))`])).out.trim();
    t.equal(bins, '', 'no shell, no package manager in the image');
  }
  t.comment(`done at ${elapsed()}`);
});

t.test('a task without no-new-privileges: its server fails the check, its node loses the label, placement keeps away', async (t) => {
  // A container of an instance cattery knows, made on n2's engine with no-new-privileges turned off for it alone: what
  // the agent sees on a node whose dockerd does not give it.
  const n2Id = serverNamed('n2').id;
  rt.db.$client.prepare("INSERT INTO instances (slug, service, server_id, image, config, observed) VALUES ('rogue', 'probe', ?, ?, '{\"ports\":{},\"secrets\":{},\"env\":{}}', 'running')")
    .run(n2Id, probeRef);
  const rogue = await n2.docker.createContainer({
    name: `${swarm.prefix}-rogue`, Image: probeRef, Cmd: ['/bin/sh', '-c', 'sleep 300'],
    Labels: { 'cattery.hoster': swarm.prefix, 'cattery.instance': 'rogue', 'cattery.service': 'probe' },
    HostConfig: { SecurityOpt: ['no-new-privileges=false'] },
  });
  await rogue.start();
  t.match((await execOn(n2.docker, rogue.id, ['cat', '/proc/self/status'])).out, /^NoNewPrivs:\s+0$/m, 'it runs without no-new-privileges');
  const isolationOf = (id: number) => JSON.parse((rt.db.$client.prepare('SELECT isolation FROM servers WHERE id = ?').get(id) as { isolation: string | null }).isolation ?? 'null') as { noNewPrivs: string; missing: string[] } | null;
  const seen = await waitFor('n2 failed', () => (isolationOf(n2Id)?.noNewPrivs === 'failed' ? isolationOf(n2Id) : undefined), 30_000, 250);
  t.same(seen!.missing, ['rogue'], 'the instance concerned is named');
  t.equal(isolationOf(serverNamed('local').id)?.noNewPrivs, 'ok', 'the other server still passes');
  await waitFor('n2\'s label withdrawn', async () => (await listNodes(manager)).find((n) => n.server === 'n2')?.noNewPrivileges === false, 30_000, 250);
  t.pass('the node\'s cattery.no-new-privileges label is withdrawn: Swarm places no instance there any more');
  const loads = await fleet({ db: rt.db, catalog: rt.catalog, engineFor: rt.reconciler.engineFor, servers: () => listServers(rt.db) });
  t.match(loads.find((l) => l.name === 'n2')?.isolation ?? '', /no-new-privileges \(rogue\)/, 'placement refuses n2');
  // n2 refused for its isolation whatever its room; `local` may be refused for CPU on a loaded test machine (its
  // busy cores are measured): placement then refuses the whole fleet rather than choose n2.
  const demand = { busyCores: 0.01, memoryMb: 16 };
  t.equal(refusal(loads.find((l) => l.name === 'n2')!, demand), 'isolation');
  try {
    const chosen = place(loads, demand);
    t.equal(chosen.server.name, 'local', 'placement chooses the other server');
    t.equal(chosen.candidates.find((c) => c.name === 'n2')?.refused, 'isolation');
  } catch (err) {
    t.match(err, { code: 'CATTERY_ERR_CAPACITY', message: /n2: isolation/ }, 'placement refuses the fleet rather than choose n2');
  }
  const lines: string[] = [];
  await serversCommand('list', [], config, log, (l) => lines.push(l));
  t.match(lines.join('\n'), /^n2 .* measured-no-new-privileges=FAILED\(rogue\) guard=not-deployed$/m, '`cattery servers list` says it');
  t.match(lines.join('\n'), /^local .* measured-no-new-privileges=ok guard=not-deployed$/m);
});
