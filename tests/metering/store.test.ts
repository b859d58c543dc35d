// Rollups and retention on a real SQLite with the real migrations: hourly and daily totals equal the raw samples,
// queries over a period read the right buckets, and retention drops only what is older than allowed.
import t from 'tap';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import { applyRetention, energyBetween, recordPass, thinCumulative, type MeterLine } from '../../src/metering/store.js';
import { energyReport } from '../../src/metering/report.js';

function db() {
  const d = openDb(':memory:');
  applyMigrations(d);
  d.$client.prepare("INSERT INTO servers (id, name, docker_endpoint) VALUES (1, 'local', 'unix:///x')").run();
  return d;
}

const line = (scope: MeterLine['scope'], slug: string, energyJ: number, extra: Partial<MeterLine> = {}): MeterLine => ({
  scope, slug, service: slug ? 'probe' : '', seconds: 10, energyJ, idleShareJ: 0, cpuSeconds: 1, memBytes: 1000, netRxBytes: 5, netTxBytes: 7,
  blkReadBytes: 0, blkWriteBytes: 3, method: 'modelled', model: 'power-curve:linear(50W-200W)', ...extra,
});

t.test('rollups equal the raw samples, across hours and days', async (t) => {
  const d = db();
  const start = Date.parse('2026-11-20T22:00:00Z');
  let seed = 7;
  const rand = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
  // 4 hours across midnight, a pass every 10 minutes, random figures.
  for (let i = 0; i < 24 * 2; i++) {
    const a = rand() * 100, b = rand() * 10, idle = 500, other = rand() * 20;
    recordPass(d, 1, new Date(start + i * 600_000), [
      line('server', '', idle + other + a + b), line('idle', '', idle), line('other', '', other), line('instance', 'a', a, { idleShareJ: 250 }), line('instance', 'b', b, { idleShareJ: 250 }),
    ]);
  }
  const c = d.$client;
  for (const table of ['meter_hourly', 'meter_daily']) {
    const roll = c.prepare(`SELECT scope, slug, SUM(energy_j) e, SUM(idle_share_j) i, SUM(cpu_seconds) cpu, SUM(seconds) s, SUM(net_rx_bytes) rx FROM ${table} GROUP BY scope, slug ORDER BY scope, slug`).all() as { e: number }[];
    const raw = c.prepare('SELECT scope, slug, SUM(energy_j) e, SUM(idle_share_j) i, SUM(cpu_seconds) cpu, SUM(seconds) s, SUM(net_rx_bytes) rx FROM meter_samples GROUP BY scope, slug ORDER BY scope, slug').all() as { e: number }[];
    t.equal(roll.length, raw.length);
    roll.forEach((r, i) => t.ok(Math.abs(r.e - raw[i]!.e) < 1e-6, `${table}: ${JSON.stringify(r)}`));
    t.same(roll.map((r) => ({ ...r, e: 0 })), raw.map((r) => ({ ...r, e: 0 })));
  }
  t.equal((c.prepare('SELECT COUNT(*) n FROM meter_hourly WHERE scope = ?').get('server') as { n: number }).n, 8);
  t.equal((c.prepare('SELECT COUNT(*) n FROM meter_daily WHERE scope = ?').get('server') as { n: number }).n, 2);

  // Any period, to the hour, equals the raw samples inside it: hourly edges, daily middle.
  for (const [from, to] of [['2026-11-20T23:00:00Z', '2026-11-21T01:00:00Z'], ['2026-11-20T00:00:00Z', '2026-11-22T00:00:00Z'], ['2026-11-20T22:00:00Z', '2026-11-21T06:00:00Z']] as const) {
    const rows = energyBetween(d, new Date(from), new Date(to));
    const q = (c.prepare("SELECT SUM(energy_j) e FROM meter_samples WHERE scope = 'server' AND ts >= ? AND ts < ?").get(new Date(from).toISOString(), new Date(to).toISOString()) as { e: number }).e;
    t.ok(Math.abs(rows.find((r) => r.scope === 'server')!.energyJ - q) < 1e-6, `${from} → ${to}`);
    // Conservation holds in the totals too: idle + other + instances = server.
    const sum = rows.filter((r) => r.scope !== 'server').reduce((a, r) => a + r.energyJ, 0);
    t.ok(Math.abs(sum - q) < 1e-6, 'conserved over the period');
  }
  const report = energyReport(d, 'service', { from: new Date('2026-11-20T00:00:00Z'), to: new Date('2026-11-22T00:00:00Z'), gridGPerKwh: 52 });
  const probe = report.figures.find((f) => f.key === 'probe')!;
  t.equal(probe.method, 'modelled');
  t.match(probe.model, /cpu-share \+ power-curve:linear/);
  t.equal(Math.round(probe.idleShareWh * 3600), 500 * 48, 'idle allocation reported apart');
  t.ok(report.figures.some((f) => f.kind === 'idle') && report.figures.some((f) => f.kind === 'other'));
  d.$client.close();
});

t.test('passes recorded out of order (a clock stepping back) still add up', async (t) => {
  const d = db();
  const t0 = Date.parse('2026-11-20T00:30:00Z');
  for (const h of [5, 1, 3, 0, 4, 2]) recordPass(d, 1, new Date(t0 + h * 3_600_000), [line('server', '', 100 + h), line('instance', 'a', 10 + h)]);
  const all = energyBetween(d, new Date('2026-11-20T00:00:00Z'), new Date('2026-11-20T06:00:00Z'));
  t.equal(all.find((r) => r.scope === 'server')!.energyJ, 615);
  const mid = energyBetween(d, new Date('2026-11-20T02:00:00Z'), new Date('2026-11-20T04:00:00Z'));
  t.equal(mid.find((r) => r.scope === 'instance')!.energyJ, 12 + 13);
  d.$client.close();
});

t.test('retention drops only what is older than allowed', async (t) => {
  const d = db();
  const now = new Date('2026-11-22T12:00:00Z');
  for (const hoursAgo of [0.1, 47.9, 48.1, 100, 24 * 800]) recordPass(d, 1, new Date(now.getTime() - hoursAgo * 3_600_000), [line('server', '', 1)]);
  const dropped = applyRetention(d, now, 48, 730);
  t.same(dropped, { samples: 3, hourly: 1 });
  t.equal((d.$client.prepare('SELECT COUNT(*) n FROM meter_samples').get() as { n: number }).n, 2, 'the last 48 hours stay');
  t.equal((d.$client.prepare('SELECT COUNT(*) n FROM meter_hourly').get() as { n: number }).n, 4, 'hourly totals for 730 days');
  t.equal((d.$client.prepare('SELECT COUNT(*) n FROM meter_daily').get() as { n: number }).n, 4, 'daily totals stay for good');
  d.$client.close();
});

t.test('old running totals are thinned to one a day, and old periods still add up to the day', async (t) => {
  const d = db();
  const t0 = Date.parse('2024-01-01T00:00:00Z');
  for (let h = 0; h < 72; h++) recordPass(d, 1, new Date(t0 + h * 3_600_000 + 60_000), [line('server', '', 10), line('instance', 'a', 1)]);
  const before = energyBetween(d, new Date('2024-01-02T00:00:00Z'), new Date('2024-01-03T00:00:00Z'));
  const removed = thinCumulative(d, new Date('2026-02-01T00:00:00Z'), 730);
  t.equal(removed, 2 * 3 * 23, 'all but the last hour of each day, for each line');
  const after = energyBetween(d, new Date('2024-01-02T00:00:00Z'), new Date('2024-01-03T00:00:00Z'));
  t.same(after, before, 'a day-aligned period reads the same');
  t.equal(after.find((r) => r.scope === 'server')!.energyJ, 240);
  d.$client.close();
});
