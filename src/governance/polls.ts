// Meetings, proxies and polls: who may vote, casting a ballot once (also under concurrent requests: the voters'
// primary key decides), closing at the set time, counting (tally.ts), and applying a passed decision's action.
// A secret ballot is stored with its college and nothing else about its voter: the voter is written in poll_voters,
// the ballot in ballots under a random key, in the same transaction, and no column, time or order joins them.
import crypto from 'node:crypto';
import { and, asc, desc, eq, isNotNull, isNull, lte, sql } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import { actionTarget, applyAction, checkAction, type Action, type ActionDeps } from './actions.js';
import { addDays, statusesOn, today } from './dues.js';
import { record } from './journal.js';
import { getMember } from './members.js';
import { getSettings, listColleges } from './settings.js';
import { NO_COLLEGE, tally, validChoice, type TallyResult } from './tally.js';
import { attendance, ballots, meetings, pollVoters, polls, proxies, POLL_KINDS, type Meeting, type Member, type Poll, type PollKind } from './schema.js';

const isoOrFail = (field: string, v: string) => {
  const t = Date.parse(v);
  // Date.parse rolls a day the month does not have over into the next month (2027-02-29 is 1 March): refused, so a
  // vote closes on the day written or not at all.
  const day = v.slice(0, 10);
  const realDay = !Number.isNaN(Date.parse(`${day}T00:00:00Z`)) && new Date(`${day}T00:00:00Z`).toISOString().startsWith(day);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v) || Number.isNaN(t) || !realDay) throw fail('CATTERY_ERR_VALIDATION', `${field}: a date and time such as 2026-06-20T14:00:00Z`);
  return new Date(t).toISOString();
};
const text = (field: string, v: string | undefined, max: number, required = true) => {
  // One spelling per text (NFC): two options that look the same are the same option.
  const s = (v ?? '').trim().normalize('NFC');
  if (required && !s) throw fail('CATTERY_ERR_VALIDATION', `${field}: required`);
  if (s.length > max) throw fail('CATTERY_ERR_VALIDATION', `${field}: at most ${max} characters`);
  if (/[\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(s)) throw fail('CATTERY_ERR_VALIDATION', `${field}: no bidirectional controls`);
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(s)) throw fail('CATTERY_ERR_VALIDATION', `${field}: no control characters`);
  return s;
};
const pct = (field: string, v: number | undefined) => {
  if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= 100)) throw fail('CATTERY_ERR_VALIDATION', `${field}: a whole percentage from 0 to 100`);
  return v;
};

// ── meetings ──────────────────────────────────────────────────────────────────────────────────────────────────────

export interface MeetingInput { kind: 'general' | 'board'; title: string; startsAt: string; agenda?: string; quorumPct?: number; quorumPerCollege?: boolean }

export function createMeeting(db: Db, input: MeetingInput, actor: string): Meeting {
  const row = {
    kind: input.kind, title: text('title', input.title, 200), startsAt: isoOrFail('startsAt', input.startsAt), agenda: text('agenda', input.agenda, 20_000, false),
    quorumPct: pct('quorumPct', input.quorumPct) ?? 0, quorumPerCollege: input.quorumPerCollege ?? false,
  };
  return db.transaction(() => {
    const m = db.insert(meetings).values(row).returning().get();
    record(db, { actor, kind: 'meeting.create', meetingId: m.id, detail: { kind: m.kind, title: m.title, startsAt: m.startsAt } });
    return m;
  });
}

export function getMeeting(db: Db, id: number): Meeting {
  const m = db.select().from(meetings).where(eq(meetings.id, id)).get();
  if (!m) throw fail('CATTERY_ERR_NOT_FOUND', `no meeting ${id}`);
  return m;
}

export function listMeetings(db: Db): Meeting[] {
  return db.select().from(meetings).orderBy(desc(meetings.startsAt)).all();
}

/** Members who may vote today: admitted, dues current or in grace; for a board meeting or poll, board members. */
export function votingMembers(db: Db, electorate: 'members' | 'board' = 'members', on?: string): Member[] {
  return [...statusesOn(db, on).values()].filter((s) => s.status !== 'lapsed' && (electorate === 'members' || s.member.board)).map((s) => s.member);
}

/** Members with the right to vote on a day, counted per college by the database: the same rule as dues.ts
 * duesStatus (free, or the last period paid, else the day before admission, plus the grace, not over yet), which
 * tests/unit/governance-eligible.test.ts checks on generated members. */
export function eligibleCounts(db: Db, electorate: 'members' | 'board', on = today()): Map<number | null, number> {
  const grace = getSettings(db).graceDays;
  const from = addDays(on, -grace);
  const rows = db.$client.prepare(`
    select m.college_id as college, count(*) as n from members m left join dues_categories c on c.id = m.category_id
    where m.status = 'admitted' and (? = 'members' or m.board = 1)
      and (c.amount_cents = 0 or coalesce((select max(p.covers_until) from dues_payments p where p.member_id = m.id),
                                          date(substr(m.admitted_at, 1, 10), '-1 day')) >= ?)
    group by m.college_id`).all(electorate, from) as { college: number | null; n: number }[];
  return new Map(rows.map((r) => [r.college, r.n]));
}

function mayVote(db: Db, memberId: number, electorate: 'members' | 'board'): Member {
  const s = statusesOn(db, undefined, [memberId]).get(memberId);
  if (!s) throw fail('CATTERY_ERR_VOTE', 'only an admitted member votes');
  if (s.status === 'lapsed') throw fail('CATTERY_ERR_VOTE', 'dues are not paid: the right to vote comes back with the payment');
  if (electorate === 'board' && !s.member.board) throw fail('CATTERY_ERR_VOTE', 'this vote is for the board');
  return s.member;
}

export function markPresent(db: Db, meetingId: number, memberId: number, present: boolean, actor: string): void {
  getMeeting(db, meetingId);
  const m = getMember(db, memberId);
  if (m.status !== 'admitted') throw fail('CATTERY_ERR_CONFLICT', `member ${memberId} is ${m.status}`);
  db.transaction(() => {
    if (present) db.insert(attendance).values({ meetingId, memberId }).onConflictDoNothing().run();
    else db.delete(attendance).where(and(eq(attendance.meetingId, meetingId), eq(attendance.memberId, memberId))).run();
    record(db, { actor, kind: present ? 'meeting.present' : 'meeting.absent', meetingId, memberId });
  });
}

/** A member gives their proxy to another for a meeting. The holder carries at most the statutes' number of proxies,
 * does not pass on one they hold, and neither side may have given theirs already. */
export function giveProxy(db: Db, meetingId: number, giverId: number, holderId: number, actor: string): void {
  const meeting = getMeeting(db, meetingId);
  if (giverId === holderId) throw fail('CATTERY_ERR_VOTE', 'a proxy goes to another member');
  const electorate = meeting.kind === 'board' ? 'board' : 'members';
  db.transaction(() => {
    mayVote(db, giverId, electorate);
    mayVote(db, holderId, electorate);
    const max = getSettings(db).maxProxies;
    const given = db.select().from(proxies).where(and(eq(proxies.meetingId, meetingId), eq(proxies.giverId, giverId))).get();
    if (given) throw fail('CATTERY_ERR_VOTE', `this member has already given their proxy (to member ${given.holderId})`);
    if (db.select().from(proxies).where(and(eq(proxies.meetingId, meetingId), eq(proxies.giverId, holderId))).get()) throw fail('CATTERY_ERR_VOTE', 'the holder has given their own proxy: they cannot carry others');
    if (db.select().from(proxies).where(and(eq(proxies.meetingId, meetingId), eq(proxies.holderId, giverId))).get()) throw fail('CATTERY_ERR_VOTE', 'this member carries proxies of others: they cannot give theirs');
    const held = db.select({ n: sql<number>`count(*)` }).from(proxies).where(and(eq(proxies.meetingId, meetingId), eq(proxies.holderId, holderId))).get()!.n;
    if (held >= max) throw fail('CATTERY_ERR_VOTE', `a member carries at most ${max} prox${max === 1 ? 'y' : 'ies'} (statutes)`);
    db.insert(proxies).values({ meetingId, giverId, holderId }).run();
    record(db, { actor, kind: 'meeting.proxy', meetingId, memberId: giverId, detail: { holderId } });
  });
}

export function withdrawProxy(db: Db, meetingId: number, giverId: number, actor: string): void {
  db.transaction(() => {
    const r = db.delete(proxies).where(and(eq(proxies.meetingId, meetingId), eq(proxies.giverId, giverId))).run();
    if (r.changes) record(db, { actor, kind: 'meeting.proxy.withdraw', meetingId, memberId: giverId });
  });
}

/** Attendance and quorum of a meeting: present members, members represented by a present holder, per college. */
export function meetingState(db: Db, meetingId: number) {
  const meeting = getMeeting(db, meetingId);
  const voters = votingMembers(db, meeting.kind === 'board' ? 'board' : 'members');
  const present = new Set(db.select({ id: attendance.memberId }).from(attendance).where(eq(attendance.meetingId, meetingId)).all().map((r) => r.id));
  const given = db.select().from(proxies).where(eq(proxies.meetingId, meetingId)).all();
  const represented = new Set(given.filter((p) => present.has(p.holderId)).map((p) => p.giverId));
  const cols = listColleges(db);
  const keyOf = (m: Member) => (cols.length ? m.collegeId ?? -1 : NO_COLLEGE);
  const per = new Map<number, { eligible: number; taking: number }>();
  for (const m of voters) {
    const k = keyOf(m);
    const e = per.get(k) ?? { eligible: 0, taking: 0 };
    e.eligible++;
    if (present.has(m.id) || represented.has(m.id)) e.taking++;
    per.set(k, e);
  }
  const eligible = voters.length;
  const taking = voters.filter((m) => present.has(m.id) || represented.has(m.id)).length;
  const enough = (t: number, e: number) => meeting.quorumPct <= 0 || (e > 0 && t * 100 >= meeting.quorumPct * e);
  const reached = meeting.quorumPerCollege && cols.length ? cols.every((c) => enough(per.get(c.id)?.taking ?? 0, per.get(c.id)?.eligible ?? 0)) : enough(taking, eligible);
  return { meeting, voters, present, proxies: given, represented, perCollege: per, eligible, taking, reached };
}

// ── polls ─────────────────────────────────────────────────────────────────────────────────────────────────────────

export interface PollInput {
  kind: PollKind; title: string; body?: string; options?: string[]; secret: boolean; electorate?: 'members' | 'board';
  quorumPct?: number; quorumPerCollege?: boolean; opensAt: string; closesAt: string; meetingId?: number | null; action?: unknown;
}

export function createPoll(deps: ActionDeps, input: PollInput, actor: string): Poll {
  const { db } = deps;
  if (!(POLL_KINDS as readonly string[]).includes(input.kind)) throw fail('CATTERY_ERR_VALIDATION', `kind: one of ${POLL_KINDS.join(', ')}`);
  const options = input.kind === 'proposal' ? [] : (input.options ?? []).map((o, i) => text(`options/${i}`, o, 200));
  if (input.kind !== 'proposal' && (options.length < 2 || options.length > 20)) throw fail('CATTERY_ERR_VALIDATION', 'options: from 2 to 20 choices');
  if (new Set(options).size !== options.length) throw fail('CATTERY_ERR_VALIDATION', 'options: each choice once');
  // A judgment ballot is an object keyed by the options: one named __proto__ cannot be a key of an object built by
  // assignment (a form's handler), so nobody could grade it and every such ballot would be refused.
  if (options.includes('__proto__')) throw fail('CATTERY_ERR_VALIDATION', 'options: "__proto__" cannot be a choice');
  const opensAt = isoOrFail('opensAt', input.opensAt);
  const closesAt = isoOrFail('closesAt', input.closesAt);
  if (closesAt <= opensAt) throw fail('CATTERY_ERR_VALIDATION', 'closesAt: after opensAt');
  if (input.action !== undefined && input.action !== null && input.kind !== 'proposal') throw fail('CATTERY_ERR_VALIDATION', 'action: only a proposal carries an action');
  const action = input.action === undefined || input.action === null ? null : checkAction(deps, input.action);
  const meeting = input.meetingId ? getMeeting(db, input.meetingId) : null;
  const row = {
    meetingId: meeting?.id ?? null, kind: input.kind, title: text('title', input.title, 200), body: text('body', input.body, 20_000, false), options,
    secret: input.secret, electorate: input.electorate ?? (meeting?.kind === 'board' ? 'board' as const : 'members' as const),
    quorumPct: pct('quorumPct', input.quorumPct) ?? meeting?.quorumPct ?? 0, quorumPerCollege: input.quorumPerCollege ?? meeting?.quorumPerCollege ?? false,
    opensAt, closesAt, action: action as Record<string, unknown> | null, createdBy: actor,
  };
  return db.transaction(() => {
    const p = db.insert(polls).values(row).returning().get();
    record(db, { actor, kind: 'poll.create', pollId: p.id, meetingId: p.meetingId, detail: { kind: p.kind, secret: p.secret, action: p.action } });
    return p;
  });
}

export function getPoll(db: Db, id: number): Poll {
  const p = db.select().from(polls).where(eq(polls.id, id)).get();
  if (!p) throw fail('CATTERY_ERR_NOT_FOUND', `no poll ${id}`);
  return p;
}

export const pollState = (p: Poll, now = new Date().toISOString()) =>
  (p.closedAt ? 'closed' : now < p.opensAt ? 'scheduled' : now < p.closesAt ? 'open' : 'closing');

export function listPolls(db: Db): Poll[] {
  return db.select().from(polls).orderBy(desc(polls.closesAt), desc(polls.id)).all();
}

/** The polls a member may vote in now, for themselves and for those whose proxy they hold, with what is left. */
export function openPollsFor(db: Db, memberId: number, now = new Date().toISOString()) {
  const board = getMember(db, memberId).board;
  const open = db.select().from(polls).where(and(isNull(polls.closedAt), lte(polls.opensAt, now), sql`${polls.closesAt} > ${now}`)).orderBy(asc(polls.closesAt)).all()
    // A board vote is the board's: other members do not see it among theirs.
    .filter((p) => p.electorate === 'members' || board);
  return open.map((p) => {
    const givers = p.meetingId ? db.select({ id: proxies.giverId }).from(proxies).where(and(eq(proxies.meetingId, p.meetingId), eq(proxies.holderId, memberId))).all().map((r) => r.id) : [];
    const gaveTo = p.meetingId ? db.select({ id: proxies.holderId }).from(proxies).where(and(eq(proxies.meetingId, p.meetingId), eq(proxies.giverId, memberId))).get()?.id ?? null : null;
    const done = new Set(db.select({ id: pollVoters.memberId }).from(pollVoters).where(eq(pollVoters.pollId, p.id)).all().map((r) => r.id));
    return { poll: p, voted: done.has(memberId), gaveTo, for: givers.map((id) => ({ memberId: id, name: getMember(db, id).name, voted: done.has(id) })) };
  });
}

/** Casts one ballot: for the member themselves, or for a member whose proxy they hold at the poll's meeting. */
export function castVote(db: Db, pollId: number, voterId: number, choice: unknown, opts: { forMemberId?: number; now?: string } = {}): void {
  const now = opts.now ?? new Date().toISOString();
  const target = opts.forMemberId ?? voterId;
  db.transaction(() => {
    const p = getPoll(db, pollId);
    const state = pollState(p, now);
    if (state === 'scheduled') throw fail('CATTERY_ERR_VOTE', `the vote opens at ${p.opensAt}`);
    if (state !== 'open') throw fail('CATTERY_ERR_VOTE', 'the vote is closed');
    if (!validChoice(p.kind, p.options, choice)) throw fail('CATTERY_ERR_VALIDATION', 'choice: not a valid ballot for this poll');
    // The proxy first: someone who does not hold it learns nothing about the other member (their dues, their seat).
    if (target !== voterId) {
      if (!p.meetingId) throw fail('CATTERY_ERR_VOTE', 'proxies are for a meeting\'s votes');
      const proxy = db.select().from(proxies).where(and(eq(proxies.meetingId, p.meetingId), eq(proxies.giverId, target))).get();
      if (proxy?.holderId !== voterId) throw fail('CATTERY_ERR_VOTE', 'you do not hold this member\'s proxy');
      mayVote(db, voterId, p.electorate);
      // The statutes' limit is on the votes one member casts for others, not only on the proxies held at one moment: a
      // proxy withdrawn once used and another given would let a holder vote for more members than the statutes allow.
      if (db.select().from(pollVoters).where(and(eq(pollVoters.pollId, pollId), eq(pollVoters.memberId, target))).get()) throw fail('CATTERY_ERR_VOTE', 'this member has already voted');
      const max = getSettings(db).maxProxies;
      const castForOthers = db.select({ n: sql<number>`count(*)` }).from(pollVoters)
        .where(and(eq(pollVoters.pollId, pollId), eq(pollVoters.castBy, voterId), sql`${pollVoters.memberId} <> ${voterId}`)).get()!.n;
      if (castForOthers >= max) throw fail('CATTERY_ERR_VOTE', `a member votes for at most ${max} other${max === 1 ? '' : 's'} (statutes)`);
    }
    const member = mayVote(db, target, p.electorate);
    if (target === voterId && p.meetingId) {
      const gave = db.select().from(proxies).where(and(eq(proxies.meetingId, p.meetingId), eq(proxies.giverId, voterId))).get();
      if (gave) throw fail('CATTERY_ERR_VOTE', 'you gave your proxy for this meeting: withdraw it to vote yourself');
    }
    const cols = listColleges(db);
    const inserted = db.insert(pollVoters).values({ pollId, memberId: target, castBy: voterId }).onConflictDoNothing().run();
    if (inserted.changes === 0) throw fail('CATTERY_ERR_VOTE', target === voterId ? 'you have already voted' : 'this member has already voted');
    db.insert(ballots).values({
      id: crypto.randomBytes(16).toString('base64url'), pollId, collegeId: cols.length ? member.collegeId : null, choice,
      openVoterId: p.secret ? null : target,
    }).run();
    // The journal says who voted, never what, for either kind: an open poll's choices are in its ballots.
    record(db, { actor: `member:${voterId}`, kind: 'poll.vote', pollId, memberId: target, detail: target === voterId ? null : { proxyOf: target } });
  });
  if (getPoll(db, pollId).secret) forgetWriteOrder(db);
}

/** SQLite's write-ahead log keeps each transaction's pages in commit order: the voter's row and their ballot would
 * sit side by side in the -wal file until it is overwritten. A secret vote's transaction is therefore copied into the
 * database at once and the log cut to nothing, so that no file pairs a ballot with its voter. A reader holding an old
 * snapshot can make the cut wait (busy timeout) or fail: the next secret vote, and the poll's close, cut it again. */
export function forgetWriteOrder(db: Db): boolean {
  const r = db.$client.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
  return r[0]?.busy === 0;
}

/** Counts a poll from its stored ballots: the colleges' weights, the voters' colleges, the electorate of today. */
export function tallyPoll(db: Db, p: Poll, on = today()): TallyResult {
  const cols = listColleges(db);
  // Identical ballots of a college are read once with their number: the database counts, as a plain GROUP BY would,
  // and each distinct choice is parsed once (bench/governance measures the difference).
  const grouped = db.select({ collegeId: ballots.collegeId, choice: sql<string>`${ballots.choice}`, n: sql<number>`count(*)` }).from(ballots)
    .where(eq(ballots.pollId, p.id)).groupBy(ballots.collegeId, ballots.choice).all();
  const rows = grouped.map((g) => ({ collegeId: g.collegeId, choice: JSON.parse(g.choice) as unknown, count: g.n }));
  const eligible = new Map<number, number>();
  for (const [collegeId, n] of eligibleCounts(db, p.electorate, on)) {
    const k = cols.length ? collegeId ?? -1 : NO_COLLEGE;
    eligible.set(k, (eligible.get(k) ?? 0) + n);
  }
  return tally({
    kind: p.kind, options: p.options, colleges: cols.map((c) => ({ id: c.id, weightPct: c.weightPct })), ballots: rows, eligible,
    quorumPct: p.quorumPct, quorumPerCollege: p.quorumPerCollege, blockStops: getSettings(db).blockStops,
  });
}

export interface PollDeps extends ActionDeps { log?: Logger }

/** Closes every poll whose time is up: counted once, published, and a passed proposal's action applied. Called on
 * the reconciler's timer; idempotent (a poll is closed in the transaction that counts it). */
export function closeDuePolls(deps: PollDeps, now = new Date().toISOString()): Poll[] {
  // In the order they were decided: two due at once (cattery was stopped) act as they would have, the later last.
  const due = deps.db.select().from(polls).where(and(isNull(polls.closedAt), lte(polls.closesAt, now))).orderBy(asc(polls.closesAt), asc(polls.id)).all();
  const closed: Poll[] = [];
  for (const p of due) {
    const result = deps.db.transaction(() => {
      const fresh = getPoll(deps.db, p.id);
      if (fresh.closedAt) return null;
      const r = tallyPoll(deps.db, fresh);
      deps.db.update(polls).set({ closedAt: now, outcome: r.outcome, result: r as unknown as Record<string, unknown> }).where(eq(polls.id, p.id)).run();
      record(deps.db, { actor: 'system', kind: 'poll.close', pollId: p.id, detail: { outcome: r.outcome, winner: r.winner, quorum: r.quorum.reached } });
      return r;
    });
    if (!result) continue;
    if (p.secret) forgetWriteOrder(deps.db);
    if (result.outcome === 'passed' && p.action) runAction(deps, p.id, 'system');
    closed.push(getPoll(deps.db, p.id));
  }
  // A decision counted as passed whose action was never tried: the process stopped between the count (committed) and
  // the action. Level-triggered, as the reconciler: it is tried now.
  const untried = deps.db.select({ id: polls.id }).from(polls)
    .where(and(isNotNull(polls.closedAt), eq(polls.outcome, 'passed'), isNotNull(polls.action), eq(polls.actionStatus, 'none'))).all();
  for (const { id } of untried) runAction(deps, id, 'system');
  return closed;
}

/** Applies a passed decision's action (again, after a failure): the outcome is written on the decision. */
export function runAction(deps: PollDeps, pollId: number, actor: string): Poll {
  const p = getPoll(deps.db, pollId);
  if (p.outcome !== 'passed' || !p.action) throw fail('CATTERY_ERR_CONFLICT', `decision ${pollId} has no action to apply (${p.outcome ?? 'not closed'})`);
  if (p.actionStatus === 'applied') return p;
  try {
    // A retry must not undo a later decision on the same setting that was applied meanwhile (close pads, decided after
    // an "open pads" whose action failed): the later decision stands, and this one says why it did not act.
    const target = actionTarget(p.action as Action);
    const later = deps.db.select().from(polls).where(and(isNotNull(polls.closedAt), eq(polls.actionStatus, 'applied'))).all()
      .find((q) => q.id !== p.id && q.action && actionTarget(q.action as Action) === target
        && (q.closesAt > p.closesAt || (q.closesAt === p.closesAt && q.id > p.id)));
    if (later) throw fail('CATTERY_ERR_CONFLICT', `decision ${later.id}, made later on the same setting, has been applied: decision ${pollId} does not undo it`);
    deps.db.transaction(() => {
      applyAction(deps, pollId, p.action as Action);
      deps.db.update(polls).set({ actionStatus: 'applied', actionError: null, actionAt: new Date().toISOString() }).where(eq(polls.id, pollId)).run();
      record(deps.db, { actor, kind: 'decision.applied', pollId, detail: { action: p.action } });
    });
  } catch (err) {
    const message = (err as Error).message;
    deps.db.update(polls).set({ actionStatus: 'failed', actionError: message, actionAt: new Date().toISOString() }).where(eq(polls.id, pollId)).run();
    record(deps.db, { actor, kind: 'decision.failed', pollId, detail: { action: p.action, error: message } });
    deps.log?.warn({ pollId, err: message }, 'a decision\'s action failed');
  }
  return getPoll(deps.db, pollId);
}

/** The public register: every closed poll, newest first, with its count per college and its quorum. */
export function decisions(db: Db): Poll[] {
  return db.select().from(polls).where(isNotNull(polls.closedAt)).orderBy(desc(polls.closedAt), desc(polls.id)).all();
}

/** Members present and voters for a poll (open polls show how many took part; never who chose what). */
export function turnout(db: Db, pollId: number): number {
  return db.select({ n: sql<number>`count(*)` }).from(pollVoters).where(eq(pollVoters.pollId, pollId)).get()!.n;
}
