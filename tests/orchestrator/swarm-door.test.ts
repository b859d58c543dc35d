// The front door on a real two-node Docker Swarm (tests/orchestrator/swarm-fixture.ts): one door for the whole swarm,
// a plain container on the manager (where cattery runs: its engine is reached by a unix socket, and cattery's data
// folder is the manager's), joined to the overlay of each web instance whatever node runs it. A resident's request
// reaches an instance on the worker through it over HTTPS, the certificate issued by a real ACME CA and verified
// against its root; the door's networks are exactly the served instances' overlays, left when an instance goes.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { ensureSwarmInstance, removeSwarmInstance } from '../../src/orchestrator/swarm.js';
import { ensureImageOn, ingressNames, instanceLabels, listNodes, networkName, serviceImageRef, serviceName, serviceTasks, systemImage } from '../../src/orchestrator/docker/index.js';
import { ingressSubnet } from '../../src/orchestrator/subnets.js';
import { asOperator, quickHealthChecks, removeHosterObjects, testConfig, waitFor } from '../helpers.js';
import { serversCli, startSwarmNodes, type SwarmNode } from './swarm-fixture.js';
// @ts-expect-error: plain JavaScript shared with the benchmark.
import * as acme from '../../bench/lib/acme-ca.mjs';

const DOMAIN = 'asso.test';
const started = Date.now();
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const config0 = testConfig(t, {});
const dataDir = config0.dataDir;
// The manager's API socket, in a folder of cattery's host that the node binds at the same path.
const sockDir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'cattery-mgr-'));
t.teardown(() => fs.rmSync(sockDir, { recursive: true, force: true }));
const swarm = await startSwarmNodes(t, {
  count: 2,
  binds: (i) => (i === 0 ? [dataDir, sockDir] : []),
  socket: (i) => (i === 0 ? path.join(sockDir, 'docker.sock') : undefined),
});
const [n1, n2] = swarm.nodes as [SwarmNode, SwarmNode];
const managerEndpoint = `unix://${path.join(sockDir, 'docker.sock')}`;
await waitFor('the manager\'s socket', () => fs.existsSync(path.join(sockDir, 'docker.sock')), 30_000, 100);
const ingressRef = serviceImageRef(systemImage('ingress'));
await ensureImageOn(swarm.host, n1.engine, ingressRef);

// The association's ACME CA, on the manager's engine beside the door (bench/lib/acme-ca.mjs).
const acmeDir = path.join(dataDir, 'acme-ca');
fs.mkdirSync(acmeDir, { mode: 0o755 });
const door = ingressSubnet(config0.subnetPool).split('/')[0]!.split('.').map(Number);
const below = ((door[0]! << 24 | door[1]! << 16 | door[2]! << 8 | door[3]!) >>> 0) - 16;
const caSubnet = `${below >>> 24}.${(below >>> 16) & 255}.${(below >>> 8) & 255}.${below & 255}/28`;
const ca = await acme.startAcmeCa(n1.docker, { hosterId: swarm.prefix, image: ingressRef, dir: acmeDir, subnet: caSubnet }) as { id: string; rootPem: string; rootFile: string; remove: () => Promise<void> };
t.teardown(() => ca.remove());

const config = {
  ...config0, dockerEndpoint: managerEndpoint, domains: [DOMAIN], publicUrl: `https://cattery.${DOMAIN}`,
  ingress: { ...config0.ingress, enabled: true, bindAddress: '0.0.0.0', httpPort: 0, httpsPort: 0, acmeDirectory: acme.ACME_DIRECTORY as string, acmeRootFile: ca.rootFile, hstsSeconds: 0 },
};
const hoster = config.hosterId;
const cli = serversCli(config, log);
await cli('swarm-init', '--advertise-addr', n1.ip, '--no-new-privileges', '--heartbeat-s', '1');
await cli('join', 'n2', '--endpoint', n2.endpoint, '--advertise-addr', n2.ip, '--insecure-plain-tcp', '--no-new-privileges');

const rt = await createRuntime(config, pino({ level: config.logLevel }), { maxBackoffSeconds: 2 });
quickHealthChecks(rt.catalog);
asOperator(rt.app);
t.teardown(async () => {
  await rt.close();
  await removeHosterObjects(hoster);
  t.comment(`swarm door test file: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
// The probe's image, built on the test machine's engine (cached), given to the manager: where cattery builds.
await ensureImageOn(swarm.host, n1.engine, serviceImageRef(rt.catalog.services.get('probe')!));
rt.start(config.reconcileIntervalSeconds);
t.comment(`swarm and cattery up in ${((Date.now() - started) / 1000).toFixed(1)} s`);

const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => rt.app.inject({ method, url, ...(payload ? { payload } : {}) });

/** GET https://<host>/ at the manager's address and the door's port, the certificate verified against the CA's root. */
function get(host: string, port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: n1.ip, port, servername: host, ca: ca.rootPem, path: '/', headers: { host }, timeout: 10_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The networks the door's container is on, besides its own. */
async function doorNetworks(): Promise<string[]> {
  const info = await n1.docker.getContainer(ingressNames(hoster).container).inspect();
  return Object.keys(info.NetworkSettings.Networks).filter((n) => n !== ingressNames(hoster).network).sort();
}

/** The door's and the CA's last log lines, said when a request through the door does not come. */
async function logsOf(): Promise<string> {
  const tail = async (id: string) => {
    const buf = await n1.docker.getContainer(id).logs({ stdout: true, stderr: true, tail: 30 }).catch((e: Error) => Buffer.from(e.message));
    return Buffer.from(buf as unknown as Buffer).toString().replace(/[\x00-\x08]/g, '');
  };
  const caLog = (await tail(ca.id)).split('\n').flatMap((l) => [...l.matchAll(/detail[^,]*/g)].map((m) => m[0])).slice(-6);
  return `door:\n${(await tail(ingressNames(hoster).container)).split('\n').slice(-8).join('\n')}\nca:\n${caLog.join('\n')}`;
}

async function through(slug: string, port: number): Promise<{ status: number; body: string }> {
  try {
    return await waitFor(`${slug} over HTTPS`, () => get(`${slug}.${DOMAIN}`, port).then((a) => (a.status === 200 ? a : undefined), () => undefined), 120_000, 500);
  } catch (err) {
    t.comment(await logsOf());
    throw err;
  }
}

t.test('a web instance on the worker is served through the door on the manager, over its overlay', async (t) => {
  // The door first (each pass makes it, instances or not), the CA told where the names lead: a name's first
  // certificate order then succeeds (a failed one is retried only after a minute).
  const ports = await waitFor('the door\'s ports', () => { const p = rt.ingress.ports(1); return p.https ? p : undefined; }, 90_000, 250);
  await acme.wireAcmeCa(n1.docker, ca, hoster, [`probe.${DOMAIN}`, `other.${DOMAIN}`, `cattery.${DOMAIN}`, `autoconfig.${DOMAIN}`, `mta-sts.${DOMAIN}`]);
  for (const [slug, server] of [['probe', 'n2'], ['other', 'local']] as const) {
    const made = await api('POST', '/api/instances?wait=true', { service: 'probe', slug, server, env: { PROBE_GREETING: `bonjour-${slug}` } });
    t.equal(made.statusCode, 201, made.body);
    t.equal(made.json().observed, 'healthy', made.body);
    t.equal((await api('PUT', `/api/instances/${slug}/hostnames`, { hostnames: [`${slug}.${DOMAIN}`] })).statusCode, 200);
  }
  const task = (await serviceTasks(n1.engine, serviceName(hoster, 'probe'))).find((x) => x.state === 'running');
  const nodes = await listNodes(n1.engine);
  t.equal(nodes.find((n) => n.id === task?.nodeId)?.server, 'n2', 'the instance\'s task runs on the worker');

  t.same(rt.ingress.ports(2), ports, 'the worker\'s instances are served by the manager\'s door');
  await waitFor('the door on both overlays', async () => (await doorNetworks()).length === 2, 60_000, 250);
  t.same(await doorNetworks(), [networkName(hoster, 'other'), networkName(hoster, 'probe')].sort(), 'on exactly the served instances\' overlays');
  t.ok((await n1.docker.getContainer(ingressNames(hoster).container).inspect()).State.Running, 'the door is a container on the manager');

  for (const slug of ['probe', 'other']) {
    const page = await through(slug, ports.https);
    t.match(page.body, new RegExp(`bonjour-${slug}`), `${slug} answers through the door, its certificate verified`);
  }
  const doors = (await api('GET', '/api/ingress')).json() as { server: string; ports: { https: number }; hostnames: { hostname: string }[] }[];
  t.same(doors.map((d) => [d.server, d.ports.https, d.hostnames.map((h) => h.hostname).sort()]),
    [['local', ports.https, [`other.${DOMAIN}`, `probe.${DOMAIN}`]], ['n2', 0, []]], 'the API shows one door, the manager\'s, with every node\'s names');
});

t.test('an instance deleted: its name gone from the door, the door off its overlay', async (t) => {
  const ports = rt.ingress.ports(1);
  const del = await api('DELETE', '/api/instances/probe?wait=true');
  t.ok(del.statusCode < 300, del.body);
  await waitFor('the door off the deleted instance\'s overlay', async () => !(await doorNetworks()).includes(networkName(hoster, 'probe')), 60_000, 250);
  t.same(await doorNetworks(), [networkName(hoster, 'other')]);
  const gone = await get(`probe.${DOMAIN}`, ports.https).then((a) => a.status, () => 0);
  t.not(gone, 200, 'the name is no longer served');
  t.equal((await get(`other.${DOMAIN}`, ports.https)).status, 200, 'the other instance still is');
});

t.test('an overlay made before overlays were attachable is made again, with its service', async (t) => {
  // Under the nodes' own prefix, which the running cattery (another hoster id) never sweeps: an older cattery's
  // instance, its overlay not attachable.
  const probe = rt.catalog.services.get('probe')!;
  const w = {
    manifest: probe.manifest, serverName: 'n2',
    instance: { slug: 'legacy', generation: 1, service: 'probe', image: serviceImageRef(probe), config: { ports: {}, secrets: { PROBE_SECRET: 's'.repeat(24) }, env: { PROBE_GREETING: 'hello-legacy' } } },
  };
  const net = networkName(swarm.prefix, 'legacy');
  await n1.docker.createNetwork({ Name: net, Driver: 'overlay', Attachable: false, CheckDuplicate: true, Labels: instanceLabels(swarm.prefix, w.instance) });
  t.equal((await n1.docker.getNetwork(net).inspect()).Attachable, false);
  t.equal((await ensureSwarmInstance(n1.engine, w)).how, 'updated', 'made again');
  t.equal((await n1.docker.getNetwork(net).inspect()).Attachable, true, 'its overlay attachable now');
  t.equal((await ensureSwarmInstance(n1.engine, w)).how, 'unchanged', 'then left alone');
  await removeSwarmInstance(n1.engine, 'legacy');
});
