// Data generated into a real SQLite (the runtime's, with the real migrations) for the publication tests: instances of
// the catalog's services, residents' accounts made over the last months (many small groups, so that secrecy has work
// to do), sign-ups alone and with a mediator, metering lines, colleges and members. What was generated is returned,
// so that a test knows the true figures without asking the code under test.
import type { Runtime } from '../../src/runtime.js';
import { createInstance } from '../../src/orchestrator/instances.js';
import { recordPass, type MeterLine } from '../../src/metering/store.js';
import { replaceColleges } from '../../src/governance/settings.js';

export interface Truth {
  /** month → service → accounts existing at the month's end. */
  accounts: Map<string, Map<string, number>>;
  /** month → service → [alone, with a mediator]. */
  signups: Map<string, Map<string, [number, number]>>;
  /** month → college → members at the month's end. */
  members: Map<string, Map<string, number>>;
  /** service → each account's bytes (all months: storage is published for the month in progress only). */
  bytes: Map<string, number[]>;
  services: string[];
  months: string[];
}

export const SERVICES = ['files', 'mail', 'pads'] as const;
const monthStart = (m: string) => new Date(`${m}-01T00:00:00Z`);

/** A small deterministic generator (LCG), so a failure can be replayed from its seed. */
export function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % n; };
}

export function lastMonths(now: Date, n: number): string[] {
  return Array.from({ length: n }, (_, i) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - (n - 1 - i), 1)).toISOString().slice(0, 7));
}

export async function generate(rt: Runtime, seed: number, now = new Date()): Promise<Truth> {
  const rand = rng(seed);
  const db = rt.db, c = db.$client;
  const deps = { db, catalog: rt.catalog, portRange: rt.config.portRange, subnetPool: rt.config.subnetPool };
  const inst = new Map<string, { id: number; slug: string }>();
  for (const s of SERVICES) {
    const i = createInstance(deps, { service: s, slug: `${s}-one`, ...(s === 'mail' ? { env: { MAIL_DOMAIN: 'example.org' } } : {}) }, 'test');
    inst.set(s, { id: i.id, slug: i.slug });
  }
  const months = lastMonths(now, 3);
  const truth: Truth = { accounts: new Map(), signups: new Map(), members: new Map(), bytes: new Map(SERVICES.map((s) => [s, []])), services: [...SERVICES], months };
  const addUser = c.prepare("INSERT INTO users (login, name, roles) VALUES (?, ?, '[\"resident\"]')");
  const addAccount = c.prepare("INSERT INTO accounts (instance_id, username, state, quota_mb, usage_bytes, usage_items, user_id, created_at) VALUES (?, ?, 'active', 100, ?, ?, ?, ?)");
  const addSignup = c.prepare("INSERT INTO signups (user_id, services, terms_version, channel, mediator_login, consent_at, status, created_at) VALUES (?, ?, 'v1', ?, ?, ?, 'approved', ?)");
  let n = 0;
  const running = new Map<string, number>(SERVICES.map((s) => [s, 0]));
  for (const m of months) {
    const start = monthStart(m).getTime();
    const su = new Map<string, [number, number]>();
    for (const s of SERVICES) {
      // Some services get a handful (secret), some many; one month may have nobody at all.
      const k = [0, 1 + rand(9), 11 + rand(30), 3 + rand(5)][rand(4)]!;
      const split: [number, number] = [0, 0];
      for (let i = 0; i < k; i++) {
        const login = `u${++n}`;
        const user = addUser.run(login, `Résidente ${n}`).lastInsertRowid as number;
        const at = new Date(start + rand(27) * 86_400_000 + rand(86_400_000)).toISOString();
        // One resident of `files` holds most of its storage: the dominance rule's case.
        const big = s === 'files' && !truth.bytes.get(s)!.length;
        const bytes = big ? 50_000_000 : 1000 + rand(100_000);
        addAccount.run(inst.get(s)!.id, login, bytes, rand(50), user, at);
        truth.bytes.get(s)!.push(bytes);
        const channel = rand(3) === 0 ? 'mediator' : 'self';
        addSignup.run(user, JSON.stringify([s]), channel, channel === 'mediator' ? 'med' : null, at, at);
        split[channel === 'self' ? 0 : 1]++;
      }
      running.set(s, running.get(s)! + k);
      su.set(s, split);
    }
    truth.accounts.set(m, new Map(running));
    truth.signups.set(m, su);
    // Energy: a pass per day, each instance its share.
    for (let d = 0; d < 27; d++) {
      const at = new Date(start + d * 86_400_000 + 3_600_000);
      const lines: MeterLine[] = [];
      for (const s of SERVICES) {
        lines.push({ scope: 'instance', slug: inst.get(s)!.slug, service: s, seconds: 10, energyJ: 1000 + rand(50_000), idleShareJ: 0, cpuSeconds: 1, memBytes: 1000,
          netRxBytes: 0, netTxBytes: 0, blkReadBytes: 0, blkWriteBytes: 0, method: 'modelled', model: 'test' });
      }
      recordPass(db, 1, at, lines);
    }
  }
  // Colleges and members: admitted in the first month, some leaving later.
  replaceColleges(db, [
    { slug: 'habitants', nameFr: 'Habitants', nameEn: 'Residents', weightPct: null },
    { slug: 'salaries', nameFr: 'Salariés', nameEn: 'Staff', weightPct: null },
    { slug: 'ville', nameFr: 'Ville', nameEn: 'City', weightPct: null },
  ], 'test');
  const cols = c.prepare('SELECT id, slug FROM colleges').all() as { id: number; slug: string }[];
  const addMember = c.prepare("INSERT INTO members (kind, name, college_id, status, applied_at, admitted_at, left_at) VALUES ('person', ?, ?, ?, ?, ?, ?)");
  const counts = cols.map((col) => ({ col, n: [25, 4 + rand(6), 1][cols.indexOf(col) % 3]! }));
  const admitted = new Date(monthStart(months[0]!).getTime() + 86_400_000).toISOString();
  const leftAt = new Date(monthStart(months[1]!).getTime() + 2 * 86_400_000).toISOString();
  for (const m of months) truth.members.set(m, new Map(cols.map((col) => [col.slug, 0])));
  for (const { col, n: k } of counts) {
    for (let i = 0; i < k; i++) {
      const leaves = i === 0 && k > 1;
      addMember.run(`Membre ${col.slug} ${i}`, col.id, leaves ? 'resigned' : 'admitted', admitted, admitted, leaves ? leftAt : null);
      for (const m of months) {
        const end = new Date(Date.UTC(Number(m.slice(0, 4)), Number(m.slice(5, 7)), 1)).toISOString();
        if (admitted < end && (!leaves || leftAt >= end)) truth.members.get(m)!.set(col.slug, truth.members.get(m)!.get(col.slug)! + 1);
      }
    }
  }
  return truth;
}
