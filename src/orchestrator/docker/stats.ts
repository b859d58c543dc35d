// Docker's stats API, one-shot, for a container whose cgroup files cattery cannot read (a remote engine, a
// restricted host). Slow on Engine 20.10 (about a second per container), so only a fallback.
import type Docker from 'dockerode';
import { call, type Engine } from './engine.js';

/** What one container used, cumulatively: the same shape metering's cgroup reader gives (metering/cgroup.ts). */
export interface StatsUsage {
  cpuNs: number; memoryBytes: number; netRxBytes: number; netTxBytes: number; blkReadBytes: number; blkWriteBytes: number;
}

interface Stats {
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
  blkio_stats?: { io_service_bytes_recursive?: { op: string; value: number }[] | null };
}

export async function statsUsage(docker: Docker, id: string): Promise<StatsUsage> {
  const s = (await docker.getContainer(id).stats({ stream: false, 'one-shot': true } as { stream: false })) as unknown as Stats;
  const mem = s.memory_stats?.stats ?? {};
  // v1 reports total_cache / cache; v2 reports inactive_file: the same working-set rule as the cgroup reader.
  const cache = mem.total_cache ?? mem.cache ?? mem.inactive_file ?? 0;
  let rx = 0, tx = 0;
  for (const n of Object.values(s.networks ?? {})) { rx += n.rx_bytes ?? 0; tx += n.tx_bytes ?? 0; }
  let r = 0, w = 0;
  for (const e of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    if (/^read$/i.test(e.op)) r += e.value;
    if (/^write$/i.test(e.op)) w += e.value;
  }
  return {
    cpuNs: s.cpu_stats?.cpu_usage?.total_usage ?? 0, memoryBytes: Math.max(0, (s.memory_stats?.usage ?? 0) - cache),
    netRxBytes: rx, netTxBytes: tx, blkReadBytes: r, blkWriteBytes: w,
  };
}

/** The stats API's reading of one container, with the deadline and error translation of every engine call. */
export function containerStats(engine: Engine, id: string): Promise<StatsUsage> {
  return call(engine, 'container stats', (d) => statsUsage(d, id));
}
