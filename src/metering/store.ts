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

const SUMS: [string, string][] = [['seconds', 'seconds'], ['energy_j', 'energy'], ['idle_share_j', 'idle'], ['cpu_seconds', 'cpu'], ['mem_byte_seconds', 'mem'],
  ['net_rx_bytes', 'rx'], ['net_tx_bytes', 'tx'], ['blk_read_bytes', 'br'], ['blk_write_bytes', 'bw']];

// A pass runs every few seconds for months: its statements are prepared once per database.
const statements = new WeakMap<Db, ReturnType<typeof prepare>>();

function prepare(db: Db) {
  const c = db.$client;
  const sample = c.prepare(`INSERT INTO meter_samples (ts, ${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const hourly = c.prepare(`INSERT INTO meter_hourly (bucket, ${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (bucket, server_id, scope, slug) DO UPDATE SET ${ADD}, ${MERGE}`);
  const daily = c.prepare(`INSERT INTO meter_daily (bucket, ${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (bucket, server_id, scope, slug) DO UPDATE SET ${ADD}, ${MERGE}`);
  const cumulative = c.prepare(`INSERT INTO meter_cumulative (bucket, ${COLS}, measured_seconds)
    SELECT @bucket, @serverId, @scope, @slug, @service, ${SUMS.map(([col, p]) => `COALESCE(p.${col}, 0) + @${p}`).join(', ')}, @method, @model,
      COALESCE(p.measured_seconds, 0) + @measured
    FROM (SELECT 1) LEFT JOIN (SELECT * FROM meter_cumulative WHERE server_id = @serverId AND scope = @scope AND slug = @slug AND bucket < @bucket
      ORDER BY bucket DESC LIMIT 1) p WHERE true
    ON CONFLICT (server_id, scope, slug, bucket) DO UPDATE SET ${SUMS.map(([col, p]) => `${col} = ${col} + @${p}`).join(', ')},
      measured_seconds = measured_seconds + @measured, ${MERGE}`);
  // A pass recorded into an hour older than the line's latest (the clock stepped back, a late import) must reach the
  // later running totals too; in the usual order there are none and this is one index probe.
  const later = c.prepare(`UPDATE meter_cumulative SET ${SUMS.map(([col, p]) => `${col} = ${col} + @${p}`).join(', ')}, measured_seconds = measured_seconds + @measured
    WHERE server_id = @serverId AND scope = @scope AND slug = @slug AND bucket > @bucket`);
  const line = c.prepare(`INSERT INTO meter_lines (server_id, scope, slug, service, first_bucket, last_bucket) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (server_id, scope, slug) DO UPDATE SET first_bucket = MIN(first_bucket, excluded.first_bucket),
      last_bucket = MAX(last_bucket, excluded.last_bucket), service = excluded.service`);
  return { sample, hourly, daily, cumulative, later, line };
}

export function recordPass(db: Db, serverId: number, at: Date, lines: MeterLine[]): void {
  let st = statements.get(db);
  if (!st) { st = prepare(db); statements.set(db, st); }
  const { sample, hourly, daily, cumulative, later, line } = st;
  const ts = at.toISOString();
  const hour = ts.slice(0, 13), day = ts.slice(0, 10);
  db.$client.transaction(() => {
    for (const l of lines) {
      const v = [serverId, l.scope, l.slug, l.service, l.seconds, l.energyJ, l.idleShareJ, l.cpuSeconds, l.memBytes * l.seconds,
        Math.round(l.netRxBytes), Math.round(l.netTxBytes), Math.round(l.blkReadBytes), Math.round(l.blkWriteBytes), l.method, l.model];
      sample.run(ts, ...v);
      hourly.run(hour, ...v);
      daily.run(day, ...v);
      const sums = {
        bucket: hour, serverId, scope: l.scope, slug: l.slug, seconds: l.seconds, energy: l.energyJ, idle: l.idleShareJ,
        cpu: l.cpuSeconds, mem: l.memBytes * l.seconds, rx: Math.round(l.netRxBytes), tx: Math.round(l.netTxBytes), br: Math.round(l.blkReadBytes),
        bw: Math.round(l.blkWriteBytes), measured: l.method === 'measured' ? l.seconds : 0,
      };
      cumulative.run({ ...sums, service: l.service, method: l.method, model: l.model });
      later.run(sums);
      line.run(serverId, l.scope, l.slug, l.service, hour, hour);
    }
  })();
}

/** Drop raw samples older than `keepHours`, and hourly totals older than `keepHourlyDays`; daily totals stay. */
export function applyRetention(db: Db, now: Date, keepHours: number, keepHourlyDays: number): { samples: number; hourly: number } {
  const samples = db.$client.prepare('DELETE FROM meter_samples WHERE ts < ?').run(new Date(now.getTime() - keepHours * 3_600_000).toISOString()).changes;
  const hourly = db.$client.prepare('DELETE FROM meter_hourly WHERE bucket < ?').run(new Date(now.getTime() - keepHourlyDays * 86_400_000).toISOString().slice(0, 13)).changes;
  return { samples, hourly };
}

/** Running totals older than `keepHourlyDays` keep one row per line and day (the day's last), so old periods are
 * read to the day, exactly. Scans the old rows: run it once a day, not every pass. */
export function thinCumulative(db: Db, now: Date, keepHourlyDays: number): number {
  const cut = new Date(now.getTime() - keepHourlyDays * 86_400_000).toISOString().slice(0, 13);
  return db.$client.prepare(`DELETE FROM meter_cumulative WHERE bucket < ? AND bucket != (SELECT MAX(c2.bucket) FROM meter_cumulative c2
    WHERE c2.server_id = meter_cumulative.server_id AND c2.scope = meter_cumulative.scope AND c2.slug = meter_cumulative.slug
      AND c2.bucket >= substr(meter_cumulative.bucket, 1, 10) AND c2.bucket < substr(meter_cumulative.bucket, 1, 10) || 'U')`).run(cut).changes;
}

export type GroupBy = 'server' | 'service' | 'instance' | 'scope';

export interface EnergyRow {
  serverId: number; scope: MeterScope; service: string; slug: string;
  energyJ: number; idleShareJ: number; cpuSeconds: number; seconds: number; meanMemoryBytes: number;
  netBytes: number; blkBytes: number; measuredSeconds: number; models: string;
}

/**
 * Totals between two instants, to the hour (`from` rounded down, `to` up): for each line, its running total at the
 * end minus its running total at the start. Two index lookups per line, whatever the period.
 */
export function energyBetween(db: Db, from: Date, to: Date, filter: { serverId?: number; slug?: string } = {}): EnergyRow[] {
  const lo = from.toISOString().slice(0, 13);
  const hi = new Date(Math.ceil(to.getTime() / 3_600_000) * 3_600_000).toISOString().slice(0, 13);
  const c = db.$client;
  const lines = c.prepare(`SELECT server_id serverId, scope, slug, service FROM meter_lines WHERE first_bucket < @hi AND last_bucket >= @lo
    ${filter.serverId !== undefined ? 'AND server_id = @serverId' : ''} ${filter.slug !== undefined ? 'AND slug = @slug' : ''}`)
    .all({ lo, hi, ...filter }) as { serverId: number; scope: MeterScope; slug: string; service: string }[];
  const at = c.prepare(`SELECT seconds, energy_j, idle_share_j, cpu_seconds, mem_byte_seconds, net_rx_bytes + net_tx_bytes net,
      blk_read_bytes + blk_write_bytes blk, measured_seconds, model
    FROM meter_cumulative WHERE server_id = ? AND scope = ? AND slug = ? AND bucket < ? ORDER BY bucket DESC LIMIT 1`);
  type At = { seconds: number; energy_j: number; idle_share_j: number; cpu_seconds: number; mem_byte_seconds: number; net: number; blk: number; measured_seconds: number; model: string };
  const zero: At = { seconds: 0, energy_j: 0, idle_share_j: 0, cpu_seconds: 0, mem_byte_seconds: 0, net: 0, blk: 0, measured_seconds: 0, model: '' };
  const out: EnergyRow[] = [];
  for (const l of lines) {
    const end = (at.get(l.serverId, l.scope, l.slug, hi) as At | undefined) ?? zero;
    const start = (at.get(l.serverId, l.scope, l.slug, lo) as At | undefined) ?? zero;
    const seconds = end.seconds - start.seconds;
    if (seconds <= 0) continue;
    out.push({
      serverId: l.serverId, scope: l.scope, service: l.service, slug: l.slug, seconds,
      energyJ: end.energy_j - start.energy_j, idleShareJ: end.idle_share_j - start.idle_share_j, cpuSeconds: end.cpu_seconds - start.cpu_seconds,
      meanMemoryBytes: (end.mem_byte_seconds - start.mem_byte_seconds) / seconds, netBytes: end.net - start.net, blkBytes: end.blk - start.blk,
      measuredSeconds: end.measured_seconds - start.measured_seconds, models: end.model,
    });
  }
  return out;
}

/**
 * Totals over consecutive periods [bounds[0], bounds[1]), [bounds[1], bounds[2])…, each exactly what `energyBetween`
 * gives for it, but reading each line's running total once per bound instead of twice per period: a chart of 24
 * months reads 25 totals per line, not 48. Bounds ascending; rounded as energyBetween rounds (the first down to the
 * hour, the others up).
 */
export function energyByPeriods(db: Db, bounds: Date[]): EnergyRow[][] {
  if (bounds.length < 2) return [];
  const keys = bounds.map((b, k) => (k === 0 ? b.toISOString().slice(0, 13) : new Date(Math.ceil(b.getTime() / 3_600_000) * 3_600_000).toISOString().slice(0, 13)));
  const c = db.$client;
  const lines = c.prepare(`SELECT server_id serverId, scope, slug, service FROM meter_lines WHERE first_bucket < ? AND last_bucket >= ?`)
    .all(keys[keys.length - 1], keys[0]) as { serverId: number; scope: MeterScope; slug: string; service: string }[];
  const at = c.prepare(`SELECT seconds, energy_j, idle_share_j, cpu_seconds, mem_byte_seconds, net_rx_bytes + net_tx_bytes net,
      blk_read_bytes + blk_write_bytes blk, measured_seconds, model
    FROM meter_cumulative WHERE server_id = ? AND scope = ? AND slug = ? AND bucket < ? ORDER BY bucket DESC LIMIT 1`);
  type At = { seconds: number; energy_j: number; idle_share_j: number; cpu_seconds: number; mem_byte_seconds: number; net: number; blk: number; measured_seconds: number; model: string };
  const zero: At = { seconds: 0, energy_j: 0, idle_share_j: 0, cpu_seconds: 0, mem_byte_seconds: 0, net: 0, blk: 0, measured_seconds: 0, model: '' };
  const out: EnergyRow[][] = bounds.slice(1).map(() => []);
  for (const l of lines) {
    const totals = keys.map((k) => (at.get(l.serverId, l.scope, l.slug, k) as At | undefined) ?? zero);
    for (let i = 0; i < out.length; i++) {
      const start = totals[i]!, end = totals[i + 1]!;
      const seconds = end.seconds - start.seconds;
      if (seconds <= 0) continue;
      out[i]!.push({
        serverId: l.serverId, scope: l.scope, service: l.service, slug: l.slug, seconds,
        energyJ: end.energy_j - start.energy_j, idleShareJ: end.idle_share_j - start.idle_share_j, cpuSeconds: end.cpu_seconds - start.cpu_seconds,
        meanMemoryBytes: (end.mem_byte_seconds - start.mem_byte_seconds) / seconds, netBytes: end.net - start.net, blkBytes: end.blk - start.blk,
        measuredSeconds: end.measured_seconds - start.measured_seconds, models: end.model,
      });
    }
  }
  return out;
}

/** Each line's totals since metering began, from the daily rollups, with its server's name. */
export interface LineTotal { server: string; scope: string; slug: string; service: string; e: number; i: number; c: number }

export function totalsByLine(db: Db): LineTotal[] {
  return db.$client.prepare(`SELECT s.name server, scope, slug, service, SUM(energy_j) e, SUM(idle_share_j) i, SUM(cpu_seconds) c
    FROM meter_daily d JOIN servers s ON s.id = d.server_id GROUP BY s.name, scope, slug`).all() as LineTotal[];
}
