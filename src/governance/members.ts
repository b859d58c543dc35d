// Member life: application, admission by the board, refusal, resignation, exclusion (with its reason and the decision
// that made it). Every step is journaled. The city sees only counts per college (countsByCollege), never a name.
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { users } from '../db/schema.js';
import { fail } from '../errors.js';
import { statusesOn, today } from './dues.js';
import { memberHistory, record } from './journal.js';
import { listColleges } from './settings.js';
import { colleges, duesCategories, members, pollVoters, polls, type Member, type MemberStatus } from './schema.js';

export interface MemberInput {
  kind: 'person' | 'organisation';
  name: string;
  representative?: string | null | undefined;
  email?: string | null | undefined;
  userId?: number | null | undefined;
  college?: string | null | undefined;
  category?: string | null | undefined;
}

const EMAIL = /^[^\s@<>()[\]\\,;:"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$/;

function checkText(field: string, v: string | null | undefined, max: number, required: boolean): string | null {
  // One spelling per text (NFC): "é" typed two ways is one name, as a reader sees it.
  const s = v?.trim().normalize('NFC') ?? '';
  if (!s) { if (required) throw fail('CATTERY_ERR_VALIDATION', `${field}: required`); return null; }
  if (s.length > max) throw fail('CATTERY_ERR_VALIDATION', `${field}: at most ${max} characters`);
  // Control characters would break the CSV exports and the printed lists; invisible format characters (a right-to-left
  // override) would make a name read as another.
  if (/[\p{Cc}\p{Cf}]/u.test(s)) throw fail('CATTERY_ERR_VALIDATION', `${field}: no control or invisible formatting characters`);
  return s;
}

function collegeId(db: Db, slug: string | null | undefined): number | null {
  const all = listColleges(db);
  if (!slug) {
    if (all.length) throw fail('CATTERY_ERR_VALIDATION', `college: one of ${all.map((c) => c.slug).join(', ')}`);
    return null;
  }
  const c = all.find((x) => x.slug === slug);
  if (!c) throw fail('CATTERY_ERR_VALIDATION', `college: "${slug}" is not one of ${all.map((x) => x.slug).join(', ') || '(none configured)'}`);
  return c.id;
}

function categoryId(db: Db, slug: string | null | undefined): number | null {
  if (!slug) return null;
  const c = db.select().from(duesCategories).where(eq(duesCategories.slug, slug)).get();
  if (!c) throw fail('CATTERY_ERR_VALIDATION', `category: no dues category "${slug}"`);
  return c.id;
}

/** Someone asks to join (on their page, or an admin types in a paper form). */
export function applyForMembership(db: Db, input: MemberInput, actor: string): Member {
  const name = checkText('name', input.name, 200, true)!;
  const representative = checkText('representative', input.representative, 200, input.kind === 'organisation');
  const email = checkText('email', input.email, 254, false);
  if (email && !EMAIL.test(email)) throw fail('CATTERY_ERR_VALIDATION', 'email: an address such as nom@exemple.fr');
  return db.transaction(() => {
    if (input.userId != null) {
      if (!db.select({ id: users.id }).from(users).where(eq(users.id, input.userId)).get()) throw fail('CATTERY_ERR_NOT_FOUND', `no user ${input.userId}`);
      const existing = db.select().from(members).where(eq(members.userId, input.userId)).get();
      if (existing && (existing.status === 'applicant' || existing.status === 'admitted')) throw fail('CATTERY_ERR_CONFLICT', `this person is already ${existing.status === 'admitted' ? 'a member' : 'applying'} (member ${existing.id})`);
      // A former member applies again: the old record stays, unlinked, for the journal's sake.
      if (existing) db.update(members).set({ userId: null }).where(eq(members.id, existing.id)).run();
    }
    const row = db.insert(members).values({
      kind: input.kind, name, representative, email, userId: input.userId ?? null,
      collegeId: collegeId(db, input.college), categoryId: categoryId(db, input.category), status: 'applicant',
    }).returning().get();
    record(db, { actor, kind: 'member.apply', memberId: row.id, detail: { kind: row.kind, college: input.college ?? null } });
    return row;
  });
}

export function getMember(db: Db, id: number): Member {
  const m = db.select().from(members).where(eq(members.id, id)).get();
  if (!m) throw fail('CATTERY_ERR_NOT_FOUND', `no member ${id}`);
  return m;
}

/** The membership of a signed-in person: the current one (applying or admitted), else their latest. */
export function memberOfUser(db: Db, userId: number): Member | undefined {
  return db.select().from(members).where(eq(members.userId, userId)).get();
}

export function listMembers(db: Db, status?: MemberStatus): Member[] {
  return db.select().from(members).where(status ? eq(members.status, status) : undefined).orderBy(asc(members.name), asc(members.id)).all();
}

function move(db: Db, id: number, from: MemberStatus[], to: MemberStatus, actor: string, set: Partial<Member>, detail: Record<string, unknown> = {}): Member {
  return db.transaction(() => {
    const m = getMember(db, id);
    if (!from.includes(m.status)) throw fail('CATTERY_ERR_CONFLICT', `member ${id} is ${m.status}: cannot become ${to}`);
    db.update(members).set({ ...set, status: to }).where(eq(members.id, id)).run();
    record(db, { actor, kind: `member.${to}`, memberId: id, detail });
    return getMember(db, id);
  });
}

/** The board admits an applicant. With colleges configured, they must be in one by then. */
export function admit(db: Db, id: number, actor: string): Member {
  const m = getMember(db, id);
  if (m.collegeId === null && listColleges(db).length) throw fail('CATTERY_ERR_VALIDATION', 'college: choose the member\'s college before admitting them');
  return move(db, id, ['applicant'], 'admitted', actor, { admittedAt: new Date().toISOString() });
}

export function refuse(db: Db, id: number, actor: string, reason: string): Member {
  const why = checkText('reason', reason, 1000, true)!;
  return move(db, id, ['applicant'], 'refused', actor, { leftAt: new Date().toISOString(), exclusionReason: why }, { reason: why });
}

export function resign(db: Db, id: number, actor: string): Member {
  return move(db, id, ['admitted', 'applicant'], 'resigned', actor, { leftAt: new Date().toISOString(), board: false });
}

/** Exclusion needs its reason and the decision that made it (a decision of the register, or the board's minutes). */
export function exclude(db: Db, id: number, actor: string, reason: string, decision: string): Member {
  const why = checkText('reason', reason, 1000, true)!;
  const by = checkText('decision', decision, 200, true)!;
  return move(db, id, ['admitted'], 'excluded', actor, { leftAt: new Date().toISOString(), exclusionReason: why, exclusionDecision: by, board: false }, { reason: why, decision: by });
}

export interface MemberPatch { college?: string; category?: string | null; email?: string | null; representative?: string | null; board?: boolean }

export function updateMember(db: Db, id: number, patch: MemberPatch, actor: string): Member {
  return db.transaction(() => {
    const m = getMember(db, id);
    const set: Partial<Member> = {};
    if (patch.college !== undefined) set.collegeId = collegeId(db, patch.college);
    if (patch.category !== undefined) set.categoryId = categoryId(db, patch.category);
    if (patch.email !== undefined) {
      const e = checkText('email', patch.email, 254, false);
      if (e && !EMAIL.test(e)) throw fail('CATTERY_ERR_VALIDATION', 'email: an address such as nom@exemple.fr');
      set.email = e;
    }
    if (patch.representative !== undefined) set.representative = checkText('representative', patch.representative, 200, m.kind === 'organisation');
    if (patch.board !== undefined) {
      if (patch.board && m.status !== 'admitted') throw fail('CATTERY_ERR_CONFLICT', 'only an admitted member sits on the board');
      set.board = patch.board;
    }
    db.update(members).set(set).where(eq(members.id, id)).run();
    record(db, { actor, kind: 'member.update', memberId: id, detail: { ...patch } });
    return getMember(db, id);
  });
}

/** The roles a person's membership gives: member while admitted, board while they sit on it with their dues not
 * lapsed (a board member past the grace may not admit members or run meetings until they pay). */
export function membershipRoles(db: Db, userId: number): ('member' | 'board')[] {
  const m = db.select({ id: members.id, status: members.status, board: members.board }).from(members).where(eq(members.userId, userId)).get();
  if (m?.status !== 'admitted') return [];
  if (!m.board) return ['member'];
  return statusesOn(db, today(), [m.id]).get(m.id)?.status === 'lapsed' ? ['member'] : ['member', 'board'];
}

/** Admitted members per college: what the city sees (no names). Colleges without members are listed with 0. */
export function countsByCollege(db: Db): { college: string; nameFr: string; nameEn: string; members: number }[] {
  const rows = db.select({ id: colleges.id, slug: colleges.slug, nameFr: colleges.nameFr, nameEn: colleges.nameEn,
    // Written out with aliases: inside a subquery, drizzle's unqualified column names would bind to the wrong table.
    n: sql<number>`(select count(*) from members m where m.college_id = "colleges"."id" and m.status = 'admitted')` })
    .from(colleges).orderBy(asc(colleges.id)).all();
  if (rows.length) return rows.map((r) => ({ college: r.slug, nameFr: r.nameFr, nameEn: r.nameEn, members: r.n }));
  const n = db.select({ n: sql<number>`count(*)` }).from(members).where(eq(members.status, 'admitted')).get()!.n;
  return [{ college: '', nameFr: 'Membres', nameEn: 'Members', members: n }];
}

/** Members per college on an instant (ISO 8601): admitted before it and not left by then; for the open data
 * (src/publication/), which publishes past months as they were. A member's college is the one they have now: moves
 * between colleges are not kept. Colleges with no member are listed with 0. */
export function countsByCollegeOn(db: Db, at: string): { college: string; nameFr: string; nameEn: string; members: number }[] {
  const c = db.$client;
  const counted = c.prepare(`SELECT college_id id, COUNT(*) n FROM members WHERE admitted_at IS NOT NULL AND admitted_at < ?
    AND (left_at IS NULL OR left_at >= ?) GROUP BY college_id`).all(at, at) as { id: number | null; n: number }[];
  const by = new Map(counted.map((r) => [r.id, r.n]));
  const list = listColleges(db);
  if (!list.length) return [{ college: '', nameFr: 'Membres', nameEn: 'Members', members: counted.reduce((a, r) => a + r.n, 0) }];
  return list.map((col) => ({ college: col.slug, nameFr: col.nameFr, nameEn: col.nameEn, members: by.get(col.id) ?? 0 }));
}

/** A member's own record, whole: what they see and export. Their votes are listed by poll; a secret ballot's
 * choice is nobody's to show, not even theirs (it is not linked to them anywhere). */
export function memberRecord(db: Db, id: number) {
  const member = getMember(db, id);
  const voted = db.select({ pollId: polls.id, title: polls.title, secret: polls.secret, castBy: pollVoters.castBy })
    .from(pollVoters).innerJoin(polls, eq(polls.id, pollVoters.pollId)).where(and(eq(pollVoters.memberId, id))).orderBy(asc(polls.id)).all();
  return { member, history: memberHistory(db, id), voted };
}
