// Deploying `cattery agent` on every Swarm node (issue 15): its image, built here like cattery's other images (no
// registry) and carried to each node; a one-time enrolment token for each server whose agent is not enrolled yet,
// all of them in one Swarm secret that each node reads its own line of; then the global service of service-spec.ts.
// Idempotent: a second deploy with nothing new leaves the service as it is and issues no token.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from '../db/connection.js';
import { servers, type Server } from '../db/schema.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import {
  ensureImageOn, ensureService, ensureServiceImage, ensureSwarmObject, listNodes, listSwarmObjects, removeSwarmObjects, type Engine, type SwarmServiceSpec,
} from '../orchestrator/docker/index.js';
import type { Progress } from '../orchestrator/docker/images.js';
import { agentMeteredServers, issueEnrolmentToken } from './enrolment.js';
import { agentServiceSpec, agentTokensFile } from './service-spec.js';

/** Two folders below the package root, in src/ and in dist/ alike. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The tokens are used within the minute the tasks start: an hour covers a slow image load on every node. */
const TOKEN_HOURS = 1;
const sha = (s: string | Buffer) => crypto.createHash('sha256').update(s).digest('hex');

/** What the image holds: the manager's node binary, and cattery as it runs (bin/, dist/, package.json and the
 * production packages of package-lock.json, as installed here). Copied into `stage`, which becomes the build's
 * folder; its content is what names the image (images.ts serviceImageRef hashes every file). */
function stageAgentImage(stage: string, root = PACKAGE_ROOT): void {
  if (!fs.existsSync(path.join(root, 'dist', 'agent', 'agent.js'))) throw fail('CATTERY_ERR_BUILD', 'cattery is not compiled (dist/agent/agent.js): run `npm run build` first');
  fs.copyFileSync(path.join(root, 'deploy', 'agent', 'Dockerfile'), path.join(stage, 'Dockerfile'));
  // The binary running this process: the same node the manager runs. Linked against glibc and libstdc++ only, which
  // the Debian base has (the manager's host is Debian too; a node binary built elsewhere would say so at its start).
  fs.copyFileSync(process.execPath, path.join(stage, 'node'));
  fs.chmodSync(path.join(stage, 'node'), 0o755);
  const app = path.join(stage, 'cattery');
  for (const rel of ['package.json', 'package-lock.json', 'bin', 'dist']) fs.cpSync(path.join(root, rel), path.join(app, rel), { recursive: true });
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages?: Record<string, { dev?: boolean }> };
  // Only what `npm ci --omit=dev` would install: the lock marks every development-only package `dev`.
  for (const [rel, p] of Object.entries(lock.packages ?? {})) {
    if (!rel || p.dev || !fs.existsSync(path.join(root, rel))) continue;
    fs.cpSync(path.join(root, rel), path.join(app, rel), { recursive: true, dereference: false });
  }
}

/** The agent's image on `engine` (built when its content changed); returns its reference. */
export async function ensureAgentImage(engine: Engine, opts: { workDir: string; progress: Progress }): Promise<string> {
  fs.mkdirSync(opts.workDir, { recursive: true, mode: 0o700 });
  const stage = fs.mkdtempSync(path.join(opts.workDir, 'agent-stage-'));
  try {
    stageAgentImage(stage);
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
  service: 'created' | 'unchanged' | 'updated';
  nodes: { hostname: string; server: string | undefined; agent: 'token issued' | 'enrolled' | 'not a cattery server' }[];
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
  const tokens: { node: string; token: string }[] = [];
  for (const n of await listNodes(d.manager)) {
    const server = n.server !== undefined ? byName.get(n.server) : undefined;
    if (!server) { nodes.push({ hostname: n.hostname, server: n.server, agent: 'not a cattery server' }); continue; }
    progress(`carrying ${image} to ${server.name}`);
    await ensureImageOn(d.build, d.engineOf(server), image);
    if (enrolled.has(server.id)) { nodes.push({ hostname: n.hostname, server: server.name, agent: 'enrolled' }); continue; }
    tokens.push({ node: n.hostname, token: issueEnrolmentToken(d.db, server.name, TOKEN_HOURS).token });
    nodes.push({ hostname: n.hostname, server: server.name, agent: 'token issued' });
  }
  const text = agentTokensFile(tokens);
  const labels = (role: string) => ({ 'cattery.hoster': d.hosterId, 'cattery.role': role });
  // Named by content: a secret cannot change in Swarm. A deploy with no token to give keeps the secret it had (its
  // tokens are spent or replaced: a token issued again replaces the open one), so the service stays unchanged.
  const kept = tokens.length === 0 ? (await listSwarmObjects(d.manager, 'secret', 'agent-tokens'))[0] : undefined;
  const secret = kept ?? await ensureSwarmObject(d.manager, 'secret', { Name: `${d.hosterId}-agent-tokens-${sha(text).slice(0, 12)}`, Labels: labels('agent-tokens'), data: text });
  const ca = d.managerCa ? await ensureSwarmObject(d.manager, 'config', { Name: `${d.hosterId}-agent-ca-${sha(d.managerCa).slice(0, 12)}`, Labels: labels('agent-ca'), data: d.managerCa }) : undefined;
  const spec = agentServiceSpec({
    hosterId: d.hosterId, image, manager: url.origin, tokensSecret: secret, ...(ca ? { managerCa: ca } : {}),
    ...(d.intervalSeconds ? { intervalSeconds: d.intervalSeconds } : {}),
  });
  // ensureService compares labels: the spec's own hash among them makes any change an update.
  const full = { ...spec, Labels: { ...spec.Labels, 'cattery.spec': sha(JSON.stringify(spec)).slice(0, 16) } } as unknown as SwarmServiceSpec;
  const service = await ensureService(d.manager, full);
  await removeSwarmObjects(d.manager, 'secret', 'agent-tokens', [secret.name]);
  await removeSwarmObjects(d.manager, 'config', 'agent-ca', ca ? [ca.name] : []);
  d.log.info({ image, service: service.how, nodes }, 'agents deployed');
  return { image, service: service.how, nodes };
}
