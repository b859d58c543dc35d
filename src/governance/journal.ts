// The governance journal: one line per thing that happened in the association's life, with who did it. Its only
// writer; kept for good, read back per member (their own record) and per poll.
import { and, asc, desc, eq } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { governanceJournal, type GovernanceEntry } from './schema.js';

export interface GovEntry {
  actor: string;
  kind: string;
  memberId?: number | null;
  pollId?: number | null;
  meetingId?: number | null;
  detail?: Record<string, unknown> | null;
}

export function record(db: Db, e: GovEntry): void {
  db.insert(governanceJournal).values({
    actor: e.actor, kind: e.kind, memberId: e.memberId ?? null, pollId: e.pollId ?? null, meetingId: e.meetingId ?? null, detail: e.detail ?? null,
  }).run();
}

export function memberHistory(db: Db, memberId: number): GovernanceEntry[] {
  return db.select().from(governanceJournal).where(eq(governanceJournal.memberId, memberId)).orderBy(asc(governanceJournal.id)).all();
}

export function recentEntries(db: Db, limit = 200, kind?: string): GovernanceEntry[] {
  return db.select().from(governanceJournal).where(kind ? and(eq(governanceJournal.kind, kind)) : undefined)
    .orderBy(desc(governanceJournal.id)).limit(limit).all();
}
