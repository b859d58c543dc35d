// `cattery agent` on a node: its own key (made at first start, 0600 in a 0700 folder), enrolled once with the
// manager by a one-time token; then every N seconds it reads the node's containers (cgroup files, as the local
// collector does: metering/usage-reader.ts), its CPU time and memory (/proc), its RAPL counters when it has them, and
// sends them to the manager as a signed sample. The manager splits and records them (agent/ingest.ts): the node
// does no arithmetic of its own, so every node is measured by the same code.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AgentConfig } from '../config.js';
import { fail, isCatteryError } from '../errors.js';
import { signDocument } from '../federation/jws.js';
import { createKeyStoreAt, type KeyStore } from '../federation/keys.js';
import type { Logger } from '../log.js';
import { cgroupVersion, readHostCpu, readHostMemory, type Roots } from '../metering/cgroup.js';
import { findRaplDomains, readRapl } from '../metering/rapl.js';
import { createUsageReader } from '../metering/usage-reader.js';
import { LABEL_INSTANCE, LABEL_SERVICE, connectEngine, containerPid, runningInstanceContainers } from '../orchestrator/docker/index.js';
import { readNoNewPrivs } from './isolation.js';
import { MAX_CONTAINERS, TOKEN_PATTERN, type SamplePayload } from './protocol.js';

interface Enrolment { v: 1; manager: string; serverId: number; server: string; hosterId: string; kid: string; enrolledAt: string }

export interface Agent {
  /** Read and send one sample now; resolves with what the manager said (recorded, or a baseline). */
  sampleOnce(): Promise<{ recorded: boolean; watts: number | null }>;
  start(): void;
  stop(): Promise<void>;
  enrolment: Enrolment;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/;

/** https, or plain http to this machine only: the enrolment token must not cross a network in clear. */
export function checkManagerUrl(url: string): string {
  let u: URL;
  try { u = new URL(url); } catch { throw fail('CATTERY_ERR_CONFIG', `the manager's address ${url.slice(0, 100)} is not a URL`); }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK.test(u.hostname))) {
    throw fail('CATTERY_ERR_CONFIG', 'the manager is reached over https (plain http only on a loopback address)');
  }
  return u.origin;
}

/** The token given, or this node's line of a token file: one token alone, or lines `NODE TOKEN` (whole fields). */
export function tokenOf(config: Pick<AgentConfig, 'token' | 'tokenFile' | 'node'>): string | undefined {
  if (config.token) return config.token;
  if (!config.tokenFile) return undefined;
  const lines = fs.readFileSync(config.tokenFile, 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f[0]);
  if (lines.length === 1 && lines[0]!.length === 1) return lines[0]![0];
  const mine = lines.find((f) => f.length === 2 && config.node !== undefined && f[0] === config.node);
  return mine?.[1];
}

async function post(url: string, body: unknown, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs), redirect: 'error',
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try { json = JSON.parse(text) as Record<string, unknown>; } catch { /* not JSON: said below */ }
  if (!res.ok) {
    const err = new Error(`the manager answered ${res.status} ${String(json.code ?? '')}: ${String(json.message ?? text.slice(0, 200))}`) as Error & { status?: number; code?: string };
    err.status = res.status;
    if (typeof json.code === 'string') err.code = json.code;
    throw err;
  }
  return json;
}

function writePrivate(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.dirname(file), 0o700);
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, file);
}

export const keyFile = (stateDir: string) => path.join(stateDir, 'node-key.json');
const enrolmentFile = (stateDir: string) => path.join(stateDir, 'enrolment.json');

/** The node's enrolment: the one kept in the state folder when it is for this key and this manager, else a new one
 * made with the token (which is then spent). */
export async function ensureEnrolled(config: AgentConfig, keys: KeyStore, log: Logger): Promise<Enrolment> {
  if (!config.manager) throw fail('CATTERY_ERR_CONFIG', 'no manager: give --manager URL (or CATTERY_AGENT_MANAGER)');
  const manager = checkManagerUrl(config.manager);
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(config.stateDir, 0o700);
  const me = await keys.current();
  const kept = (() => { try { return JSON.parse(fs.readFileSync(enrolmentFile(config.stateDir), 'utf8')) as Enrolment; } catch { return undefined; } })();
  if (kept && kept.v === 1 && kept.kid === me.kid && kept.manager === manager) return kept;
  const token = tokenOf(config);
  if (!token) throw fail('CATTERY_ERR_CONFIG', 'this node is not enrolled yet: give the token an administrator issued (--token, --token-file or CATTERY_AGENT_TOKEN)');
  if (!new RegExp(TOKEN_PATTERN).test(token)) throw fail('CATTERY_ERR_CONFIG', 'the enrolment token is not one cattery issued (SERVER-ID.SECRET)');
  const jws = await signDocument(me, 'agentEnrolment', { v: 1, token, iat: Math.floor(Date.now() / 1000) });
  const r = await post(`${manager}/api/agent/enrol`, { jws });
  const enrolment: Enrolment = {
    v: 1, manager, serverId: Number(r.serverId), server: String(r.server), hosterId: String(r.hosterId), kid: me.kid, enrolledAt: new Date().toISOString(),
  };
  writePrivate(enrolmentFile(config.stateDir), enrolment);
  log.info({ server: enrolment.server, fingerprint: r.fingerprint }, 'enrolled with the manager: compare this fingerprint with the one the manager lists');
  return enrolment;
}

export async function createAgent(config: AgentConfig, log: Logger): Promise<Agent> {
  const keys = createKeyStoreAt(keyFile(config.stateDir));
  // The key is made before anything is sent: its file is 0600 in the 0700 state folder (federation/keys.ts).
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(config.stateDir, 0o700);
  await keys.current();
  const enrolment = await ensureEnrolled(config, keys, log);
  const roots: Roots = { cgroup: config.cgroupRoot, proc: config.procRoot };
  const version = cgroupVersion(roots);
  const rapl = findRaplDomains(config.powercapRoot);
  const engine = connectEngine(config.dockerEndpoint, { hosterId: enrolment.hosterId, timeoutSeconds: 10, log });
  const reader = createUsageReader({ roots, version, log, useStatsApi: false });
  const run = crypto.randomBytes(8).toString('hex');
  let seq = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;

  /** Each running container's host pid, asked once (an inspect) and kept while it runs. */
  const pids = new Map<string, number>();
  async function noNewPrivs(id: string): Promise<0 | 1 | undefined> {
    let pid = pids.get(id);
    if (pid === undefined) {
      try { pid = await containerPid(engine, id); } catch { return undefined; }
      pids.set(id, pid);
    }
    const v = readNoNewPrivs(config.procRoot, pid);
    if (v === undefined) pids.delete(id);
    return v;
  }

  async function read(): Promise<SamplePayload> {
    const containers = await runningInstanceContainers(engine);
    const usage = await reader.readAll(engine, containers, true);
    for (const id of pids.keys()) if (!containers.some((c) => c.id === id)) pids.delete(id);
    const nnp = new Map<string, 0 | 1>();
    for (const c of containers) {
      const v = await noNewPrivs(c.id);
      if (v !== undefined) nnp.set(c.id, v);
    }
    const mono = process.hrtime.bigint();
    // Wall-clock milliseconds, made strictly increasing: the sequence survives a restart of the agent as long as the
    // clock does not go back (and a clock that went back is refused as stale anyway).
    seq = Math.max(seq + 1, Date.now());
    return {
      v: 1, server: enrolment.serverId, seq, at: Date.now(), run, mono: mono.toString(),
      host: readHostCpu(roots), mem: readHostMemory(roots),
      ...(rapl.length ? { rapl: readRapl(rapl).map((uj, i) => ({ uj, maxUj: rapl[i]!.maxUj })) } : {}),
      // A container without its service label is not one cattery made whole: left out (its CPU stays in "other").
      containers: containers.filter((c) => usage.has(c.id) && c.labels[LABEL_SERVICE]).slice(0, MAX_CONTAINERS).map((c) => ({
        id: c.id, slug: c.labels[LABEL_INSTANCE]!, service: c.labels[LABEL_SERVICE] ?? '', ...usage.get(c.id)!,
        ...(nnp.has(c.id) ? { noNewPrivs: nnp.get(c.id)! } : {}),
      })),
    };
  }

  async function sampleOnce() {
    const jws = await keys.sign('agentSample', await read());
    const r = await post(`${enrolment.manager}/api/agent/samples`, { jws });
    return { recorded: r.recorded === true, watts: typeof r.watts === 'number' ? r.watts : null };
  }

  function tick() {
    if (stopped) return;
    const t0 = Date.now();
    running = sampleOnce()
      .then((r) => log.debug(r, 'sample sent'))
      .catch((err: Error & { code?: string }) => log.warn({ err: isCatteryError(err) ? err : err.message, code: err.code }, 'sample not accepted'))
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, Math.max(0, config.intervalSeconds * 1000 - (Date.now() - t0)));
      });
  }

  return {
    enrolment, sampleOnce,
    start() { tick(); },
    async stop() { stopped = true; clearTimeout(timer); await running; },
  };
}
