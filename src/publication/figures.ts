// The month's figures the association publishes, read from the tables where they live (accounts, sign-ups, metering
// rollups, members), each table then put through statistical secrecy (suppression.ts) once, so that the open data and
// the ChatonsInfos files show the same cells hidden. Reads across domains, never writes (as metering/report.ts does).
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { countsByCollegeOn } from '../governance/members.js';
import { J_PER_KWH, accountKey } from '../metering/energy-model.js';
import { energyBetween, type EnergyRow } from '../metering/store.js';
import { DOMINANCE, suppress, type Cell, type Rules, type Suppressed } from './suppression.js';

// Years 2000–2999: cattery publishes nothing older, and Date.UTC reads years 0–99 as 1900–1999.
export const MONTH = /^(2\d{3})-(0[1-9]|1[0-2])$/;

/** The month's bounds, [start, end) in UTC. */
export function monthBounds(month: string): { start: Date; end: Date; first: string; last: string } {
  const m = MONTH.exec(month);
  if (!m) throw new Error(`not a month: ${month}`);
  const y = Number(m[1]), mo = Number(m[2]);
  const start = new Date(Date.UTC(y, mo - 1, 1)), end = new Date(Date.UTC(y, mo, 1));
  return { start, end, first: start.toISOString().slice(0, 10), last: new Date(end.getTime() - 86_400_000).toISOString().slice(0, 10) };
}

export const monthOf = (d: Date) => d.toISOString().slice(0, 7);
export const previousMonth = (d: Date) => monthOf(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 1)));

/** A suppressed table with the names of its rows and columns; the last row and column are the totals. */
export interface Table { rows: string[]; cols: string[]; t: Suppressed }

export interface MonthFigures {
  month: string;
  /** Stocks at the month's end: accounts per service. */
  accounts: Table;
  /** Sign-ups approved in the month per service: alone, with a mediator (the total column: all sign-ups). */
  signups: Table;
  /** Storage used per service, as last measured: only for the month in progress (no history is kept). */
  storage?: Table;
  /** Energy of the service's instances over the month, kWh (idle and other processes apart, as metering reports). */
  energy: Table;
  /** Admitted members per college at the month's end. */
  members: Table;
}

const count = (n: number): Cell => ({ persons: n, value: n, top: n > 0 ? 1 : 0 });

/** Services with anything to say: every catalog service, and any service rows still name. */
function serviceIds(db: Db, catalog: Catalog): string[] {
  const seen = new Set(catalog.services.keys());
  for (const r of db.$client.prepare('SELECT DISTINCT service FROM instances UNION SELECT DISTINCT service FROM meter_lines WHERE scope = \'instance\'').all() as { service: string }[]) {
    if (r.service) seen.add(r.service);
  }
  return [...seen].sort();
}

interface AccountRow { service: string; slug: string; bytes: number | null; items: number | null; userId: number | null; createdAt: string }

/** Every account not on its way out, read once: several months' figures filter it by creation time. */
export function liveAccounts(db: Db): AccountRow[] {
  // Accounts that exist and are not on their way out. A deleted account leaves no row, so a past month counts only
  // the accounts that still exist (docs/publication.md).
  return db.$client.prepare(`SELECT i.service service, i.slug slug, a.usage_bytes bytes, a.usage_items items, a.user_id userId, a.created_at createdAt
    FROM accounts a JOIN instances i ON i.id = a.instance_id WHERE a.state IN ('active', 'suspended', 'pending')`).all() as AccountRow[];
}

/** A month's suppressed tables. `live` (liveAccounts) and the month's `energy` rows (metering's energyByPeriods) may be
 * handed in when several months are read at once. */
export function monthFigures(db: Db, catalog: Catalog, month: string, rules: Rules, now = new Date(), live?: AccountRow[], energy?: EnergyRow[]): MonthFigures {
  if (live !== undefined || energy !== undefined) return computeMonthFigures(db, catalog, month, rules, now, live ?? liveAccounts(db), energy);
  // The public's addresses (open data, ChatonsInfos, the yearly report, federation's reports) ask for the same months
  // again and again, and each costs a read of every account and the month's metering, synchronously on the event
  // loop: anyone could keep the control plane busy by asking. A month's figures are kept a while, per database:
  // ten minutes for a month that is over, one for the month in progress. Published figures lag by that much.
  // The key holds SQLite's count of the rows this connection (cattery's only one) has changed, so any change
  // (an account, a sign-up, a member, a metering pass) shows at the next request: what is kept saves the reads only
  // while nothing changed, at most one computation per metering pass.
  const version = (db.$client.prepare('SELECT total_changes() v').get() as { v: number }).v;
  const key = `${month} ${rules.minGroup} ${catalog.services.size} ${version}`;
  let cache = kept.get(db);
  if (!cache) { cache = new Map(); kept.set(db, cache); }
  const hit = cache.get(key);
  const t = now.getTime();
  if (hit && hit.until > t && hit.at <= t) return hit.value;
  const value = computeMonthFigures(db, catalog, month, rules, now, liveAccounts(db), undefined);
  const over = monthBounds(month).end.getTime() <= t;
  if (cache.size > 400) cache.clear();
  cache.set(key, { at: t, until: t + (over ? 600_000 : 60_000), value });
  return value;
}

const kept = new WeakMap<Db, Map<string, { at: number; until: number; value: MonthFigures }>>();

function computeMonthFigures(db: Db, catalog: Catalog, month: string, rules: Rules, now: Date, live: AccountRow[], energy?: EnergyRow[]): MonthFigures {
  const { start, end } = monthBounds(month);
  const endIso = end.toISOString();
  const services = serviceIds(db, catalog);
  const accounts = live.filter((a) => a.createdAt < endIso);
  const bySvc = new Map<string, AccountRow[]>(services.map((s) => [s, []]));
  for (const a of accounts) bySvc.get(a.service)?.push(a);

  // A cell's persons are distinct residents (one with accounts in two instances of a service counts once); its value
  // is the accounts. A series rule over the months decides which months of each service may be published at all.
  const withheld = seriesWithheld(live, services, month, rules);
  const accountsCells = services.map((s) => {
    const c = personsCell(bySvc.get(s)!);
    // Withheld by the series rule: marked as a small group, so suppress() also hides partners where the total would
    // give it back.
    return [withheld.has(s) && c.persons > 0 ? { ...c, persons: 1 } : c];
  });
  const accountsT: Table = { rows: services, cols: ['accounts'], t: suppress(accountsCells, rules) };
  if (withheld.has(TOTAL)) accountsT.t.hidden[services.length]![0] = true;

  const signupRows = db.$client.prepare(`SELECT services, channel FROM signups WHERE status = 'approved' AND created_at >= ? AND created_at < ?`)
    .all(start.toISOString(), endIso) as { services: string; channel: 'self' | 'mediator' }[];
  const su = new Map(services.map((s) => [s, { self: 0, mediator: 0 }]));
  for (const r of signupRows) for (const s of JSON.parse(r.services) as string[]) { const x = su.get(s); if (x) x[r.channel]++; }
  const signupsT: Table = { rows: services, cols: ['self', 'mediator'], t: suppress(services.map((s) => [count(su.get(s)!.self), count(su.get(s)!.mediator)]), rules) };

  let storageT: Table | undefined;
  if (month === monthOf(now)) {
    storageT = {
      rows: services, cols: ['bytes'],
      t: suppress(services.map((s) => {
        const measured = bySvc.get(s)!.filter((a) => a.bytes !== null);
        return [{ persons: personsOf(measured), value: measured.reduce((x, a) => x + a.bytes!, 0), top: measured.reduce((x, a) => Math.max(x, a.bytes!), 0) }];
      }), rules),
    };
  }

  // Energy per service: its instances' lines; the largest account's part is its instance's energy times the account's
  // key (metering's own per-account model), which the dominance rule needs.
  const energyBySlug = new Map<string, { service: string; j: number }>();
  for (const r of energy ?? energyBetween(db, start, end)) {
    if (r.scope !== 'instance') continue;
    const e = energyBySlug.get(r.slug) ?? { service: r.service, j: 0 };
    e.j += r.energyJ;
    energyBySlug.set(r.slug, e);
  }
  const bySlug = new Map<string, { bytes: number; items: number }[]>();
  for (const a of accounts) {
    const l = bySlug.get(a.slug) ?? [];
    l.push({ bytes: a.bytes ?? 0, items: a.items ?? 0 });
    bySlug.set(a.slug, l);
  }
  const energyCells = services.map((s): Cell[] => {
    let value = 0, top = 0;
    const accs = bySvc.get(s)!;
    for (const [slug, e] of energyBySlug) {
      if (e.service !== s) continue;
      const kwh = e.j / J_PER_KWH;
      value += kwh;
      const inInstance = bySlug.get(slug) ?? [];
      top = Math.max(top, kwh * topKey(inInstance));
    }
    return [{ persons: personsOf(accs), value, top }];
  });
  const energyT: Table = { rows: services, cols: ['kwh'], t: suppress(energyCells, rules) };

  const colleges = countsByCollegeOn(db, endIso);
  const membersT: Table = { rows: colleges.map((c) => c.college || 'members'), cols: ['members'], t: suppress(colleges.map((c) => [count(c.members)]), rules) };

  return { month, accounts: accountsT, signups: signupsT, ...(storageT ? { storage: storageT } : {}), energy: energyT, members: membersT };
}

/** The months a period touches, oldest first (`to` excluded). */
export function monthsOverlapping(from: Date, to: Date): string[] {
  const out: string[] = [];
  for (let m = monthOf(from); monthBounds(m).start < to; m = monthOf(monthBounds(m).end)) out.push(m);
  return out;
}

/** The services whose energy the open data withholds for any month the period touches (or its total, `total`):
 * every other publication of energy per service (the city's chart, the city's view of the energy page and API)
 * withholds them too, so that no page gives back what the open data hides. */
export function energyWithheld(db: Db, catalog: Catalog, from: Date, to: Date, minGroup: number, now = new Date()): { services: Set<string>; total: boolean } {
  const services = new Set<string>();
  let total = false;
  for (const m of monthsOverlapping(from, to)) {
    if (monthBounds(m).start > now) break;
    const e = monthFigures(db, catalog, m, rulesOf(minGroup), now).energy;
    e.rows.forEach((s, i) => { if (e.t.hidden[i]![0]) services.add(s); });
    if (e.t.hidden[e.rows.length]![0]) total = true;
  }
  return { services, total };
}

/** Distinct residents among accounts: by their person (user id); an account with none stands for one person. */
export function personsOf(accs: readonly Pick<AccountRow, 'userId'>[]): number {
  const users = new Set<number>();
  let alone = 0;
  for (const a of accs) { if (a.userId === null) alone++; else users.add(a.userId); }
  return users.size + alone;
}

/** A count of accounts as a cell: its persons, and the most accounts one person holds (the dominance rule's top). */
function personsCell(accs: readonly AccountRow[]): Cell {
  const per = new Map<number, number>();
  for (const a of accs) if (a.userId !== null) per.set(a.userId, (per.get(a.userId) ?? 0) + 1);
  return { persons: personsOf(accs), value: accs.length, top: accs.length ? Math.max(1, ...per.values()) : 0 };
}

const TOTAL = '\u0000total';

/**
 * The series rule: accounts at the end of each month are a series, and the difference of two published months is
 * the residents who came (or left) between them: the sign-ups a month's own table hides. A month's accounts of a
 * service (and their total) are published only if they differ from every month of the series published before by
 * nothing or by at least `minGroup`; otherwise withheld. Read from the first month any account exists, in order, so
 * the answer for a month is the same whichever month is asked and whoever asks. A month's own secrecy (primary:
 * fewer than `minGroup` persons, one person holding most of the accounts) counts too; its secondary suppression is
 * not replayed for earlier months, which only makes the published set assumed larger, and the rule stricter.
 * Known limit: counts come from the accounts that exist now, so deleting accounts changes past months' values.
 */
export function seriesWithheld(live: readonly AccountRow[], services: readonly string[], month: string, rules: Rules): Set<string> {
  const sorted = [...live].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  const withheld = new Set<string>();
  if (!sorted.length) return withheld;
  const first = sorted[0]!.createdAt.slice(0, 7);
  const months: string[] = [];
  for (let m = first; m <= month; m = monthOf(monthBounds(m).end)) months.push(m);
  const keys = [...services, TOTAL];
  const seen = new Map<string, AccountRow[]>(keys.map((k) => [k, []]));
  const publishedValues = new Map<string, number[]>(keys.map((k) => [k, []]));
  let i = 0;
  for (const m of months) {
    const endIso = monthBounds(m).end.toISOString();
    while (i < sorted.length && sorted[i]!.createdAt < endIso) {
      const a = sorted[i++]!;
      seen.get(a.service)?.push(a);
      seen.get(TOTAL)!.push(a);
    }
    for (const k of keys) {
      const c = personsCell(seen.get(k)!);
      const own = c.persons === 0 || (c.persons >= rules.minGroup && !(c.value > 0 && c.top > rules.dominance * c.value));
      const prior = publishedValues.get(k)!;
      const ok = own && prior.every((p) => p === c.value || Math.abs(p - c.value) >= rules.minGroup);
      if (ok) prior.push(c.value);
      if (m === month) { if (!ok) withheld.add(k); }
    }
  }
  return withheld;
}

/** The largest account's key in an instance (metering's accountKey). The key is linear in an account's bytes and
 * items once the instance's sums are known, so the largest is found in one pass and the model asked once for it. */
export function topKey(all: { bytes: number; items: number }[]): number {
  if (!all.length) return 0;
  const sb = all.reduce((a, x) => a + x.bytes, 0) || 1, si = all.reduce((a, x) => a + x.items, 0) || 1;
  let best = all[0]!;
  for (const a of all) if (a.bytes / sb + a.items / si > best.bytes / sb + best.items / si) best = a;
  return accountKey(best, all);
}

export const rulesOf = (minGroup: number): Rules => ({ minGroup, dominance: DOMINANCE });

/** A cell as published: its value, or null when secret. */
export function published(t: Table, row: number, col: number): number | null {
  return t.t.hidden[row]![col] ? null : t.t.cells[row]![col]!.value;
}
