// Dues: payments recorded by hand (cash, cheque, transfer; no payment processor), the period each covers, and each
// member's status on a day: current, in grace, or lapsed. Dates are calendar days (YYYY-MM-DD, UTC): a period ends at
// the end of its last day.
import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import { record } from './journal.js';
import { getMember } from './members.js';
import { getSettings } from './settings.js';
import { duesCategories, duesPayments, members, PAYMENT_METHODS, type DuesPayment, type Member } from './schema.js';

export type DuesStatus = 'current' | 'grace' | 'lapsed';
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The calendar day on the server's clock, in its own time zone (TZ; a French association's server runs on Paris
 * time): a payment at 00:30 in Paris on 1 January is on the new year's day, not on 31 December as UTC would say. */
export const today = (at = new Date()) => {
  const p = new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(at);
  const get = (t: string) => p.find((x) => x.type === t)!.value;
  return `${get('year')}-${get('month')}-${get('day')}`;
};
export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}
const isDay = (s: string) => DAY.test(s) && !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s);

/** From this day of the year (1 October), a yearly payment also covers the next year: dues paid on 31 December buy
 * a year, not a day (the usual rule of associations' statutes: "toute adhésion prise après le 1er octobre vaut pour
 * l'année suivante"). */
export const LATE_IN_YEAR = '10-01';

/** The period a payment covers: the calendar year (the next one when this one is already paid; this one and the next
 * from 1 October), or N days from the payment (from the end of the period already paid, when that is later). */
export function coverage(category: { period: 'year' | 'days'; periodDays: number | null }, paidOn: string, paidUntil: string | null): { from: string; until: string } {
  const start = paidUntil && paidUntil >= paidOn ? addDays(paidUntil, 1) : paidOn;
  if (category.period === 'year') {
    const year = Number(start.slice(0, 4));
    return { from: start, until: `${start.slice(5) >= LATE_IN_YEAR ? year + 1 : year}-12-31` };
  }
  return { from: start, until: addDays(start, (category.periodDays ?? 365) - 1) };
}

export interface StatusInput {
  member: Pick<Member, 'status' | 'admittedAt'>;
  /** The member's category is free (0 €): nothing to pay. */
  free: boolean;
  /** The end of the last period paid, if any. */
  paidUntil: string | null;
  graceDays: number;
  on: string;
}

/** Current while a paid period runs; in grace for graceDays after it ends (a member just admitted, who has not paid
 * yet, is in grace from their admission); lapsed after. Only an admitted member has a dues status. */
export function duesStatus(s: StatusInput): { status: DuesStatus; until: string | null; graceUntil: string | null } {
  if (s.free) return { status: 'current', until: null, graceUntil: null };
  const until = s.paidUntil ?? (s.member.admittedAt ? addDays(s.member.admittedAt.slice(0, 10), -1) : null);
  if (!until) return { status: 'lapsed', until: null, graceUntil: null };
  const graceUntil = addDays(until, s.graceDays);
  if (s.on <= until && s.paidUntil) return { status: 'current', until, graceUntil };
  if (s.on <= graceUntil) return { status: 'grace', until: s.paidUntil, graceUntil };
  return { status: 'lapsed', until: s.paidUntil, graceUntil };
}

export function paidUntilOf(db: Db, memberId: number): string | null {
  return db.select({ u: sql<string | null>`max(${duesPayments.coversUntil})` }).from(duesPayments).where(eq(duesPayments.memberId, memberId)).get()?.u ?? null;
}

/** Every member's dues status on a day, from one query (the dues gate and the lists use it). */
export function statusesOn(db: Db, on = today(), ids?: number[]): Map<number, ReturnType<typeof duesStatus> & { member: Member }> {
  const grace = getSettings(db).graceDays;
  const rows = db.select({
    m: members,
    // Spelled out with their tables: drizzle writes a one-table select's columns bare ("id"), and inside the subquery
    // a bare "id" is the inner table's, which left `until` uncorrelated (every member got the latest payment of all).
    free: sql<number | null>`(select dc."amount_cents" = 0 from "dues_categories" dc where dc."id" = "members"."category_id")`,
    until: sql<string | null>`(select max(dp."covers_until") from "dues_payments" dp where dp."member_id" = "members"."id")`,
  }).from(members).where(and(eq(members.status, 'admitted'), ids ? inArray(members.id, ids) : undefined)).all();
  return new Map(rows.map((r) => [r.m.id, { member: r.m, ...duesStatus({ member: r.m, free: r.free === 1, paidUntil: r.until, graceDays: grace, on }) }]));
}

export interface PaymentInput { amountCents: number; method: (typeof PAYMENT_METHODS)[number]; reference?: string; paidOn?: string; category?: string }

/** A payment received by the treasurer. The amount may differ from the category's (a gift on top, a solidarity
 * rate agreed); the period is the category's. */
export function recordPayment(db: Db, memberId: number, p: PaymentInput, actor: string): DuesPayment {
  if (!(PAYMENT_METHODS as readonly string[]).includes(p.method)) throw fail('CATTERY_ERR_VALIDATION', `method: one of ${PAYMENT_METHODS.join(', ')}`);
  if (!Number.isInteger(p.amountCents) || p.amountCents < 0 || p.amountCents > 10_000_000) throw fail('CATTERY_ERR_VALIDATION', 'amountCents: a whole number of cents from 0 to 100000 €');
  const paidOn = p.paidOn ?? today();
  if (!isDay(paidOn)) throw fail('CATTERY_ERR_VALIDATION', 'paidOn: a date such as 2026-01-31');
  if (paidOn > addDays(today(), 1)) throw fail('CATTERY_ERR_VALIDATION', 'paidOn: a payment is recorded once received, not in advance');
  const reference = (p.reference ?? '').trim();
  if (reference.length > 200 || /\p{Cc}/u.test(reference)) throw fail('CATTERY_ERR_VALIDATION', 'reference: at most 200 characters, no control characters');
  if ((p.method === 'cheque' || p.method === 'transfer') && !reference) throw fail('CATTERY_ERR_VALIDATION', `reference: the ${p.method}'s number or label, so that the accounts can be checked`);
  return db.transaction(() => {
    const m = getMember(db, memberId);
    if (m.status !== 'admitted' && m.status !== 'applicant') throw fail('CATTERY_ERR_CONFLICT', `member ${memberId} is ${m.status}`);
    const cat = p.category
      ? db.select().from(duesCategories).where(eq(duesCategories.slug, p.category)).get()
      : (m.categoryId ? db.select().from(duesCategories).where(eq(duesCategories.id, m.categoryId)).get() : undefined);
    if (!cat) throw fail('CATTERY_ERR_VALIDATION', 'category: the member has no dues category; give one');
    const { from, until } = coverage(cat, paidOn, paidUntilOf(db, memberId));
    const row = db.insert(duesPayments).values({
      memberId, categoryId: cat.id, amountCents: p.amountCents, method: p.method, reference, paidOn, coversFrom: from, coversUntil: until, recordedBy: actor,
    }).returning().get();
    if (m.categoryId !== cat.id) db.update(members).set({ categoryId: cat.id }).where(eq(members.id, memberId)).run();
    record(db, { actor, kind: 'dues.payment', memberId, detail: { paymentId: row.id, amountCents: row.amountCents, method: row.method, coversUntil: until } });
    return row;
  });
}

export function paymentsOf(db: Db, memberId: number): DuesPayment[] {
  return db.select().from(duesPayments).where(eq(duesPayments.memberId, memberId)).orderBy(desc(duesPayments.paidOn), desc(duesPayments.id)).all();
}

export function allPayments(db: Db, year?: string) {
  return db.select({ p: duesPayments, name: members.name, category: duesCategories.slug }).from(duesPayments)
    .innerJoin(members, eq(members.id, duesPayments.memberId)).innerJoin(duesCategories, eq(duesCategories.id, duesPayments.categoryId))
    .where(year ? sql`substr(${duesPayments.paidOn}, 1, 4) = ${year}` : undefined).orderBy(asc(duesPayments.paidOn), asc(duesPayments.id)).all();
}
