// Deploying `cattery agent` on every Swarm node (issue 15): its image, built here like cattery's other images (no
// registry) and carried to each node; a one-time enrolment token for each server whose agent is not enrolled yet,
// all of them in one Swarm secret that each node reads its own line of; then the global service of service-spec.ts.
// Idempotent: a second deploy with nothing new leaves the service as it is and issues no token.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Db } from '../db/connection.js';
import { servers, type Server } from '../db/schema.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import {
  ensureImageOn, ensureService, ensureServiceImage, ensureServiceRemoved, ensureSwarmObject, findService, listNodes, listServiceUnits, removeSwarmObjects,
  type Engine, type SwarmServiceSpec,
} from '../orchestrator/docker/index.js';
import type { Progress } from '../orchestrator/docker/images.js';
import { agentMeteredServers, issueEnrolmentToken } from './enrolment.js';
import { agentServiceName, agentServiceSpec } from './service-spec.js';

/** Two folders below the package root, in src/ and in dist/ alike. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The tokens are used within the minute the tasks start: an hour covers a slow image load on every node. */
const TOKEN_HOURS = 1;
const execFileAsync = promisify(execFile);
const sha = (s: string | Buffer) => crypto.createHash('sha256').update(s).digest('hex');

/** The packages the agent's code imports (dist/cli/agent.js and dist/agent/agent.js, as loaded: better-sqlite3,
 * fastify and the rest of the manager are not), each with what it depends on by the lockfile. A package missing
 * here stops the agent at its start ("Cannot find package"), which tests/agent/swarm-agent.test.ts would show. */
export const AGENT_PACKAGES = ['@fastify/error', '@sinclair/typebox', 'ajv', 'dockerode', 'drizzle-orm', 'jose', 'pino', 'tar-fs', 'tar-stream'];

type Lock = Record<string, { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }>;

/** Paths (node_modules/…) of `roots` and their dependencies, resolved as node resolves them: the nearest
 * node_modules folder up from the package that asks. */
export function packageClosure(lock: Lock, roots: string[]): string[] {
  const seen = new Set<string>();
  const find = (from: string, name: string): string | undefined => {
    for (let dir = from; ; ) {
      const p = `${dir ? `${dir}/` : ''}node_modules/${name}`;
      if (lock[p]) return p;
      if (!dir) return undefined;
      const i = dir.lastIndexOf('/node_modules/');
      dir = i < 0 ? '' : dir.slice(0, i);
    }
  };
  const walk = (p: string) => {
    if (seen.has(p)) return;
    seen.add(p);
    const e = lock[p]!;
    for (const name of Object.keys({ ...e.dependencies, ...e.optionalDependencies })) {
      const q = find(p, name);
      if (q) walk(q);
    }
  };
  for (const r of roots) {
    if (!lock[`node_modules/${r}`]) throw fail('CATTERY_ERR_BUILD', `package ${r} is not in package-lock.json`);
    walk(`node_modules/${r}`);
  }
  return [...seen].sort();
}

/** What the image holds: the node binary running this process (the manager's own runtime) with the shared libraries
 * it is linked against, and the agent's part of cattery (bin/, dist/, package.json and AGENT_PACKAGES as installed
 * here). No shell, no package manager, no Debian base: 99 MB of node and about 60 of code, which every node receives
 * through `docker save | load` (ensureImageOn) at each new version. Copied into `stage`, the build's folder; its
 * content is what names the image (images.ts serviceImageRef hashes every file). */
async function stageAgentImage(stage: string, root = PACKAGE_ROOT): Promise<void> {
  if (!fs.existsSync(path.join(root, 'dist', 'agent', 'agent.js'))) throw fail('CATTERY_ERR_BUILD', 'cattery is not compiled (dist/agent/agent.js): run `npm run build` first');
  fs.copyFileSync(path.join(root, 'deploy', 'agent', 'Dockerfile'), path.join(stage, 'Dockerfile'));
  const rootfs = path.join(stage, 'rootfs');
  const put = (from: string, to: string) => {
    fs.mkdirSync(path.dirname(path.join(rootfs, to)), { recursive: true });
    fs.copyFileSync(fs.realpathSync(from), path.join(rootfs, to));
  };
  put(process.execPath, '/usr/local/bin/node');
  fs.chmodSync(path.join(rootfs, 'usr/local/bin/node'), 0o755);
  // The libraries ldd names, at the paths it names them (the loader's own included): argv only, no shell.
  const { stdout } = await execFileAsync('ldd', [process.execPath], { timeout: 10_000 });
  for (const line of stdout.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m) put(m[1]!, m[1]!);
  }
  const app = path.join(rootfs, 'opt', 'cattery');
  for (const rel of ['package.json', 'bin', 'dist']) fs.cpSync(path.join(root, rel), path.join(app, rel), { recursive: true });
  const lock = (JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Lock }).packages;
  for (const rel of packageClosure(lock, AGENT_PACKAGES)) fs.cpSync(path.join(root, rel), path.join(app, rel), { recursive: true });
}

/** The agent's image on `engine` (built when its content changed); returns its reference. */
export async function ensureAgentImage(engine: Engine, opts: { workDir: string; progress: Progress }): Promise<string> {
  fs.mkdirSync(opts.workDir, { recursive: true, mode: 0o700 });
  const stage = fs.mkdtempSync(path.join(opts.workDir, 'agent-stage-'));
  try {
    await stageAgentImage(stage);
    return await ensureServiceImage(engine, { dir: stage, manifest: { id: 'agent', image: { production: 'none', local: { base: 'debian', dockerfile: 'Dockerfile' } } } }, opts);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

export interface AgentDeployDeps {
  db: Db;
  /** The swarm's manager engine, and the engine the images are built on (this host's). */
  manager: Engine;
  build: Engine;
  /** A server's engine (servers' table), to carry the image to its node. */
  engineOf: (server: Server) => Engine;
  hosterId: string;
  /** The manager's https address as the nodes reach it. */
  managerUrl: string;
  /** PEM of the certificate the nodes should trust for it, when no public authority signed it. */
  managerCa?: string;
  intervalSeconds?: number;
  workDir: string;
  log: Logger;
  progress?: Progress;
}

export interface AgentDeployment {
  image: string;
  /** Each node's service, by node id (hostnames can repeat). */
  services: Record<string, 'created' | 'unchanged' | 'updated'>;
  nodes: { id: string; hostname: string; server: string | undefined; agent: 'token issued' | 'enrolled' | 'not a cattery server' }[];
}

export async function deployAgents(d: AgentDeployDeps): Promise<AgentDeployment> {
  let url: URL;
  try { url = new URL(d.managerUrl); } catch { throw fail('CATTERY_ERR_VALIDATION', 'the manager\'s address is not a URL'); }
  // A node is never the manager's loopback: the token crosses the network, so only https (agent.ts checkManagerUrl).
  if (url.protocol !== 'https:' || url.pathname !== '/' || url.search || url.username) throw fail('CATTERY_ERR_VALIDATION', 'the nodes reach the manager over https: give https://HOST[:PORT]');
  const progress = d.progress ?? ((l: string) => d.log.debug(l));
  const image = await ensureAgentImage(d.build, { workDir: d.workDir, progress });
  const byName = new Map(d.db.select().from(servers).all().map((s) => [s.name, s]));
  const enrolled = agentMeteredServers(d.db);
  const nodes: AgentDeployment['nodes'] = [];
  const placed = (await listNodes(d.manager)).map((n) => ({ n, server: n.server !== undefined ? byName.get(n.server) : undefined }));
  // Every node at once: each load is its own engine's work (a few seconds per 100 MB).
  await Promise.all(placed.map(async ({ server }) => {
    if (!server) return;
    progress(`carrying ${image} to ${server.name}`);
    await ensureImageOn(d.build, d.engineOf(server), image);
  }));
  const labels = (role: string) => ({ 'cattery.hoster': d.hosterId, 'cattery.role': role });
  const ca = d.managerCa ? await ensureSwarmObject(d.manager, 'config', { Name: `${d.hosterId}-agent-ca-${sha(d.managerCa).slice(0, 12)}`, Labels: labels('agent-ca'), data: d.managerCa }) : undefined;
  const secretsKept: string[] = [];
  const services: AgentDeployment['services'] = {};
  const wanted = new Set<string>();
  for (const { n, server } of placed) {
    // A node that is no cattery server gets no agent: it could not enrol (cattery servers join labels it first).
    if (!server) { nodes.push({ id: n.id, hostname: n.hostname, server: n.server, agent: 'not a cattery server' }); continue; }
    const isEnrolled = enrolled.has(server.id);
    const existing = await findService(d.manager, agentServiceName(d.hosterId, n.id));
    const existingSecret = (existing?.Spec.TaskTemplate as { ContainerSpec?: { Secrets?: { SecretID: string; SecretName: string }[] } } | undefined)?.ContainerSpec?.Secrets?.[0];
    let tokenSecret: { id: string; name: string } | undefined;
    if (!isEnrolled) {
      // This node's token alone, in a secret only its own service names. Named by content (a secret cannot change).
      const token = issueEnrolmentToken(d.db, server.name, TOKEN_HOURS).token;
      tokenSecret = await ensureSwarmObject(d.manager, 'secret', {
        Name: `${d.hosterId}-agent-token-${n.id}-${sha(token).slice(0, 12)}`, Labels: { ...labels('agent-token'), 'cattery.node': n.id }, data: `${token}\n`,
      });
    } else if (existingSecret) {
      // Enrolled: the secret it started with stays named (spent), so that the service is not updated for nothing.
      tokenSecret = { id: existingSecret.SecretID, name: existingSecret.SecretName };
    }
    if (tokenSecret) secretsKept.push(tokenSecret.name);
    nodes.push({ id: n.id, hostname: n.hostname, server: server.name, agent: isEnrolled ? 'enrolled' : 'token issued' });
    const spec = agentServiceSpec({
      hosterId: d.hosterId, image, manager: url.origin, nodeId: n.id, tokenSecret, ...(ca ? { managerCa: ca } : {}),
      ...(d.intervalSeconds ? { intervalSeconds: d.intervalSeconds } : {}),
    });
    // ensureService compares labels: the spec's own hash among them makes any change an update.
    const full = { ...spec, Labels: { ...spec.Labels, 'cattery.spec': sha(JSON.stringify(spec)).slice(0, 16) } } as unknown as SwarmServiceSpec;
    services[n.id] = (await ensureService(d.manager, full)).how;
    wanted.add(full.Name!);
  }
  // The agents of nodes gone from the swarm, and the one global service of earlier deploys (which held every token).
  for (const u of await listServiceUnits(d.manager)) {
    const name = (u.names[0] ?? '').replace(/^\//, '');
    if (u.labels['cattery.role'] === 'agent' && !wanted.has(name)) await ensureServiceRemoved(d.manager, u.id);
  }
  await removeSwarmObjects(d.manager, 'secret', 'agent-token', secretsKept);
  await removeSwarmObjects(d.manager, 'secret', 'agent-tokens', []);
  await removeSwarmObjects(d.manager, 'config', 'agent-ca', ca ? [ca.name] : []);
  d.log.info({ image, services, nodes }, 'agents deployed');
  return { image, services, nodes };
}
