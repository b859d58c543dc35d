// One server's pass between two readings, as lines of the energy accounts and the power now: the arithmetic of the
// metering loop, shared by the local collector (collector.ts) and the manager's side of `cattery agent`
// (agent/ingest.ts), so that a node measured by its agent is split and conserved exactly as the local server is.
import os from 'node:os';
import type { Catalog } from '../catalog/load.js';
import type { Server, ServerEnergy } from '../db/schema.js';
import { LABEL_INSTANCE, LABEL_SERVICE, type Unit } from '../orchestrator/docker/index.js';
import type { ContainerUsage, HostCpu } from './cgroup.js';
import { splitEnergy, type IdlePolicy } from './energy-model.js';
import { curveWatts, modelName } from './power.js';
import { raplDeltaJoules, type RaplDomain } from './rapl.js';
import type { MeterLine } from './store.js';

// Linux reports /proc/stat in USER_HZ ticks, 100 per second on every architecture cattery runs on (sysconf(_SC_CLK_TCK)).
const USER_HZ = 100;
const ZERO_USAGE: ContainerUsage = { cpuNs: 0, netRxBytes: 0, netTxBytes: 0, blkReadBytes: 0, blkWriteBytes: 0, memoryBytes: 0 };

export interface PowerReading {
  serverId: number; server: string; at: string; watts: number; idleWatts: number; load: number;
  method: 'measured' | 'modelled'; model: string;
  instances: { slug: string; service: string; watts: number; idleShareWatts: number }[];
}

/** What a server looked like at one reading: its containers' cumulative counters, its CPU time and its meter. */
export interface ServerState {
  atNs: bigint;
  host?: HostCpu;
  rapl?: number[];
  meterW?: number;
  usage: Map<string, ContainerUsage>;
}

export interface PassFigures {
  server: Server; energy: ServerEnergy; seconds: number; at: Date; containers: Unit[]; usage: Map<string, ContainerUsage>;
  prev: ServerState; rapl: RaplDomain[]; catalog: Catalog; idlePolicy: IdlePolicy;
  host?: HostCpu; hostMem?: { totalBytes: number; availableBytes: number }; raplNow?: number[]; meterW?: number;
}

/** Pure: one server's pass between two readings, as lines of the energy accounts and the power now. */
export function splitPass(f: PassFigures): { lines: MeterLine[]; reading: PowerReading } {
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

