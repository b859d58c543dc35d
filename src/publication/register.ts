// The register of requests from authorities: administrators record each one (publication/schema.ts); the public
// page shows how many were received per year and per kind, nothing else: no day, no authority, no answer per
// request, no note. Counts of requests, not of persons: statistical secrecy does not apply (a transparency report
// states "one judicial requisition in 2026" on purpose).
import { asc } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import { authorityRequests, REQUEST_TYPES, type Answer, type AuthorityKind, type AuthorityRequest, type RequestType } from './schema.js';

export interface RequestInput { receivedOn: string; type: RequestType; authority: AuthorityKind; answer: Answer; note?: string }

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A real calendar day, not after today (UTC) and not before 1990 (a typo, not a request). */
export function validDay(day: string, now = new Date()): boolean {
  const m = DAY.exec(day);
  if (!m) return false;
  const d = new Date(`${day}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === day && Number(m[1]) >= 1990 && day <= now.toISOString().slice(0, 10);
}

export function recordRequest(db: Db, input: RequestInput, actor: string, now = new Date()): AuthorityRequest {
  if (!validDay(input.receivedOn, now)) throw fail('CATTERY_ERR_VALIDATION', 'receivedOn: a day (YYYY-MM-DD) between 1990 and today');
  return db.insert(authorityRequests).values({
    receivedOn: input.receivedOn, type: input.type, authority: input.authority, answer: input.answer, note: input.note ?? '', recordedBy: actor,
  }).returning().get();
}

/** Every request, notes included: for administrators only (the permission table says so). */
export const listRequests = (db: Db): AuthorityRequest[] =>
  db.select().from(authorityRequests).orderBy(asc(authorityRequests.receivedOn), asc(authorityRequests.id)).all();

export interface YearCounts { year: number; byType: Record<RequestType, number>; total: number }

/** What the public sees: per year (newest first), the number of requests of each kind. */
export function registerCounts(db: Db): YearCounts[] {
  const rows = db.$client.prepare('SELECT substr(received_on, 1, 4) AS year, type, COUNT(*) AS n FROM authority_requests GROUP BY year, type').all() as { year: string; type: RequestType; n: number }[];
  const years = new Map<number, YearCounts>();
  for (const r of rows) {
    const y = Number(r.year);
    const c = years.get(y) ?? { year: y, byType: Object.fromEntries(REQUEST_TYPES.map((t) => [t, 0])) as Record<RequestType, number>, total: 0 };
    c.byType[r.type] += r.n;
    c.total += r.n;
    years.set(y, c);
  }
  return [...years.values()].sort((a, b) => b.year - a.year);
}
