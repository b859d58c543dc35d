// The metering loop: every N seconds, for each server, read each running container's usage (cgroup files through
// its pid; Docker's stats API only as a fallback), the server's CPU time and its power (meter or curve), split the
// energy (energy-model.ts), and record the pass (store.ts). Deltas are taken between passes, so the first pass after
// a start only takes its readings.
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import type { Server, ServerEnergy } from '../db/schema.js';
import { listServers } from '../orchestrator/servers.js';
import type { Logger } from '../log.js';
import { isLocalEndpoint, runningInstanceContainers, type Engine } from '../orchestrator/docker/index.js';
import { HOST_ROOTS, cgroupVersion, readHostCpu, readHostMemory, type Roots } from './cgroup.js';
import type { IdlePolicy } from './energy-model.js';
import { DEFAULT_SERVER_ENERGY, readExternalMeter } from './power.js';
import { findRaplDomains, readRapl, type RaplDomain } from './rapl.js';
import { splitPass, type PowerReading, type ServerState } from './split-pass.js';
import { applyRetention, recordPass, thinCumulative } from './store.js';
import { createUsageReader } from './usage-reader.js';

export type { PowerReading } from './split-pass.js';

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
  /** Servers this loop leaves alone: those whose own `cattery agent` meters them (agent/ingest.ts records their
   * passes), so that no server is counted twice. */
  skipServer?: (s: Server) => boolean;
}

export interface Collector {
  pass(): Promise<PowerReading[]>;
  start(intervalSeconds: number): void;
  stop(): Promise<void>;
  current(): PowerReading[];
  onPower(listener: (r: PowerReading[]) => void): () => void;
  /** A reading made elsewhere (a node's agent, agent/ingest.ts): shown with this loop's own and sent to listeners. */
  publish(reading: PowerReading): void;
  /** Which reader served the last pass: how many containers by cgroup files, how many by the stats API, and how many
   * were left out for a moment (unreadable while others were). */
  readers(): { cgroup: number; stats: number; skipped: number };
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
      if (deps.skipServer?.(server)) continue;
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
      for (const l of listeners) l(current());
    }
    return readings;
  }

  // Readings published by agents, by server: shown until the server's next one, or for a few intervals after the
  // last one (an agent gone quiet is not shown as drawing its last power for ever).
  const published = new Map<number, { reading: PowerReading; at: number }>();
  const PUBLISHED_FOR_MS = 60_000;
  function current(): PowerReading[] {
    const now = Date.now();
    const mine = latest.filter((r) => !published.has(r.serverId));
    const theirs = [...published.values()].filter((p) => now - p.at < PUBLISHED_FOR_MS).map((p) => p.reading);
    return [...mine, ...theirs].sort((a, b) => a.serverId - b.serverId);
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
    current,
    publish(reading) {
      published.set(reading.serverId, { reading, at: Date.now() });
      const now = current();
      for (const l of listeners) l(now);
    },
    onPower(listener) { listeners.add(listener); return () => listeners.delete(listener); },
    readers: () => reader.counts(),
  };
}
