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
import { createRuntime, type Runtime } from '../src/runtime.js';
import { detachUnder } from '../src/orchestrator/sized-volumes.js';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Tests speak as the operator (CATTERY_ADMIN_TOKEN) unless they say otherwise. */
export const OPERATOR_TOKEN = `operator-${crypto.randomBytes(12).toString('hex')}`;
export const OPERATOR = { authorization: `Bearer ${OPERATOR_TOKEN}` };

export function testConfig(t: Test, overrides: Partial<Config> = {}): Config {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-test-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const hosterId = `t${crypto.randomBytes(4).toString('hex')}`;
  // A port range per test file, so that parallel files never publish on the same host port.
  const base = 30000 + crypto.randomInt(0, 300) * 100;
  // Likewise a subnet pool per test file (tap runs each file in its own process), so that two files running at
  // once never ask Docker for overlapping networks.
  const fileIndex = crypto.createHash('sha256').update(path.basename(process.argv[1] ?? '')).digest()[0]! % 50;
  return loadConfig({
    CATTERY_DATA_DIR: dataDir,
    CATTERY_CATALOG: [path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')].join(':'),
    CATTERY_HOSTER_ID: hosterId,
    CATTERY_PORT_RANGE: `${base}-${base + 99}`,
    CATTERY_PORT: '0',
    CATTERY_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    CATTERY_RECONCILE_INTERVAL_S: '2',
    CATTERY_HEALTH_TIMEOUT_S: '60',
    CATTERY_SUBNET_POOL: `10.${200 + fileIndex}.0.0/16`,
    CATTERY_ADMIN_TOKEN: OPERATOR_TOKEN,
  }, overrides);
}

export async function removeHosterObjects(hosterId: string): Promise<void> {
  const filters = { label: [`cattery.hoster=${hosterId}`] };
  for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
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
    const o = typeof opts === 'string' ? { url: opts } : opts;
    const headers = { ...OPERATOR, ...(o.headers ?? {}) } as Record<string, unknown>;
    if (headers.authorization === null) delete headers.authorization;
    return inject({ ...o, headers });
  };
}

export async function testRuntime(t: Test, overrides: Partial<Config> = {}): Promise<Runtime> {
  const config = testConfig(t, overrides);
  const rt = await createRuntime(config, pino({ level: config.logLevel }), { maxBackoffSeconds: 2 });
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
