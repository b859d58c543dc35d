// What the association configures: its legal form and statutory figures, its colleges, its dues categories, and the
// settings it decides for each service (open to sign-up, members only, default quota). An admin's request and a
// passed decision (actions.ts) both change them through these functions, checked the same way.
import { asc, eq, inArray, notInArray, sql } from 'drizzle-orm';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import { QUOTA_MAX_MB } from '../accounts/accounts.js';
import { record } from './journal.js';
import { checkColleges } from './rules.js';
import { colleges, duesCategories, governanceSettings, members, serviceSettings, type LegalForm } from './schema.js';

export type GovernanceSettings = typeof governanceSettings.$inferSelect;
export type College = typeof colleges.$inferSelect;
export type DuesCategory = typeof duesCategories.$inferSelect;
export type ServiceSetting = typeof serviceSettings.$inferSelect;

export const SLUG = '^[a-z][a-z0-9-]{0,39}$';
const SLUG_RE = new RegExp(SLUG);

export function getSettings(db: Db): GovernanceSettings {
  const row = db.select().from(governanceSettings).where(eq(governanceSettings.id, 1)).get();
  if (row) return row;
  // The migration inserts the row; a database restored without it gets the defaults back.
  db.insert(governanceSettings).values({ id: 1 }).onConflictDoNothing().run();
  return db.select().from(governanceSettings).where(eq(governanceSettings.id, 1)).get()!;
}

export interface SettingsPatch { legalForm?: LegalForm; graceDays?: number; maxProxies?: number; remindDays?: number; blockStops?: boolean; forwardDays?: number }

/** The longest forward the association may decide: a year (the mail service itself refuses more than 366 days). The
 * default, 90 days, is the migration's: a quarter for correspondents to learn the new address. */
export const FORWARD_DAYS_MAX = 365;

const within = (name: string, v: number | undefined, lo: number, hi: number) => {
  if (v !== undefined && !(Number.isInteger(v) && v >= lo && v <= hi)) throw fail('CATTERY_ERR_VALIDATION', `${name}: a whole number from ${lo} to ${hi}`);
};

export function updateSettings(db: Db, patch: SettingsPatch, actor: string, decisionId?: number): GovernanceSettings {
  within('graceDays', patch.graceDays, 0, 365);
  within('maxProxies', patch.maxProxies, 0, 10);
  within('remindDays', patch.remindDays, 0, 365);
  within('forwardDays', patch.forwardDays, 0, FORWARD_DAYS_MAX);
  return db.transaction(() => {
    if (patch.legalForm) checkColleges(patch.legalForm, listColleges(db));
    db.update(governanceSettings).set({ ...patch, updatedAt: new Date().toISOString() }).where(eq(governanceSettings.id, 1)).run();
    record(db, { actor, kind: 'settings.update', pollId: decisionId ?? null, detail: { ...patch } });
    return getSettings(db);
  });
}

export function listColleges(db: Db): College[] {
  return db.select().from(colleges).orderBy(asc(colleges.id)).all();
}

export interface CollegeInput { slug: string; nameFr: string; nameEn: string; weightPct: number | null }

/** The whole set of colleges at once, so that the statutes' rules are checked on the configuration as it will be
 * (three SCIC colleges cannot be added one by one). A college that still has members cannot be removed. */
export function replaceColleges(db: Db, input: CollegeInput[], actor: string): College[] {
  const seen = new Set<string>();
  for (const c of input) {
    if (!SLUG_RE.test(c.slug)) throw fail('CATTERY_ERR_VALIDATION', `college slug "${c.slug}": lower-case letters, digits and dashes`);
    if (seen.has(c.slug)) throw fail('CATTERY_ERR_VALIDATION', `college "${c.slug}" is listed twice`);
    seen.add(c.slug);
    if (!c.nameFr.trim() || !c.nameEn.trim()) throw fail('CATTERY_ERR_VALIDATION', `college "${c.slug}": a name in French and in English`);
  }
  return db.transaction(() => {
    checkColleges(getSettings(db).legalForm, input);
    const slugs = input.map((c) => c.slug);
    const leaving = db.select({ id: colleges.id, slug: colleges.slug }).from(colleges)
      .where(slugs.length ? notInArray(colleges.slug, slugs) : undefined).all();
    if (leaving.length) {
      const used = db.select({ n: sql<number>`count(*)` }).from(members).where(inArray(members.collegeId, leaving.map((c) => c.id))).get()!.n;
      if (used > 0) throw fail('CATTERY_ERR_CONFLICT', `college ${leaving.map((c) => c.slug).join(', ')} still has members: move them first`);
      db.delete(colleges).where(inArray(colleges.id, leaving.map((c) => c.id))).run();
    }
    for (const c of input) {
      db.insert(colleges).values(c).onConflictDoUpdate({ target: colleges.slug, set: { nameFr: c.nameFr, nameEn: c.nameEn, weightPct: c.weightPct } }).run();
    }
    record(db, { actor, kind: 'colleges.replace', detail: { colleges: input.map((c) => ({ slug: c.slug, weightPct: c.weightPct })) } });
    return listColleges(db);
  });
}

export function listCategories(db: Db): DuesCategory[] {
  return db.select().from(duesCategories).orderBy(asc(duesCategories.amountCents), asc(duesCategories.id)).all();
}

export interface CategoryInput { slug: string; nameFr: string; nameEn: string; amountCents: number; period: 'year' | 'days'; periodDays?: number | null }

export function upsertCategory(db: Db, c: CategoryInput, actor: string): DuesCategory {
  if (!SLUG_RE.test(c.slug)) throw fail('CATTERY_ERR_VALIDATION', `category slug "${c.slug}": lower-case letters, digits and dashes`);
  within('amountCents', c.amountCents, 0, 10_000_000);
  if (c.period === 'days') within('periodDays', c.periodDays ?? undefined, 1, 3660);
  if (c.period === 'days' && !c.periodDays) throw fail('CATTERY_ERR_VALIDATION', 'periodDays: needed when the period is a number of days');
  const periodDays = c.period === 'days' ? c.periodDays! : null;
  const row = { slug: c.slug, nameFr: c.nameFr, nameEn: c.nameEn, amountCents: c.amountCents, period: c.period, periodDays };
  db.insert(duesCategories).values(row).onConflictDoUpdate({ target: duesCategories.slug, set: row }).run();
  record(db, { actor, kind: 'dues.category', detail: row });
  return db.select().from(duesCategories).where(eq(duesCategories.slug, c.slug)).get()!;
}

export function serviceSettingsMap(db: Db): Map<string, ServiceSetting> {
  return new Map(db.select().from(serviceSettings).all().map((s) => [s.service, s]));
}

export interface ServicePatch { openForSignup?: boolean; membersOnly?: boolean; defaultQuotaMb?: number | null }

/** What the association decided for a service, over what its manifest says. */
export function setServiceSettings(db: Db, catalog: Catalog, service: string, patch: ServicePatch, actor: string, decisionId?: number): ServiceSetting {
  if (!catalog.services.has(service)) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', service);
  if (patch.defaultQuotaMb !== undefined && patch.defaultQuotaMb !== null) within('defaultQuotaMb', patch.defaultQuotaMb, 1, QUOTA_MAX_MB);
  return db.transaction(() => {
    db.insert(serviceSettings).values({ service, membersOnly: false }).onConflictDoNothing().run();
    db.update(serviceSettings).set({ ...patch, updatedAt: new Date().toISOString() }).where(eq(serviceSettings.service, service)).run();
    record(db, { actor, kind: 'service.settings', pollId: decisionId ?? null, detail: { service, ...patch } });
    return db.select().from(serviceSettings).where(eq(serviceSettings.service, service)).get()!;
  });
}
