// Figures as people read them: watt-hours and grams of CO2e per server, service, instance or resident over a period,
// each saying whether it was measured or modelled and by which model. No person's name or login in any of them
// but the per-account figure, which only an administrator (or the resident, on their own page) may read.
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { accounts, instances, servers, type ServerEnergy } from '../db/schema.js';
import { fail } from '../errors.js';
import { J_PER_KWH, accountKey, carbon } from './energy-model.js';
import { DEFAULT_SERVER_ENERGY } from './power.js';
import { energyBetween, type EnergyRow } from './store.js';

export type By = 'server' | 'service' | 'instance';

export interface Figure {
  key: string;
  kind: 'server' | 'idle' | 'other' | 'service' | 'instance' | 'account';
  energyWh: number;
  /** Idle energy allocated by the association's policy: apart, never inside energyWh. */
  idleShareWh: number;
  co2eG: { operational: number; embodied: number; total: number };
  cpuSeconds: number;
  meanMemoryBytes: number;
  netBytes: number;
  blockIoBytes: number;
  method: 'measured' | 'modelled';
  model: string;
}

export interface ReportOptions { from: Date; to: Date; gridGPerKwh: number }

const wh = (j: number) => j / 3600;

function profiles(db: Db): Map<number, ServerEnergy & { name: string }> {
  return new Map(db.select().from(servers).all().map((s) => [s.id, { ...(s.energy ?? DEFAULT_SERVER_ENERGY), name: s.name }]));
}

function figure(key: string, kind: Figure['kind'], rows: EnergyRow[], serverTotals: Map<number, EnergyRow>, prof: Map<number, ServerEnergy>, o: ReportOptions, model: string): Figure {
  let energyJ = 0, idleJ = 0, cpu = 0, memSec = 0, sec = 0, net = 0, blk = 0, measured = true, operational = 0, embodied = 0;
  for (const r of rows) {
    energyJ += r.energyJ; idleJ += r.idleShareJ; cpu += r.cpuSeconds; memSec += r.meanMemoryBytes * r.seconds; sec += r.seconds;
    net += r.netBytes; blk += r.blkBytes;
    if (r.measuredSeconds < r.seconds * 0.999) measured = false;
    const server = serverTotals.get(r.serverId);
    const p = prof.get(r.serverId) ?? DEFAULT_SERVER_ENERGY;
    // The server's embodied emissions over the seconds it was metered, shared by this line's part of its energy
    // (idle allocation included, as it stands for capacity the line holds).
    const share = server && server.energyJ > 0 ? (r.energyJ + r.idleShareJ) / server.energyJ : 0;
    const c = carbon(r.energyJ + r.idleShareJ, o.gridGPerKwh, { kgCo2e: p.embodiedKgCo2e, lifeYears: p.serviceLifeYears, seconds: server?.seconds ?? 0, share });
    operational += c.operationalG; embodied += c.embodiedG;
  }
  return {
    key, kind, energyWh: wh(energyJ), idleShareWh: wh(idleJ),
    co2eG: { operational, embodied, total: operational + embodied }, cpuSeconds: cpu, meanMemoryBytes: sec > 0 ? memSec / sec : 0,
    netBytes: net, blockIoBytes: blk, method: measured && rows.length > 0 ? 'measured' : 'modelled',
    model: [model, ...new Set(rows.flatMap((r) => (r.models ?? '').split(',')).filter(Boolean))].filter(Boolean).join(' + '),
  };
}

/** Energy over a period, grouped by server, service or instance; idle and other processes on lines of their own.
 * A caller that groups the same period several ways reads the rows once and passes them. */
export function energyReport(db: Db, by: By, o: ReportOptions, rows: EnergyRow[] = energyBetween(db, o.from, o.to)): { from: string; to: string; gridGCo2ePerKwh: number; figures: Figure[] } {
  const prof = profiles(db);
  const serverTotals = new Map(rows.filter((r) => r.scope === 'server').map((r) => [r.serverId, r]));
  const figures: Figure[] = [];
  const group = (rs: EnergyRow[], keyOf: (r: EnergyRow) => string, kind: Figure['kind'], model: string) => {
    const m = new Map<string, EnergyRow[]>();
    for (const r of rs) m.set(keyOf(r), [...(m.get(keyOf(r)) ?? []), r]);
    for (const [k, list] of m) figures.push(figure(k, kind, list, serverTotals, prof, o, model));
  };
  const name = (id: number) => prof.get(id)?.name ?? String(id);
  if (by === 'server') group(rows.filter((r) => r.scope === 'server'), (r) => name(r.serverId), 'server', '');
  group(rows.filter((r) => r.scope === 'idle'), (r) => (by === 'server' ? name(r.serverId) : 'idle'), 'idle', 'idle-power');
  group(rows.filter((r) => r.scope === 'other'), (r) => (by === 'server' ? name(r.serverId) : 'other'), 'other', 'cpu-share');
  const inst = rows.filter((r) => r.scope === 'instance');
  if (by === 'service') group(inst, (r) => r.service, 'service', 'cpu-share');
  if (by === 'instance') group(inst, (r) => r.slug, 'instance', 'cpu-share');
  figures.sort((a, b) => b.energyWh - a.energyWh);
  return { from: o.from.toISOString(), to: o.to.toISOString(), gridGCo2ePerKwh: o.gridGPerKwh, figures };
}

export function topConsumers(db: Db, o: ReportOptions, limit: number, rows?: EnergyRow[]): Figure[] {
  return energyReport(db, 'instance', o, rows).figures.filter((f) => f.kind === 'instance').slice(0, limit);
}

/** One resident's account: the instance's energy times the account's key (energy-model.ts accountKey). */
export function accountFigure(db: Db, slug: string, username: string, o: ReportOptions): Figure & { keyShare: number } {
  const inst = db.select().from(instances).where(eq(instances.slug, slug)).get();
  if (!inst) throw fail('CATTERY_ERR_NOT_FOUND', `No instance "${slug}"`);
  const acc = db.select().from(accounts).where(and(eq(accounts.instanceId, inst.id), eq(accounts.username, username))).get();
  if (!acc) throw fail('CATTERY_ERR_NOT_FOUND', `No account "${username}" in "${slug}"`);
  const all = db.select().from(accounts).where(eq(accounts.instanceId, inst.id)).all()
    .filter((a) => a.state !== 'deleting').map((a) => ({ bytes: a.usageBytes ?? 0, items: a.usageItems ?? 0 }));
  const key = accountKey({ bytes: acc.usageBytes ?? 0, items: acc.usageItems ?? 0 }, all);
  // Only this instance's line and the servers' own lines (slug ''), which its embodied share needs.
  const rows = [...energyBetween(db, o.from, o.to, { slug }), ...energyBetween(db, o.from, o.to, { slug: '' })];
  const report = energyReport(db, 'instance', o, rows);
  const f = report.figures.find((x) => x.kind === 'instance' && x.key === slug);
  const scale = (n: number) => n * key;
  const base = f ?? figure(slug, 'instance', [], new Map(), new Map(), o, 'cpu-share');
  return {
    ...base, key: `${slug}/${username}`, kind: 'account', keyShare: key,
    energyWh: scale(base.energyWh), idleShareWh: scale(base.idleShareWh),
    co2eG: { operational: scale(base.co2eG.operational), embodied: scale(base.co2eG.embodied), total: scale(base.co2eG.total) },
    cpuSeconds: scale(base.cpuSeconds), meanMemoryBytes: scale(base.meanMemoryBytes), netBytes: scale(base.netBytes), blockIoBytes: scale(base.blockIoBytes),
    method: 'modelled', model: `${base.model} + account-key(storage 50%, items 50%)`,
  };
}

export const kwh = (j: number) => j / J_PER_KWH;
