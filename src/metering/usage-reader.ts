// Reading containers' usage on a host: cgroup files first, Docker's stats API only as a fallback. Shared by the local
// collector (collector.ts) and `cattery agent` on a node (agent/agent.ts).
import type { Logger } from '../log.js';
import { containerPid, containerStats, type Engine, type Unit } from '../orchestrator/docker/index.js';
import { cgroupPaths, containerCgroup, readContainerUsage, type cgroupVersion, type ContainerUsage, type Roots } from './cgroup.js';

/** A container's usage from the kernel's cgroup files when its engine is this host's: found by the container's id
 * (cgroup.ts containerCgroup), else through its pid (one inspect, remembered while it runs). Docker's stats API only
 * when the cgroup files cannot be read on this host at all (cattery in a container without the host's /sys/fs/cgroup,
 * a remote engine): a container that is not readable for a moment while others are (just created, restarting, being
 * removed) is left out of this pass. Asking the stats API for it instead waited about a second per container inside
 * dockerd, exactly while a bulk provisioning needed dockerd (issue 15: bench/provision's bulk figure). Its counters
 * are cumulative, so the next pass counts what it used. */
export function createUsageReader(opts: { roots: Roots; version: ReturnType<typeof cgroupVersion>; log: Logger; useStatsApi: boolean }) {
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

export type UsageReader = ReturnType<typeof createUsageReader>;
