// The front door of each server, kept equal to what the database wants. The reconciler calls `sync` at the end of
// each pass over a server (level-triggered: a lost configuration, a restarted Caddy or a missed change is put right
// by the next pass, not by an event that had to arrive). A pass:
//   1. makes the ingress container be there (hardened, ports published) with its socket folder;
//   2. joins it to the networks of the web instances it serves, and leaves the others;
//   3. computes Caddy's configuration and, when Caddy runs anything else, loads it through the admin socket.
// A configuration Caddy refuses leaves the previous one serving; the refusal is kept in `ingress_state` and shown.
import fs from 'node:fs';
import path from 'node:path';
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import type { Server } from '../db/schema.js';
import { findInstance } from '../orchestrator/instances.js';
import { listServers } from '../orchestrator/servers.js';
import { ingressSubnet } from '../orchestrator/subnets.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import {
  INGRESS_UID, containerName, ensureImageOn, ensureIngressContainer, ensureIngressNetworks, imageExists, isLocalEndpoint,
  serviceImageRef, systemImage, type Engine,
} from '../orchestrator/docker/index.js';
import { currentConfig, loadCaddyConfig } from './caddy-admin.js';
import { ADMIN_SOCKET, CATTERY_SOCKET, caddyConfig, canonicalJson, configHash, type IngressPlan, type Site } from './caddy-config.js';
import { RESERVED_PREFIXES, checkHostname, domainOf } from './hostnames.js';
import { createCertificateHandOff } from './mail-certificates.js';
import { ingressStateOf, listHostnames, recordApplied, recordIngressError, type HostnameRow } from './store.js';

type IngressConfig = Pick<Config, 'ingress' | 'domains' | 'publicUrl' | 'dataDir' | 'hosterId' | 'subnetPool'>;

export interface IngressDeps {
  db: Db;
  catalog: Catalog;
  config: IngressConfig;
  log: Logger;
  /** Serve cattery's own app on this unix socket (runtime.ts), for the front door to reach it. */
  serveCatteryOn?: (socketPath: string) => Promise<void>;
}

export interface Ingress {
  /** Converge one server's front door; throws what kept it from serving the wanted configuration. Calls for one
   * server run one after the other (the reconciler's pass, and a change of names that does not wait for a pass).
   * A swarm's door is its manager's (`doorServerOf`): a call for another node of the swarm does nothing.
   * `imageFrom`: the engine the images are built on, where the door's image is carried from when `engine` lacks it. */
  sync(server: Server, engine: Engine, imageFrom?: Engine): Promise<void>;
  /** What the front door of a server should serve now (pure reading of the database). */
  plan(server: Server): IngressPlan;
  /** The host ports of the front door serving this server's instances, once it runs (0 before). */
  ports(serverId: number): { http: number; https: number };
  /** No pass starts after this; resolves once the passes under way are over (cattery's shutdown). */
  stop(): Promise<void>;
}

/** Cattery's own host when its public URL is https and under one of the association's domains. */
export function ownHost(config: Pick<Config, 'publicUrl' | 'domains'>): string | undefined {
  const url = new URL(config.publicUrl);
  return url.protocol === 'https:' && domainOf(url.hostname, config.domains) ? url.hostname : undefined;
}

/** cattery's pages and API behind the door: its own host, and the mail clients' and MTA-STS names of each domain. */
const CATTERY_BODY_BYTES = 1024 * 1024;
const CATTERY_TIMEOUT_S = 120;

/** The paths cattery answers on the mail client and MTA-STS names (http/pages/mail-client.ts); anything else there
 * is a 404 at the door, so those names never become a second address of cattery's pages. */
export const MAIL_CLIENT_PATHS = ['/.well-known/mta-sts.txt', '/mail/config-v1.1.xml', '/.well-known/autoconfig/mail/config-v1.1.xml'];

type PlanDeps = Pick<IngressDeps, 'catalog' | 'config'> & { log?: Logger };

/** The names this server's door serves: its running instances', checked again against today's configuration (a name
 * stored before a domain was removed, or before it became cattery's own or a reserved one, is left out). The plan,
 * the networks the door joins and the certificates it hands on all come from this one list. */
export function servedRows(deps: PlanDeps, rows: readonly HostnameRow[], server: Server, servers: ReadonlySet<number> = new Set([server.id])): HostnameRow[] {
  const own = ownHost(deps.config);
  return rows.filter((r) => {
    if (!servers.has(r.serverId) || r.desired !== 'running') return false;
    try { checkHostname(r.hostname, deps.config.domains, own); return true; } catch (err) {
      deps.log?.warn({ hostname: r.hostname, slug: r.slug, err: (err as Error).message }, 'hostname left out of the front door');
      return false;
    }
  });
}

/** The server whose front door serves `server`'s instances: itself, or on Swarm the manager (one door for the whole
 * swarm, on the overlays of every node's instances: docs/swarm.md); undefined for a swarm with no manager in the
 * table. */
export function doorServerOf(all: readonly Server[], server: Server): Server | undefined {
  return server.swarmRole ? all.find((s) => s.swarmRole === 'manager') : server;
}

/** The servers whose instances a door on `door` serves. */
export function servedServers(all: readonly Server[], door: Server): Set<number> {
  return new Set(door.swarmRole === 'manager' ? all.filter((s) => s.swarmRole).map((s) => s.id) : [door.id]);
}

export function planFor(deps: PlanDeps, rows: readonly HostnameRow[], server: Server, servers?: ReadonlySet<number>): IngressPlan {
  const own = ownHost(deps.config);
  const mine = servedRows(deps, rows, server, servers);
  const sites: Site[] = [];
  const certOnly: string[] = [];
  const bySlug = new Map<string, HostnameRow[]>();
  for (const r of mine) bySlug.set(r.slug, [...(bySlug.get(r.slug) ?? []), r]);
  for (const [slug, names] of bySlug) {
    const manifest = deps.catalog.services.get(names[0]!.service)?.manifest;
    const web = manifest?.http;
    const port = web && manifest.ports.find((p) => p.name === web.port);
    if (!web || !port) { certOnly.push(...names.map((n) => n.hostname)); continue; }
    sites.push({
      hostnames: names.map((n) => n.hostname),
      upstream: `${containerName(deps.config.hosterId, slug)}:${port.container}`,
      maxBodyBytes: web.maxBodyMb * 1024 * 1024,
      timeoutSeconds: web.timeoutSeconds,
      websocket: web.websocket,
    });
  }
  sites.sort((a, b) => (a.hostnames[0] ?? '').localeCompare(b.hostnames[0] ?? ''));
  // cattery's own routes come first: no instance's route is ever matched before them.
  const catterySite = (hostnames: string[], paths?: string[]): Site => ({
    hostnames, upstream: `unix/${CATTERY_SOCKET}`, maxBodyBytes: CATTERY_BODY_BYTES, timeoutSeconds: CATTERY_TIMEOUT_S, websocket: true,
    ...(paths ? { paths } : {}),
  });
  const mailClient = deps.config.domains.flatMap((d) => RESERVED_PREFIXES.filter((p) => p !== 'autodiscover').map((p) => `${p}.${d}`));
  const first = [...(own ? [catterySite([own])] : []), ...(mailClient.length ? [catterySite(mailClient, MAIL_CLIENT_PATHS)] : [])];
  const acme = { directory: deps.config.ingress.acmeDirectory, email: deps.config.ingress.acmeEmail, trustRoot: !!deps.config.ingress.acmeRootFile };
  return { sites: [...first, ...sites], certOnly, acme, hstsSeconds: deps.config.ingress.hstsSeconds };
}

/** How long a configuration this process loaded is trusted to still run in the same Caddy without reading it back.
 * Only root can reach the admin socket besides cattery; a read-back this often puts even that right. */
const READBACK_MS = 5 * 60_000;

async function waitForSocket(file: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!fs.existsSync(file)) {
    if (Date.now() > until) throw fail('CATTERY_ERR_INGRESS', `the admin socket ${file} did not appear in ${ms / 1000} s (see the ingress container's log)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function createIngress(deps: IngressDeps): Ingress {
  const ports = new Map<number, { http: number; https: number }>();
  const served = new Set<string>();
  let warnedRemote = false;
  const certificates = createCertificateHandOff({ hosterId: deps.config.hosterId, acmeDirectory: deps.config.ingress.acmeDirectory, log: deps.log });
  const mailDomainOf = (slug: string) => findInstance(deps.db, slug)?.config.env.MAIL_DOMAIN;
  const runDirOf = (server: Server) => path.join(deps.config.dataDir, 'ingress', server.name.replace(/[^A-Za-z0-9_.-]/g, '_'));
  const plan = (server: Server) => planFor(deps, listHostnames(deps.db), server, servedServers(listServers(deps.db), server));
  // What this process last loaded into which Caddy (container id and start time), by server: with it, a pass whose
  // plan has not changed costs no read of Caddy's configuration (200 names are ~100 KB of JSON), and a change is
  // loaded straight away. A Caddy restarted, replaced, or not read back for READBACK_MS is read back first.
  const loaded = new Map<number, { caddy: string; hash: string; readAt: number }>();
  const queues = new Map<number, Promise<void>>();
  let stopped = false;

  async function prepareRunDir(server: Server): Promise<string> {
    const dir = runDirOf(server);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The folder is the ingress user's (it makes the admin socket there) and nobody else's; root reaches it anyway.
    fs.chmodSync(dir, 0o700);
    if (process.getuid?.() === 0) fs.chownSync(dir, INGRESS_UID, INGRESS_UID);
    const catterySocket = path.join(dir, path.basename(CATTERY_SOCKET));
    if (deps.serveCatteryOn && !served.has(catterySocket)) {
      await deps.serveCatteryOn(catterySocket);
      served.add(catterySocket);
    }
    return dir;
  }

  async function apply(server: Server, socket: string, wanted: object, caddy: string): Promise<void> {
    const hash = configHash(wanted);
    const known = loaded.get(server.id);
    const trusted = known && known.caddy === caddy && Date.now() - known.readAt < READBACK_MS ? known : undefined;
    if (trusted?.hash === hash) return;
    let readAt = trusted?.readAt ?? 0;
    if (!trusted) {
      const running = await currentConfig(socket);
      readAt = Date.now();
      if (canonicalJson(running) === canonicalJson(wanted)) {
        loaded.set(server.id, { caddy, hash, readAt });
        if (ingressStateOf(deps.db, server.id)?.appliedHash !== hash) recordApplied(deps.db, server.id, hash);
        return;
      }
    }
    const started = Date.now();
    try {
      await loadCaddyConfig(socket, wanted);
    } catch (err) {
      // Refused: Caddy keeps what it ran, which the next pass reads back before anything else.
      loaded.delete(server.id);
      recordIngressError(deps.db, server.id, (err as Error).message);
      throw err;
    }
    loaded.set(server.id, { caddy, hash, readAt });
    recordApplied(deps.db, server.id, hash);
    deps.log.info({ server: server.name, hash, loadMs: Date.now() - started }, 'front door configuration applied');
  }

  async function converge(server: Server, engine: Engine, imageFrom: Engine | undefined): Promise<void> {
    if (!isLocalEndpoint(server.dockerEndpoint)) {
      // The admin socket is a file of this host: a remote server's front door comes with Swarm (issue 15).
      if (!warnedRemote) deps.log.warn({ server: server.name }, 'no front door on a remote engine yet');
      warnedRemote = true;
      return;
    }
    const t0 = Date.now();
    const image = serviceImageRef(systemImage('ingress'));
    if (imageFrom && imageFrom !== engine) await ensureImageOn(imageFrom, engine, image);
    else if (!(await imageExists(engine, image))) throw fail('CATTERY_ERR_IMAGE_MISSING', image);
    const runDir = await prepareRunDir(server);
    const c = await ensureIngressContainer(engine, {
      image, runDir, acmeRootFile: deps.config.ingress.acmeRootFile, bindAddress: deps.config.ingress.bindAddress,
      subnet: ingressSubnet(deps.config.subnetPool), httpPort: deps.config.ingress.httpPort, httpsPort: deps.config.ingress.httpsPort,
    });
    ports.set(server.id, { http: c.httpPort, https: c.httpsPort });
    const t1 = Date.now();
    // One read of the names per pass, for the plan, the networks and the certificates alike.
    const servers = servedServers(listServers(deps.db), server);
    const served = servedRows(deps, listHostnames(deps.db), server, servers);
    const wanted = planFor(deps, served, server, servers);
    const slugs = [...new Set(served.filter((r) => deps.catalog.services.get(r.service)?.manifest.http).map((r) => r.slug))];
    await ensureIngressNetworks(engine, c, slugs);
    const t2 = Date.now();
    const socket = path.join(runDir, path.basename(ADMIN_SOCKET));
    await waitForSocket(socket, 15_000);
    await apply(server, socket, caddyConfig(wanted), `${c.id} ${c.startedAt}`);
    const t3 = Date.now();
    // The mail hosts' certificates, once Caddy has them, to the mail instances (renewals included).
    await certificates.sync(engine, served, mailDomainOf);
    deps.log.debug({ server: server.name, containerMs: t1 - t0, networksMs: t2 - t1, configMs: t3 - t2, certificatesMs: Date.now() - t3 }, 'front door pass');
  }

  return {
    plan,
    ports(serverId) {
      const all = listServers(deps.db);
      const server = all.find((s) => s.id === serverId);
      const door = server && doorServerOf(all, server);
      return (door && ports.get(door.id)) ?? { http: 0, https: 0 };
    },
    sync(server, engine, imageFrom) {
      if (!deps.config.ingress.enabled || stopped) return Promise.resolve();
      if (server.swarmRole && server.swarmRole !== 'manager') return Promise.resolve();
      // One at a time per server: two loads racing could leave the older plan in Caddy.
      const next = (queues.get(server.id) ?? Promise.resolve()).catch(() => undefined).then(() => converge(server, engine, imageFrom));
      queues.set(server.id, next);
      return next;
    },
    async stop() {
      stopped = true;
      await Promise.allSettled([...queues.values()]);
    },
  };
}
