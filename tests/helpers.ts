// Shared by the test files: a Config of its own per test (temporary data folder, a hoster id that no other test
// uses, so that parallel files never see each other's containers), a runtime built like `cattery serve` builds it,
// and a teardown that removes from the engine everything with that hoster's label.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { pino } from 'pino';
import type { Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../src/config.js';
import type { Catalog } from '../src/catalog/load.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { detachUnder } from '../src/orchestrator/sized-volumes.js';

export const ROOT = path.resolve(import.meta.dirname, '..');
/** The catalog every test runtime knows: the shipped services and the test fixtures (the probe). */
export const TEST_CATALOG = [path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')];
export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Tests speak as the operator (CATTERY_ADMIN_TOKEN) unless they say otherwise. */
export const OPERATOR_TOKEN = `operator-${crypto.randomBytes(12).toString('hex')}`;
export const OPERATOR = { authorization: `Bearer ${OPERATOR_TOKEN}` };

// A subnet pool (10.N.0.0/16) per test process, so that two files running at once never ask Docker for overlapping
// networks: claimed with an exclusive file holding our pid (a dead claimant's file is taken over), and never one a
// network left on the host already uses (a killed run's leftovers would make every network of ours fail with
// "Pool overlaps"). A hash of the file name collided as soon as there were more files than pools.
let claimedPool: number | undefined;
export function claimSubnetPool(): number {
  if (claimedPool !== undefined) return claimedPool;
  const dir = path.join(os.tmpdir(), 'cattery-test-pools');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  let routes = '';
  try { routes = execFileSync('ip', ['-4', 'route', 'show']).toString(); } catch { /* no iproute2: claims alone */ }
  const used = new Set([...routes.matchAll(/^10\.(\d+)\./gm)].map((m) => Number(m[1])));
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  const start = crypto.randomInt(0, 150);
  for (let i = 0; i < 150; i++) {
    const n = 100 + ((start + i) % 150);
    if (used.has(n)) continue;
    const claim = path.join(dir, String(n));
    try {
      fs.writeFileSync(claim, String(process.pid), { flag: 'wx' });
    } catch {
      const owner = Number(fs.readFileSync(claim, 'utf8'));
      if (owner && alive(owner)) continue;
      fs.writeFileSync(claim, String(process.pid));
    }
    process.on('exit', () => { try { fs.rmSync(claim); } catch { /* gone already */ } });
    claimedPool = n;
    return n;
  }
  throw new Error('no free 10.N.0.0/16 subnet pool for this test file');
}

/** A quarter (a /18: 1,024 instance subnets) of this test file's pool, for runtimes that run at the same time in one
 * file: each one allocates its instances' subnets from the lowest free /28 of its own pool, so two runtimes handed
 * the same pool would both take the first one. Pass it as the `subnetPool` override; `index` 0 to 3. */
export function subnetPoolSlice(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > 3) throw new Error(`subnet pool slice ${index} is not 0 to 3`);
  return `10.${claimSubnetPool()}.${index * 64}.0/18`;
}

// Port ranges already handed to a runtime of this process: runtimes that run at the same time in one file never
// share one (between files the random choice keeps them apart, as it always did).
const usedPortBases = new Set<number>();
function portBase(): number {
  for (;;) {
    // Below Linux's ephemeral ports (32768 and up): Docker's random host ports and every client socket come from
    // there, and an instance port inside that range once met one ("port is already allocated").
    const base = 20000 + crypto.randomInt(0, 127) * 100;
    if (usedPortBases.size >= 127 || !usedPortBases.has(base)) { usedPortBases.add(base); return base; }
  }
}

// Loop devices whose image file is gone with its test's data folder belong to a finished (or killed) test: detach
// them, so that a suite run leaves none behind whichever way its files ended. One still mounted refuses, harmlessly.
function sweepDeadLoops(): void {
  if (!fs.existsSync('/sys/block')) return;
  const tmp = fs.realpathSync(os.tmpdir());
  for (const dev of fs.readdirSync('/sys/block').filter((d) => /^loop\d+$/.test(d))) {
    let back = '';
    try { back = fs.readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8').trim(); } catch { continue; }
    if (back.startsWith(`${tmp}/cattery-test-`) && back.endsWith(' (deleted)')) {
      try { execFileSync('losetup', ['--detach', `/dev/${dev}`], { stdio: 'ignore' }); } catch { /* busy or not root */ }
    }
  }
}

export function testConfig(t: Test, overrides: Partial<Config> = {}): Config {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-test-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const hosterId = `t${crypto.randomBytes(4).toString('hex')}`;
  // A port range per test file, so that parallel files never publish on the same host port.
  const base = portBase();
  const pool = claimSubnetPool();
  sweepDeadLoops();
  return loadConfig({
    CATTERY_DATA_DIR: dataDir,
    CATTERY_CATALOG: TEST_CATALOG.join(':'),
    CATTERY_HOSTER_ID: hosterId,
    CATTERY_PORT_RANGE: `${base}-${base + 99}`,
    CATTERY_PORT: '0',
    CATTERY_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    CATTERY_RECONCILE_INTERVAL_S: '2',
    CATTERY_HEALTH_TIMEOUT_S: '60',
    CATTERY_SUBNET_POOL: `10.${pool}.0.0/16`,
    CATTERY_ADMIN_TOKEN: OPERATOR_TOKEN,
  }, overrides);
}

export async function removeHosterObjects(hosterId: string): Promise<void> {
  const filters = { label: [`cattery.hoster=${hosterId}`] };
  for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  // A container of the test's own beside a network (the test ACME CA joins the door's) is let go first: a network with
  // an endpoint left is not removed, and a leaked network holds one of Docker's few default address pools.
  for (const n of await docker.listNetworks({ filters })) {
    const net = docker.getNetwork(n.Id);
    const attached = Object.keys((await net.inspect().catch(() => undefined))?.Containers ?? {});
    for (const id of attached) await net.disconnect({ Container: id, Force: true }).catch(() => undefined);
    await net.remove().catch(() => undefined);
  }
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
  // The isolation rules cattery added for this hoster's bridges (orchestrator/firewall.ts), removed with them here.
  try {
    const rules = execFileSync('iptables', ['-w', '5', '-S', 'DOCKER-USER']).toString().split('\n');
    for (const r of rules.filter((x) => x.startsWith('-A DOCKER-USER') && x.includes(`cattery:${hosterId}`))) {
      execFileSync('iptables', ['-w', '5', '-D', ...r.slice(3).split(' ').map((a) => a.replace(/^"|"$/g, ''))]);
    }
  } catch { /* not root or no iptables: nothing was added */ }
}

/** Every inject on this app carries the operator's token unless the call sets its own authorization (or `null`). */
export function asOperator(app: FastifyInstance): void {
  const inject = app.inject.bind(app) as (o: unknown) => Promise<unknown>;
  (app as { inject: unknown }).inject = (opts: string | { headers?: Record<string, unknown> }) => {
    const o: { url?: string; headers?: Record<string, unknown> } = typeof opts === 'string' ? { url: opts } : opts;
    const headers = { ...OPERATOR, ...(o.headers ?? {}) } as Record<string, unknown>;
    if (headers.authorization === null) delete headers.authorization;
    return inject({ ...o, headers });
  };
}

/** Docker 20.10 runs a container's first health check one interval after its start (`start_interval` came with
 * Engine 25), and the services' manifests ask for 5 to 10 s: a test waiting for a new instance waited up to that
 * long after the service was ready. A test runtime checks every QUICK_HEALTH_S seconds at most, with as many more
 * retries as keep the time before an instance is declared unhealthy what its manifest says. The catalog is the
 * runtime's own (read from the files when it was built); the reconciler reads it when it creates a container. */
const QUICK_HEALTH_S = 3;
export function quickHealthChecks(catalog: Catalog): void {
  for (const { manifest } of catalog.services.values()) {
    const h = manifest.health;
    if (!h || h.intervalSeconds <= QUICK_HEALTH_S) continue;
    h.retries = Math.ceil((h.retries * h.intervalSeconds) / QUICK_HEALTH_S);
    h.intervalSeconds = QUICK_HEALTH_S;
  }
}

export async function testRuntime(t: Test, overrides: Partial<Config> = {}): Promise<Runtime> {
  const config = testConfig(t, overrides);
  const rt = await createRuntime(config, pino({ level: config.logLevel }), { maxBackoffSeconds: 2 });
  quickHealthChecks(rt.catalog);
  rt.start(config.reconcileIntervalSeconds);
  asOperator(rt.app);
  t.teardown(async () => {
    await rt.close();
    await removeHosterObjects(config.hosterId);
    // The volume images' loop devices (orchestrator/sized-volumes.ts), once their volumes are gone.
    await detachUnder(config.dataDir);
  });
  return rt;
}

/** How long a test waits for an instance to become healthy: a bound, not a measure. Locally a service is healthy in
 * 5 to 30 s; a CI machine was seen 2 to 4 times slower with the whole suite beside it, and a bound missed there is a
 * failure far from its cause. */
export const HEALTHY_WITHIN_MS = 360_000;

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) { last = err; }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export async function execIn(containerName: string, cmd: string[], user = ''): Promise<{ code: number; out: string }> {
  const exec = await docker.getContainer(containerName).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, User: user });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const sink = { write: (b: Buffer) => { chunks.push(b); return true; } } as unknown as NodeJS.WritableStream;
    docker.modem.demuxStream(stream, sink, sink);
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const info = await exec.inspect();
  return { code: info.ExitCode ?? -1, out: Buffer.concat(chunks).toString() };
}
