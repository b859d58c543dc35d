// The metering loop: every N seconds, for each server, read each running container's usage (cgroup files through
// its pid; Docker's stats API only as a fallback), the server's CPU time and its power (meter or curve), split the
// energy (energy-model.ts), and record the pass (store.ts). Deltas are taken between passes, so the first pass after
// a start only takes its readings.
import os from 'node:os';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import type { Server, ServerEnergy } from '../db/schema.js';
import { listServers } from '../orchestrator/servers.js';
import type { Logger } from '../log.js';
import {
  LABEL_INSTANCE, LABEL_SERVICE, containerPid, containerStats, isLocalEndpoint, runningInstanceContainers, type Engine, type Unit,
} from '../orchestrator/docker/index.js';
import { HOST_ROOTS, cgroupPaths, cgroupVersion, containerCgroup, readContainerUsage, readHostCpu, readHostMemory, type ContainerUsage, type HostCpu, type Roots } from './cgroup.js';
import { splitEnergy, type IdlePolicy } from './energy-model.js';
import { DEFAULT_SERVER_ENERGY, curveWatts, modelName, readExternalMeter } from './power.js';
import { findRaplDomains, raplDeltaJoules, readRapl, type RaplDomain } from './rapl.js';
import { applyRetention, recordPass, thinCumulative, type MeterLine } from './store.js';

// Linux reports /proc/stat in USER_HZ ticks, 100 per second on every architecture cattery runs on (sysconf(_SC_CLK_TCK)).
const USER_HZ = 100;
const ZERO_USAGE: ContainerUsage = { cpuNs: 0, netRxBytes: 0, netTxBytes: 0, blkReadBytes: 0, blkWriteBytes: 0, memoryBytes: 0 };

export interface PowerReading {
  serverId: number; server: string; at: string; watts: number; idleWatts: number; load: number;
  method: 'measured' | 'modelled'; model: string;
  instances: { slug: string; service: string; watts: number; idleShareWatts: number }[];
}

export interface CollectorDeps {
  db: Db;
  catalog: Catalog;
  engineFor: (s: Server) => Engine;
  log: Logger;
  idlePolicy: IdlePolicy;
  retentionHours: number;
  hourlyRetentionDays: number;
  roots?: Roots;
  powercapRoot?: string;
  /** Force the stats API (the benchmark's baseline, and engines whose cgroups cattery cannot read). */
  useStatsApi?: boolean;
}

interface ServerState {
  atNs: bigint;
  host?: HostCpu;
  rapl?: number[];
  meterW?: number;
  usage: Map<string, ContainerUsage>;
}

export interface Collector {
  pass(): Promise<PowerReading[]>;
  start(intervalSeconds: number): void;
  stop(): Promise<void>;
  current(): PowerReading[];
  onPower(listener: (r: PowerReading[]) => void): () => void;
  /** Which reader served the last pass: how many containers by cgroup files, how many by the stats API, and how many
   * were left out for a moment (unreadable while others were). */
  readers(): { cgroup: number; stats: number; skipped: number };
}

interface PassFigures {
  server: Server; energy: ServerEnergy; seconds: number; at: Date; containers: Unit[]; usage: Map<string, ContainerUsage>;
  prev: ServerState; rapl: RaplDomain[]; catalog: Catalog; idlePolicy: IdlePolicy;
  host?: HostCpu; hostMem?: { totalBytes: number; availableBytes: number }; raplNow?: number[]; meterW?: number;
}

/** Pure: one server's pass between two readings, as lines of the energy accounts and the power now. */
function splitPass(f: PassFigures): { lines: MeterLine[]; reading: PowerReading } {
  const { server, energy, seconds, at, containers, usage, prev, rapl, host, hostMem, raplNow, meterW } = f;
  const meter = energy.meter;
  const perInstance = containers.filter((c) => usage.has(c.id)).map((c) => {
    const u = usage.get(c.id)!, p = prev.usage.get(c.id);
    // A container new since the last pass (or restarted: counters went back) counts from zero.
    const base = p && p.cpuNs <= u.cpuNs ? p : ZERO_USAGE;
    const service = c.labels[LABEL_SERVICE] ?? '';
    return {
      slug: c.labels[LABEL_INSTANCE]!, service, usage: u,
      cpuSeconds: (u.cpuNs - base.cpuNs) / 1e9,
      net: [Math.max(0, u.netRxBytes - base.netRxBytes), Math.max(0, u.netTxBytes - base.netTxBytes)] as const,
      blk: [Math.max(0, u.blkReadBytes - base.blkReadBytes), Math.max(0, u.blkWriteBytes - base.blkWriteBytes)] as const,
      reservedMemoryMb: f.catalog.services.get(service)?.manifest.limits.memoryMb ?? 0,
    };
  });
  const containersCpu = perInstance.reduce((a, i) => a + i.cpuSeconds, 0);
  let busyCpu: number, load: number;
  if (host && prev.host) {
    const total = host.totalJiffies - prev.host.totalJiffies, idle = host.idleJiffies - prev.host.idleJiffies;
    busyCpu = Math.max(0, total - idle) / USER_HZ;
    load = total > 0 ? (total - idle) / total : 0;
  } else {
    // A remote engine: only its containers are seen; the load is theirs over the machine's CPUs.
    busyCpu = containersCpu;
    load = containersCpu / (seconds * Math.max(1, os.availableParallelism()));
  }
  let serverJ: number, method: 'measured' | 'modelled', model: string;
  if (raplNow && prev.rapl) {
    serverJ = raplDeltaJoules(rapl, prev.rapl, raplNow); method = 'measured'; model = modelName(energy, 'rapl');
  } else if (meterW !== undefined && prev.meterW !== undefined) {
    serverJ = ((meterW + prev.meterW) / 2) * seconds; method = 'measured'; model = modelName(energy, meter!.kind);
  } else {
    serverJ = curveWatts(energy, load) * seconds; method = 'modelled'; model = modelName(energy, null);
  }
  const split = splitEnergy(serverJ, energy.idleWatts, seconds, busyCpu, perInstance, f.idlePolicy);
  const blank = {
    cpuSeconds: 0, memBytes: 0, netRxBytes: 0, netTxBytes: 0, blkReadBytes: 0, blkWriteBytes: 0, idleShareJ: 0, method, model, seconds,
  };
  const hostUsed = hostMem ? hostMem.totalBytes - hostMem.availableBytes : 0;
  const lines: MeterLine[] = [
    { ...blank, scope: 'server', slug: '', service: '', energyJ: serverJ, cpuSeconds: busyCpu, memBytes: hostUsed },
    { ...blank, scope: 'idle', slug: '', service: '', energyJ: split.idleJ },
    { ...blank, scope: 'other', slug: '', service: '', energyJ: split.otherJ, cpuSeconds: Math.max(0, busyCpu - containersCpu) },
    ...perInstance.map((i): MeterLine => ({
      ...blank, scope: 'instance', slug: i.slug, service: i.service, energyJ: split.instances.get(i.slug)!.energyJ,
      idleShareJ: split.instances.get(i.slug)!.idleShareJ, cpuSeconds: i.cpuSeconds, memBytes: i.usage.memoryBytes,
      netRxBytes: i.net[0], netTxBytes: i.net[1], blkReadBytes: i.blk[0], blkWriteBytes: i.blk[1],
    })),
  ];
  const reading: PowerReading = {
    serverId: server.id, server: server.name, at: at.toISOString(), watts: serverJ / seconds, idleWatts: split.idleJ / seconds,
    load, method, model,
    instances: perInstance.map((i) => ({
      slug: i.slug, service: i.service, watts: split.instances.get(i.slug)!.energyJ / seconds,
      idleShareWatts: split.instances.get(i.slug)!.idleShareJ / seconds,
    })),
  };
  return { lines, reading };
}

/** A container's usage from the kernel's cgroup files when its engine is this host's: found by the container's id
 * (cgroup.ts containerCgroup), else through its pid (one inspect, remembered while it runs). Docker's stats API only
 * when the cgroup files cannot be read on this host at all (cattery in a container without the host's /sys/fs/cgroup,
 * a remote engine): a container that is not readable for a moment while others are (just created, restarting, being
 * removed) is left out of this pass. Asking the stats API for it instead waited about a second per container inside
 * dockerd, exactly while a bulk provisioning needed dockerd (issue 15: bench/provision's bulk figure). Its counters
 * are cumulative, so the next pass counts what it used. */
function createUsageReader(opts: { roots: Roots; version: ReturnType<typeof cgroupVersion>; log: Logger; useStatsApi: boolean }) {
  const { roots, version, log } = opts;
  const pids = new Map<string, { pid: number; paths: Map<string, string> }>();
  let counts = { cgroup: 0, stats: 0, skipped: 0 };
  /** Whether this host's cgroup files have served a container: then one that cannot be read is a moment's state. */
  let cgroupWorks = false;
  async function read(engine: Engine, id: string, local: boolean): Promise<ContainerUsage | undefined> {
    if (local && !opts.useStatsApi) {
      try {
        const found = containerCgroup(roots, version, id);
        let known = found ?? pids.get(id);
        if (known === undefined) {
          const pid = await containerPid(engine, id);
          known = { pid, paths: cgroupPaths(roots, pid) };
          pids.set(id, known);
        }
        const u = readContainerUsage(roots, version, known.pid, known.paths);
        counts.cgroup++;
        cgroupWorks = true;
        return u;
      } catch (err) {
        pids.delete(id);
        if (cgroupWorks) {
          counts.skipped++;
          log.debug({ err, id }, 'cgroup files of a container unreadable for now; left out of this pass');
          return undefined;
        }
        log.debug({ err, id }, 'cgroup files unreadable on this host; asking the stats API');
      }
    }
    counts.stats++;
    return containerStats(engine, id);
  }
  return {
    /** Every running container's usage; one that cannot be read is left out of this pass. */
    async readAll(engine: Engine, containers: Unit[], local: boolean): Promise<Map<string, ContainerUsage>> {
      const usage = new Map<string, ContainerUsage>();
      for (const c of containers) {
        try {
          const u = await read(engine, c.id, local);
          if (u) usage.set(c.id, u);
        } catch (err) { log.warn({ err, id: c.id }, 'no usage for a container this pass'); }
      }
      for (const id of pids.keys()) if (!usage.has(id) && !containers.some((c) => c.id === id)) pids.delete(id);
      return usage;
    },
    resetCounts() { counts = { cgroup: 0, stats: 0, skipped: 0 }; },
    counts: () => counts,
  };
}

/** This host's CPU and memory (a local engine only) and the server's meter, read now. */
async function readServerNow(server: Server, energy: ServerEnergy, local: boolean, roots: Roots, rapl: RaplDomain[], log: Logger) {
  const host = local ? readHostCpu(roots) : undefined;
  const hostMem = local ? readHostMemory(roots) : undefined;
  const meter = energy.meter;
  const raplNow = meter?.kind === 'rapl' && rapl.length ? readRapl(rapl) : undefined;
  let meterW: number | undefined;
  if (meter && meter.kind !== 'rapl') {
    try {
      meterW = await readExternalMeter(meter);
    } catch (err) { log.warn({ err, server: server.name }, 'power meter unreadable; the power curve stands in'); }
  }
  return { host, hostMem, raplNow, meterW };
}

export function createCollector(deps: CollectorDeps): Collector {
  const roots = deps.roots ?? HOST_ROOTS;
  const version = cgroupVersion(roots);
  const rapl: RaplDomain[] = findRaplDomains(deps.powercapRoot);
  const states = new Map<number, ServerState>();
  let thinnedDay = '';
  const listeners = new Set<(r: PowerReading[]) => void>();
  let latest: PowerReading[] = [];
  const reader = createUsageReader({ roots, version, log: deps.log, useStatsApi: deps.useStatsApi === true });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  const log = deps.log;

  async function passServer(server: Server, nowNs: bigint, at: Date): Promise<PowerReading | undefined> {
    const engine = deps.engineFor(server);
    const energy: ServerEnergy = server.energy ?? DEFAULT_SERVER_ENERGY;
    const local = isLocalEndpoint(server.dockerEndpoint);
    const containers = await runningInstanceContainers(engine);
    const usage = await reader.readAll(engine, containers, local);
    const { host, hostMem, raplNow, meterW } = await readServerNow(server, energy, local, roots, rapl, log);
    const prev = states.get(server.id);
    states.set(server.id, {
      atNs: nowNs, usage, ...(host ? { host } : {}), ...(raplNow ? { rapl: raplNow } : {}), ...(meterW !== undefined ? { meterW } : {}),
    });
    if (!prev) return undefined;

    const seconds = Number(nowNs - prev.atNs) / 1e9;
    if (seconds <= 0) return undefined;
    const { lines, reading } = splitPass({
      server, energy, seconds, at, containers, usage, prev, rapl, catalog: deps.catalog, idlePolicy: deps.idlePolicy,
      ...(host ? { host } : {}), ...(hostMem ? { hostMem } : {}), ...(raplNow ? { raplNow } : {}), ...(meterW !== undefined ? { meterW } : {}),
    });
    recordPass(deps.db, server.id, at, lines);
    return reading;
  }

  // Passes never overlap (a slow engine, a manual pass during a timed one): each waits for the one before.
  let chain: Promise<unknown> = Promise.resolve();
  function pass(): Promise<PowerReading[]> {
    const next = chain.then(passOnce, passOnce);
    chain = next.catch(() => undefined);
    return next;
  }

  async function passOnce(): Promise<PowerReading[]> {
    reader.resetCounts();
    const nowNs = process.hrtime.bigint();
    const at = new Date();
    const readings: PowerReading[] = [];
    for (const server of listServers(deps.db)) {
      try {
        const r = await passServer(server, nowNs, at);
        if (r) readings.push(r);
      } catch (err) { log.warn({ err, server: server.name }, 'metering pass failed for a server'); }
    }
    applyRetention(deps.db, at, deps.retentionHours, deps.hourlyRetentionDays);
    if (at.toISOString().slice(0, 10) !== thinnedDay) {
      thinnedDay = at.toISOString().slice(0, 10);
      thinCumulative(deps.db, at, deps.hourlyRetentionDays);
    }
    if (readings.length) {
      latest = readings;
      for (const l of listeners) l(readings);
    }
    return readings;
  }

  return {
    pass,
    start(intervalSeconds) {
      const tick = () => {
        if (running) return;
        running = pass().catch((err) => log.error({ err }, 'metering pass failed')).finally(() => { running = undefined; });
      };
      tick();
      timer = setInterval(tick, intervalSeconds * 1000);
      timer.unref();
    },
    async stop() { clearInterval(timer); await running; },
    current: () => latest,
    onPower(listener) { listeners.add(listener); return () => listeners.delete(listener); },
    readers: () => reader.counts(),
  };
}
