// Metering in SQLite: each pass's lines as raw samples (kept briefly) and, in the same transaction, added into the
// hourly and daily totals (kept for years), so a query over a year reads at most 365 rows per line of the accounts.
import type { Db } from '../db/connection.js';
import type { MeterScope } from '../db/schema.js';

export interface MeterLine {
  scope: MeterScope; slug: string; service: string; seconds: number; energyJ: number; idleShareJ: number;
  cpuSeconds: number; memBytes: number; netRxBytes: number; netTxBytes: number; blkReadBytes: number; blkWriteBytes: number;
  method: 'measured' | 'modelled'; model: string;
}

const COLS = 'server_id, scope, slug, service, seconds, energy_j, idle_share_j, cpu_seconds, mem_byte_seconds, net_rx_bytes, net_tx_bytes, blk_read_bytes, blk_write_bytes, method, model';
const ADD = ['seconds', 'energy_j', 'idle_share_j', 'cpu_seconds', 'mem_byte_seconds', 'net_rx_bytes', 'net_tx_bytes', 'blk_read_bytes', 'blk_write_bytes']
  .map((c) => `${c} = ${c} + excluded.${c}`).join(', ');
// An hour with measured and modelled passes in it is modelled as a whole; its model names say both.
const MERGE = "method = CASE WHEN method = excluded.method THEN method ELSE 'modelled' END, model = CASE WHEN model = excluded.model THEN model ELSE 'mixed' END";

export function recordPass(db: Db, serverId: number, at: Date, lines: MeterLine[]): void {
  const c = db.$client;
  const ts = at.toISOString();
  const hour = ts.slice(0, 13), day = ts.slice(0, 10);
  const sample = c.prepare(`INSERT INTO meter_samples (ts, ${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const hourly = c.prepare(`INSERT INTO meter_hourly (bucket, ${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (bucket, server_id, scope, slug) DO UPDATE SET ${ADD}, ${MERGE}`);
  const daily = c.prepare(`INSERT INTO meter_daily (bucket, ${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (bucket, server_id, scope, slug) DO UPDATE SET ${ADD}, ${MERGE}`);
  c.transaction(() => {
    for (const l of lines) {
      const v = [serverId, l.scope, l.slug, l.service, l.seconds, l.energyJ, l.idleShareJ, l.cpuSeconds, l.memBytes * l.seconds,
        Math.round(l.netRxBytes), Math.round(l.netTxBytes), Math.round(l.blkReadBytes), Math.round(l.blkWriteBytes), l.method, l.model];
      sample.run(ts, ...v);
      hourly.run(hour, ...v);
      daily.run(day, ...v);
    }
  })();
}

/** Drop raw samples older than `keepHours`, and hourly totals older than `keepHourlyDays`; daily totals stay. */
export function applyRetention(db: Db, now: Date, keepHours: number, keepHourlyDays: number): { samples: number; hourly: number } {
  const samples = db.$client.prepare('DELETE FROM meter_samples WHERE ts < ?').run(new Date(now.getTime() - keepHours * 3_600_000).toISOString()).changes;
  const hourly = db.$client.prepare('DELETE FROM meter_hourly WHERE bucket < ?').run(new Date(now.getTime() - keepHourlyDays * 86_400_000).toISOString().slice(0, 13)).changes;
  return { samples, hourly };
}

export type GroupBy = 'server' | 'service' | 'instance' | 'scope';

export interface EnergyRow {
  serverId: number; scope: MeterScope; service: string; slug: string;
  energyJ: number; idleShareJ: number; cpuSeconds: number; seconds: number; meanMemoryBytes: number;
  netBytes: number; blkBytes: number; measuredSeconds: number; models: string;
}

/**
 * Totals between two instants, to the hour: whole days come from the daily table, the hours at either end from the
 * hourly one. `from` is rounded down and `to` up to the hour.
 */
export function energyBetween(db: Db, from: Date, to: Date, filter: { serverId?: number; slug?: string } = {}): EnergyRow[] {
  const h0 = from.toISOString().slice(0, 13);
  const toHour = new Date(Math.ceil(to.getTime() / 3_600_000) * 3_600_000).toISOString().slice(0, 13);
  const firstDay = h0.endsWith('T00') ? h0.slice(0, 10) : new Date(Date.parse(`${h0.slice(0, 10)}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
  const lastDay = toHour.slice(0, 10);
  const parts: { table: string; lo: string; hi: string }[] = [];
  if (firstDay < lastDay) {
    parts.push({ table: 'meter_hourly', lo: h0, hi: `${firstDay}T00` });
    parts.push({ table: 'meter_daily', lo: firstDay, hi: lastDay });
    parts.push({ table: 'meter_hourly', lo: `${lastDay}T00`, hi: toHour });
  } else {
    parts.push({ table: 'meter_hourly', lo: h0, hi: toHour });
  }
  const where = [filter.serverId !== undefined ? 'AND server_id = @serverId' : '', filter.slug !== undefined ? 'AND slug = @slug' : ''].join(' ');
  const union = parts.filter((p) => p.lo < p.hi).map((p, i) =>
    `SELECT * FROM ${p.table} WHERE bucket >= @lo${i} AND bucket < @hi${i} ${where}`).join(' UNION ALL ');
  if (!union) return [];
  const params: Record<string, unknown> = { ...filter };
  parts.filter((p) => p.lo < p.hi).forEach((p, i) => { params[`lo${i}`] = p.lo; params[`hi${i}`] = p.hi; });
  const rows = db.$client.prepare(`SELECT server_id serverId, scope, service, slug, SUM(energy_j) energyJ, SUM(idle_share_j) idleShareJ,
      SUM(cpu_seconds) cpuSeconds, SUM(seconds) seconds, SUM(mem_byte_seconds) / MAX(SUM(seconds), 1e-9) meanMemoryBytes,
      SUM(net_rx_bytes + net_tx_bytes) netBytes, SUM(blk_read_bytes + blk_write_bytes) blkBytes,
      SUM(CASE WHEN method = 'measured' THEN seconds ELSE 0 END) measuredSeconds, GROUP_CONCAT(DISTINCT model) models
    FROM (${union}) GROUP BY server_id, scope, slug`).all(params) as EnergyRow[];
  return rows;
}
