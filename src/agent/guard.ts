// The node guard (docs/swarm.md, "Isolation rules on a node"): a global Swarm service, separate from the metering
// agent, whose task on every node keeps the iptables rules that stop instances' tasks from reaching the nodes (the
// engine API, the swarm's ports, anything else listening) through their way out, docker_gwbridge. Its image
// (deploy/guard: Debian's iptables and one shell script) is built here and carried to each node like the agent's; the
// swarm's node addresses are given to it in its environment, so a node joining or leaving is a service update.
// What it is given, and why no less: the node's network namespace (Swarm's `host` network: the rules are the node's),
// CAP_NET_ADMIN and CAP_NET_RAW (iptables writes with the first and opens its raw socket with the second), root's
// uid (the node's dockerd runs every container with no-new-privileges, under which a non-root user cannot gain a
// file capability, and Engine 20.10's service API has no ambient capabilities). Nothing else: every other capability
// dropped, a read-only root with a small tmpfs on /run (iptables-legacy's lock), no Docker socket, no secret, no
// volume, 32 MB, a tenth of a core and 32 processes.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Db } from '../db/connection.js';
import { servers, type Server } from '../db/schema.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import {
  call, ensureImageOn, ensureService, ensureServiceImage, findService, guardServiceName, listNodes, systemImage, type Engine, type SwarmServiceSpec,
} from '../orchestrator/docker/index.js';
import type { Progress } from '../orchestrator/docker/images.js';

export const GUARD_INTERVAL_S = 3;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const sha = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

export interface GuardServiceOptions {
  hosterId: string;
  image: string;
  /** The swarm's node addresses (each node's Status.Addr): what a task must not open a connection to. */
  nodeAddrs: string[];
  /** Swarm's `host` network, by its swarm-scope id (Swarm resolves a service's networks by id). */
  hostNetworkId: string;
  intervalSeconds?: number;
}

/** The CreateService body (API 1.41). Plain, to be compared and tested. */
export function guardServiceSpec(o: GuardServiceOptions): SwarmServiceSpec {
  const bad = o.nodeAddrs.filter((a) => !IPV4.test(a));
  if (bad.length) throw fail('CATTERY_ERR_VALIDATION', `node addresses the guard cannot write a rule for (IPv4 only): ${bad.join(', ').slice(0, 200)}`);
  const labels = { 'cattery.hoster': o.hosterId, 'cattery.role': 'guard' };
  const s = (n: number) => Math.round(n * 1e9);
  const spec = {
    Name: guardServiceName(o.hosterId),
    Labels: labels,
    Mode: { Global: {} },
    TaskTemplate: {
      ContainerSpec: {
        Image: o.image,
        Args: ['run'],
        Env: [`CATTERY_GUARD_NODES=${[...new Set(o.nodeAddrs)].sort().join(',')}`, `CATTERY_GUARD_INTERVAL_S=${o.intervalSeconds ?? GUARD_INTERVAL_S}`],
        Labels: labels,
        ReadOnly: true,
        CapabilityDrop: ['ALL'],
        CapabilityAdd: ['CAP_NET_ADMIN', 'CAP_NET_RAW'],
        Mounts: [{ Type: 'tmpfs', Target: '/run', TmpfsOptions: { SizeBytes: 1024 * 1024, Mode: 0o755 } }],
        // Healthy only while every rule is in place: the manager reads "its task runs" as "the node is guarded".
        HealthCheck: { Test: ['CMD', '/usr/local/sbin/cattery-guard', 'check'], Interval: s(3), Timeout: s(5), Retries: 2, StartPeriod: s(20) },
        StopGracePeriod: s(5),
      },
      Resources: { Limits: { MemoryBytes: 32 * 1024 * 1024, NanoCPUs: 100_000_000, Pids: 32 } },
      RestartPolicy: { Condition: 'any', Delay: s(5) },
      Networks: [{ Target: o.hostNetworkId }],
      LogDriver: { Name: 'json-file', Options: { 'max-size': '1m', 'max-file': '2' } },
    },
    // Every node's task replaced at once (a new address must reach every node, not one node per update delay): a
    // guard that stops leaves its rules in place, so the nodes stay closed between the old task and the new one.
    UpdateConfig: { Parallelism: 0, Order: 'stop-first' },
  };
  // ensureService compares labels: the spec's own hash among them makes any change (an address) an update.
  return { ...spec, Labels: { ...labels, 'cattery.spec': sha(JSON.stringify(spec)).slice(0, 16) } } as unknown as SwarmServiceSpec;
}

/** Swarm's own `host` network (swarm scope, one per cluster): its id as a service names it. */
async function hostNetworkId(manager: Engine): Promise<string> {
  const n = await call(manager, 'inspect the host network', (d) => {
    const net = d.getNetwork('host') as unknown as { inspect(opts: object): Promise<unknown> };
    return net.inspect({ scope: 'swarm' });
  }) as { Id: string };
  return n.Id;
}

/** The addresses of the swarm's nodes, as Swarm knows them. */
export async function swarmNodeAddrs(manager: Engine): Promise<string[]> {
  return [...new Set((await listNodes(manager)).map((n) => n.addr).filter((a) => a && a !== '0.0.0.0'))].sort();
}

export interface GuardDeployDeps {
  db: Db;
  manager: Engine;
  build: Engine;
  engineOf: (server: Server) => Engine;
  hosterId: string;
  workDir: string;
  log: Logger;
  progress?: Progress;
  intervalSeconds?: number;
}

export interface GuardDeployment { image: string; service: 'created' | 'unchanged' | 'updated'; nodeAddrs: string[] }

export async function deployGuard(d: GuardDeployDeps): Promise<GuardDeployment> {
  const progress = d.progress ?? ((l: string) => d.log.debug(l));
  fs.mkdirSync(d.workDir, { recursive: true, mode: 0o700 });
  const image = await ensureServiceImage(d.build, systemImage('guard'), { workDir: d.workDir, progress });
  const byName = new Map(d.db.select().from(servers).all().map((s) => [s.name, s]));
  const nodes = await listNodes(d.manager);
  await Promise.all(nodes.map(async (n) => {
    const server = n.server !== undefined ? byName.get(n.server) : undefined;
    if (!server) return;
    progress(`carrying ${image} to ${server.name}`);
    await ensureImageOn(d.build, d.engineOf(server), image);
  }));
  const nodeAddrs = await swarmNodeAddrs(d.manager);
  const spec = guardServiceSpec({
    hosterId: d.hosterId, image, nodeAddrs, hostNetworkId: await hostNetworkId(d.manager), ...(d.intervalSeconds ? { intervalSeconds: d.intervalSeconds } : {}),
  });
  const service = await ensureService(d.manager, spec);
  d.log.info({ image, service: service.how, nodeAddrs }, 'node guard deployed');
  return { image, service: service.how, nodeAddrs };
}

/** After a node joined or left: the deployed guard given the swarm's addresses as they are now (no image built; a
 * no-op without a guard, or when they did not change). */
export async function refreshGuardNodes(manager: Engine): Promise<'no guard' | 'unchanged' | 'updated'> {
  const s = await findService(manager, guardServiceName(manager.hosterId));
  if (!s) return 'no guard';
  const cs = (s.Spec.TaskTemplate as { ContainerSpec: { Image: string; Env?: string[] } }).ContainerSpec;
  const interval = Number((cs.Env ?? []).find((e) => e.startsWith('CATTERY_GUARD_INTERVAL_S='))?.split('=')[1]) || GUARD_INTERVAL_S;
  const spec = guardServiceSpec({
    hosterId: manager.hosterId, image: cs.Image.replace(/@sha256:[0-9a-f]+$/, ''), nodeAddrs: await swarmNodeAddrs(manager),
    hostNetworkId: await hostNetworkId(manager), intervalSeconds: interval,
  });
  return (await ensureService(manager, spec)).how === 'unchanged' ? 'unchanged' : 'updated';
}
