// The operations table: one journal of every change asked for (status pending: an intent the reconciler closes once
// the instance shows it) and every action taken (done or failed, with its error). This file is its only writer; the
// journal outlives the instances it speaks of (no foreign key).
import { and, desc, eq, gte, inArray, lte, max, sql } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { operations, type Operation } from '../db/schema.js';

export type OperationStatus = Operation['status'];

export interface Entry {
  slug: string;
  kind: string;
  actor: string;
  /** pending: an intent, closed by the reconciler (closePending); done or failed: finished now. */
  status: OperationStatus;
  detail?: Record<string, unknown> | null | undefined;
  error?: string | null | undefined;
}

export function journal(db: Db, e: Entry): void {
  db.insert(operations).values({
    instanceSlug: e.slug, kind: e.kind, actor: e.actor, status: e.status, detail: e.detail ?? null, error: e.error ?? null,
    finishedAt: e.status === 'pending' || e.status === 'running' ? null : new Date().toISOString(),
  }).run();
}

/** The instance shows what was asked: every intent still open for it is done. */
/** Close the open intents, or only those up to `upToId`: the ones a pass had seen when it read what to do. An intent
 * written while the pass was acting (a restart asked for meanwhile) stays open for the next pass. */
export function closePending(db: Db, slug: string, upToId?: number): void {
  db.update(operations).set({ status: 'done', finishedAt: new Date().toISOString(), error: null })
    .where(and(eq(operations.instanceSlug, slug), eq(operations.status, 'pending'), upToId === undefined ? undefined : lte(operations.id, upToId))).run();
}


/** A pass failed: the open intents say why, and stay open for the next try. */
export function notePendingError(db: Db, slug: string, error: string): void {
  db.update(operations).set({ error }).where(and(eq(operations.instanceSlug, slug), eq(operations.status, 'pending'))).run();
}

/** The newest open restart of this instance (its operation id), if any. */
export function pendingRestart(db: Db, slug: string): number | undefined {
  return db.select({ id: operations.id }).from(operations)
    .where(and(eq(operations.instanceSlug, slug), eq(operations.kind, 'restart'), eq(operations.status, 'pending')))
    .orderBy(desc(operations.id)).limit(1).get()?.id;
}

/** The open restarts up to `upToId` were carried out (by a restart, or by the start that brought the unit up). */
export function closeRestarts(db: Db, slug: string, upToId: number): void {
  db.update(operations).set({ status: 'done', finishedAt: new Date().toISOString(), error: null })
    .where(and(eq(operations.instanceSlug, slug), eq(operations.kind, 'restart'), eq(operations.status, 'pending'), lte(operations.id, upToId))).run();
}

/** The newest journal entry of every instance: what a pass has seen when it reads what to do. */
export function lastOperationIds(db: Db): Map<string, number> {
  const rows = db.select({ slug: operations.instanceSlug, id: max(operations.id) }).from(operations).groupBy(operations.instanceSlug).all();
  return new Map(rows.map((r) => [r.slug, r.id ?? 0]));
}

export function listOperations(db: Db, slug?: string, limit = 100): Operation[] {
  return db.select().from(operations).where(slug ? eq(operations.instanceSlug, slug) : undefined)
    .orderBy(desc(operations.id)).limit(limit).all();
}

/** The newest entry of one of `kinds` for this instance whose detail holds these values (exact JSON equality). */
export function lastEntryWith(db: Db, slug: string, kinds: string[], detail: Record<string, string | number>): string | undefined {
  const conds = Object.entries(detail).map(([k, v]) => sql`json_extract(${operations.detail}, ${`$.${k}`}) = ${v}`);
  return db.select({ kind: operations.kind }).from(operations)
    .where(and(eq(operations.instanceSlug, slug), inArray(operations.kind, kinds), ...conds))
    .orderBy(desc(operations.id)).limit(1).get()?.kind;
}

/** An act that takes a while (an archive, a drop): written as running first, so that others can see it under way,
 * then finished with its outcome. Returns its id. */
export function begin(db: Db, e: Omit<Entry, 'status'>): number {
  return db.insert(operations).values({
    instanceSlug: e.slug, kind: e.kind, actor: e.actor, status: 'running', detail: e.detail ?? null,
  }).returning({ id: operations.id }).get().id;
}

export function finish(db: Db, id: number, outcome: { status: 'done' | 'failed'; error?: string; detail?: Record<string, unknown> }): void {
  db.update(operations).set({
    status: outcome.status, error: outcome.error ?? null, finishedAt: new Date().toISOString(),
    ...(outcome.detail ? { detail: outcome.detail } : {}),
  }).where(eq(operations.id, id)).run();
}

/** The newest finished-with-success entry of `kind` for this slug whose detail holds these values, written at or
 * after `since` (an ISO time). */
export function lastDoneWith(db: Db, slug: string, kind: string, detail: Record<string, string>, since: string): Operation | undefined {
  const conds = Object.entries(detail).map(([k, v]) => sql`json_extract(${operations.detail}, ${`$.${k}`}) = ${v}`);
  return db.select().from(operations)
    .where(and(eq(operations.instanceSlug, slug), eq(operations.kind, kind), eq(operations.status, 'done'), gte(operations.createdAt, since), ...conds))
    .orderBy(desc(operations.id)).limit(1).get();
}

/** Whether an entry of `kind` still running since `since` names `slug` in its detail's `claimedBy` list. */
export function runningClaim(db: Db, kind: string, slug: string, since: string): Operation | undefined {
  return db.select().from(operations).where(and(
    eq(operations.kind, kind), eq(operations.status, 'running'), gte(operations.createdAt, since),
    sql`exists (select 1 from json_each(${operations.detail}, '$.claimedBy') where json_each.value = ${slug})`,
  )).limit(1).get();
}

/** A drop of a volume with no row (housekeeping.ts) holds a claim on the slugs whose instance would use that volume,
 * from the moment it checked that no row claims it until the volume is gone: a new instance of one of those slugs
 * waits (createInstance refuses), so that the drop never removes the data of an instance created meanwhile. The
 * claim lapses after `claimSeconds` should cattery stop mid-drop: the drop's Docker calls each have a deadline
 * far below it. */
export const VOLUME_DROP = { kind: 'volume-drop', claimSeconds: 600 } as const;

export function dropUnderWay(db: Db, slug: string): boolean {
  const since = new Date(Date.now() - VOLUME_DROP.claimSeconds * 1000).toISOString();
  return runningClaim(db, VOLUME_DROP.kind, slug, since) !== undefined;
}
