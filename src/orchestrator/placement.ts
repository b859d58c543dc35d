// Where a new instance goes, and which moves would let a server rest (issue 15, "placement that saves energy").
// Pure functions over what metering and the engines already say: each server's power curve, how many cores are busy
// on it, its memory and what its instances reserve. A new instance goes where it adds the fewest watts according to
// that server's curve at its present load, among the servers it fits on; a consolidation plan says which instances
// would move so that one server carries none, and what that saves per month. Nothing here moves anything: a plan is
// shown to an administrator, and a stateful instance moves only through backup and restore (docs/energy.md).
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import type { Server, ServerEnergy } from '../db/schema.js';
import { fail } from '../errors.js';
import { DEFAULT_SERVER_ENERGY, curveWatts } from '../metering/power.js';
import { energyBetween } from '../metering/store.js';
import { listNodes, type Engine } from './docker/index.js';
import { guardRunningNodes } from './docker/node-guard.js';
import { listInstances } from './instances.js';

/** A server as placement sees it. `busyCores`: mean cores busy (metering's server line over the last hour). */
export interface ServerLoad {
  id: number; name: string; energy: ServerEnergy;
  cores: number; memoryMb: number;
  busyCores: number; memoryMbReserved: number;
  /** Why its node fails cattery's isolation check (its agent saw an instance task without no-new-privileges, or the
   * node guard's task is not running on it): nothing is placed there, whatever room it has. */
  isolation?: string;
  /** Why nothing may be placed or moved here though its engine answers: its Swarm node drained, paused or not ready
   * (nodeUnavailable). Its instances are still counted, and a drain may still empty it. */
  unavailable?: string;
}

/** What an instance asks: the memory its limit reserves, and the cores it is expected to keep busy on average. */
export interface Demand { busyCores: number; memoryMb: number }

/** Past this share of its cores a server is full for placement: room for bursts, and the curve is steepest there. */
export const CPU_HEADROOM = 0.8;

const load = (busy: number, cores: number) => (cores > 0 ? Math.min(1, Math.max(0, busy / cores)) : 1);

/** The server's power at its present load. */
export const wattsNow = (s: ServerLoad): number => curveWatts(s.energy, load(s.busyCores, s.cores));

/** What `demand` would add to the server's power, from its curve at its present load. */
export function addedWatts(s: ServerLoad, demand: Pick<Demand, 'busyCores'>): number {
  return curveWatts(s.energy, load(s.busyCores + demand.busyCores, s.cores)) - wattsNow(s);
}

export type Refusal = 'unavailable' | 'isolation' | 'memory' | 'cpu';

/** Why the demand does not fit on the server, or undefined when it does. A server that is not available, or fails
 * the isolation check, takes nothing, whatever its room. */
export function refusal(s: ServerLoad, d: Demand): Refusal | undefined {
  if (s.unavailable !== undefined) return 'unavailable';
  if (s.isolation) return 'isolation';
  if (s.memoryMbReserved + d.memoryMb > s.memoryMb) return 'memory';
  if (s.busyCores + d.busyCores > CPU_HEADROOM * s.cores) return 'cpu';
  return undefined;
}

export interface Placement {
  server: ServerLoad; addedWatts: number;
  /** Every server considered, with what it would add or why it was refused: shown to the administrator. */
  candidates: { name: string; addedWatts: number | null; refused?: Refusal }[];
}

/** The server where `demand` adds the fewest watts, among those it fits on. Ties go to the server with the most memory
 * left, then the lower id (the same answer every time). None fits: CATTERY_ERR_CAPACITY. */
export function place(servers: readonly ServerLoad[], demand: Demand): Placement {
  const candidates = servers.map((s) => {
    const refused = refusal(s, demand);
    return { s, refused, added: refused ? null : addedWatts(s, demand) };
  });
  const fitting = candidates.filter((c) => c.added !== null).sort((a, b) =>
    a.added! - b.added! || (b.s.memoryMb - b.s.memoryMbReserved) - (a.s.memoryMb - a.s.memoryMbReserved) || a.s.id - b.s.id);
  const view = candidates.map((c) => ({ name: c.s.name, addedWatts: c.added, ...(c.refused ? { refused: c.refused } : {}) }));
  const best = fitting[0];
  if (!best) throw fail('CATTERY_ERR_CAPACITY', `no server has room for ${demand.memoryMb} MB and ${demand.busyCores.toFixed(2)} busy cores (${candidates.map((c) => `${c.s.name}: ${c.refused === 'unavailable' ? c.s.unavailable : c.refused}`).join(', ') || 'no server answers'})`);
  return { server: best.s, addedWatts: best.added!, candidates: view };
}

/** An instance on a server, for a consolidation plan. */
export interface Placed extends Demand { slug: string; stateful: boolean }

export interface ConsolidationPlan {
  /** The server left with no instance. */
  empties: string;
  moves: { slug: string; from: string; to: string; stateful: boolean }[];
  /** The servers' power now, after the moves with the emptied server left on at rest, and switched off. */
  wattsNow: number; wattsIdle: number; wattsOff: number;
  /** Energy saved per month (730 h) with the emptied server at rest, and switched off. */
  kWhPerMonthIdle: number; kWhPerMonthOff: number;
}

const HOURS_PER_MONTH = 730;

/** For each server, whether its instances fit on the others (largest memory first, each where it adds the fewest
 * watts), and what that would save. Only plans that save energy once the server is switched off are returned, the
 * best first. The figures are the power curves' at the mean loads: a plan is an estimate to weigh, not a promise. */
export function consolidationPlans(servers: readonly (ServerLoad & { instances: readonly Placed[] })[]): ConsolidationPlan[] {
  const before = servers.reduce((a, s) => a + wattsNow(s), 0);
  const plans: ConsolidationPlan[] = [];
  for (const emptied of servers) {
    const others = servers.filter((s) => s !== emptied).map((s) => ({ ...s }));
    if (others.length === 0) continue;
    const moves: ConsolidationPlan['moves'] = [];
    let ok = true;
    for (const inst of [...emptied.instances].sort((a, b) => b.memoryMb - a.memoryMb || a.slug.localeCompare(b.slug))) {
      let to: ServerLoad;
      try { to = place(others, inst).server; } catch { ok = false; break; }
      const target = others.find((s) => s.id === to.id)!;
      target.busyCores += inst.busyCores;
      target.memoryMbReserved += inst.memoryMb;
      moves.push({ slug: inst.slug, from: emptied.name, to: target.name, stateful: inst.stateful });
    }
    if (!ok) continue;
    const othersAfter = others.reduce((a, s) => a + wattsNow(s), 0);
    // At rest the emptied server still draws its curve at the load it carried besides its instances (the host's own
    // work), which placement cannot move: its idle figure is the curve at that remaining load.
    const rest = curveWatts(emptied.energy, load(Math.max(0, emptied.busyCores - emptied.instances.reduce((a, i) => a + i.busyCores, 0)), emptied.cores));
    const wattsIdle = othersAfter + rest;
    const wattsOff = othersAfter;
    const kWh = (w: number) => Math.round((before - w) * HOURS_PER_MONTH / 100) / 10;
    if (before - wattsOff <= 0) continue;
    plans.push({ empties: emptied.name, moves, wattsNow: before, wattsIdle, wattsOff, kWhPerMonthIdle: kWh(wattsIdle), kWhPerMonthOff: kWh(wattsOff) });
  }
  return plans.sort((a, b) => b.kWhPerMonthOff - a.kWhPerMonthOff || a.empties.localeCompare(b.empties));
}

/** What placement reads of a Swarm node (orchestrator/docker/swarm.ts's NodeView). */
export interface NodeAvailability { server: string | undefined; availability: string; state: string }

/** Why Swarm would not run a new task on this server's node, or undefined when it would (or the server is no swarm
 * node: a plain engine that answers takes instances). An administrator's `docker node update --availability drain`
 * or `pause` says "nothing new here"; a node that is not `ready` (down, disconnected, unknown) cannot start one; a
 * server that no node carries the label of, or a swarm whose manager does not answer (`nodes` undefined), cannot be
 * told to run anything. */
export function nodeUnavailable(server: Pick<Server, 'name' | 'swarmRole'>, nodes: readonly NodeAvailability[] | undefined): string | undefined {
  if (!server.swarmRole) return undefined;
  if (!nodes) return 'the swarm manager does not answer';
  const node = nodes.find((n) => n.server === server.name);
  if (!node) return 'no swarm node carries its label';
  if (node.availability !== 'active') return `its swarm node is set to ${node.availability}`;
  if (node.state !== 'ready') return `its swarm node is ${node.state}`;
  return undefined;
}

// ── The fleet as it is now: engines (cores, memory), metering (busy cores over the last hour), instances ──


export interface FleetDeps { db: Db; catalog: Catalog; engineFor: (s: Server) => Engine; servers: () => Server[] }

const HOUR = 3_600_000;
/** A service never metered yet is expected to keep a tenth of its CPU limit busy. */
const UNMETERED_SHARE = 0.1;

/** Each server whose engine answers, with its load and instances. One that does not answer is left out: nothing is
 * placed on a server cattery cannot reach. */
export async function fleet(d: FleetDeps, now = new Date()): Promise<(ServerLoad & { instances: Placed[] })[]> {
  const rows = energyBetween(d.db, new Date(now.getTime() - HOUR), now);
  const servers = d.servers();
  // The swarm's nodes as its manager sees them, once: a drained, paused or down node takes nothing new.
  const manager = servers.find((s) => s.swarmRole === 'manager');
  const nodes = manager ? await listNodes(d.engineFor(manager)).catch(() => undefined) : undefined;
  const busy = (r: { cpuSeconds: number; seconds: number } | undefined) => (r && r.seconds > 0 ? r.cpuSeconds / r.seconds : undefined);
  const live = listInstances(d.db).filter((i) => i.desired !== 'deleted');
  const out: (ServerLoad & { instances: Placed[] })[] = [];
  // The node guard's tasks, when one is deployed (agent/guard.ts): a swarm server whose node runs none (or an
  // unhealthy one: its rules are not all in place) is refused. Asked of the manager once for the whole fleet.
  const guarded = manager ? await guardRunningNodes(d.engineFor(manager)).catch(() => undefined) : undefined;
  for (const s of servers) {
    const engine = d.engineFor(s);
    let info: { NCPU?: number; MemTotal?: number; Swarm?: { NodeID?: string } };
    try {
      info = await Promise.race([engine.docker.info() as Promise<{ NCPU?: number; MemTotal?: number }>,
        new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('timeout')), engine.timeoutMs).unref())]);
    } catch { continue; }
    const instances: Placed[] = live.filter((i) => i.serverId === s.id).map((i) => {
      const m = d.catalog.services.get(i.service)?.manifest;
      const metered = busy(rows.find((r) => r.scope === 'instance' && r.slug === i.slug && r.serverId === s.id));
      return { slug: i.slug, busyCores: metered ?? (m?.limits.cpus ?? 0) * UNMETERED_SHARE, memoryMb: m?.limits.memoryMb ?? 0, stateful: (m?.volumes.length ?? 0) > 0 };
    });
    const serverBusy = busy(rows.find((r) => r.scope === 'server' && r.serverId === s.id));
    out.push({
      id: s.id, name: s.name, energy: s.energy ?? DEFAULT_SERVER_ENERGY,
      cores: info.NCPU ?? 1, memoryMb: Math.floor((info.MemTotal ?? 0) / 1048576),
      busyCores: serverBusy ?? instances.reduce((a, i) => a + i.busyCores, 0),
      memoryMbReserved: instances.reduce((a, i) => a + i.memoryMb, 0), instances,
      ...(isolationOf(s, info.Swarm?.NodeID, guarded) ? { isolation: isolationOf(s, info.Swarm?.NodeID, guarded)! } : {}),
    });
    const why = nodeUnavailable(s, nodes);
    if (why !== undefined) out.at(-1)!.unavailable = why;
  }
  return out;
}

/** Why a server fails the isolation check, from what its agent measured (servers.isolation) and the guard's tasks. */
export function isolationOf(s: Pick<Server, 'isolation' | 'swarmRole'>, nodeId: string | undefined, guarded: Set<string> | undefined): string | undefined {
  if (s.isolation?.noNewPrivs === 'failed') return `an instance task ran without no-new-privileges (${s.isolation.missing.slice(0, 5).join(', ')})`;
  if (s.swarmRole && guarded && !(nodeId && guarded.has(nodeId))) return 'the node guard is not running (healthy) on its node';
  return undefined;
}

/** What a new instance of `service` asks: its memory limit, and the busy cores its service's instances show. */
export function demandOf(d: Pick<FleetDeps, 'db' | 'catalog'>, service: string, now = new Date()): Demand {
  const m = d.catalog.services.get(service)?.manifest;
  const rows = energyBetween(d.db, new Date(now.getTime() - HOUR), now).filter((r) => r.scope === 'instance' && r.service === service && r.seconds > 0);
  const metered = rows.length ? rows.reduce((a, r) => a + r.cpuSeconds / r.seconds, 0) / rows.length : undefined;
  return { memoryMb: m?.limits.memoryMb ?? 0, busyCores: metered ?? (m?.limits.cpus ?? 0) * UNMETERED_SHARE };
}
