// The association's own life, in its tables: members in colleges, dues, meetings, polls and the decisions they make.
// A separate schema file of the same database (drizzle.config.ts lists both); nothing here is written by another
// domain, and governance writes another domain's state only through that domain's functions (actions.ts).
import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, real, uniqueIndex, index, primaryKey } from 'drizzle-orm/sqlite-core';
import { accounts, users } from '../db/schema.js';

const now = sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`;

export const LEGAL_FORMS = ['association', 'scic'] as const;
export type LegalForm = (typeof LEGAL_FORMS)[number];

/** One row (id 1): the statutes' figures cattery applies. */
export const governanceSettings = sqliteTable('governance_settings', {
  id: integer('id').primaryKey(),
  /** association (loi 1901): colleges optional, any weights; scic (loi 1947, art. 19 octies): rules.ts checks them. */
  legalForm: text('legal_form', { enum: LEGAL_FORMS }).notNull().default('association'),
  /** Days after the end of a dues period during which a member keeps their rights and services. */
  graceDays: integer('grace_days').notNull().default(30),
  /** How many other members' proxies one member may carry at a meeting. */
  maxProxies: integer('max_proxies').notNull().default(1),
  /** A reminder is due this many days before a dues period ends. */
  remindDays: integer('remind_days').notNull().default(30),
  /** Whether one "block" makes a proposal fail (Loomio's meaning of a block), as the statutes say. */
  blockStops: integer('block_stops', { mode: 'boolean' }).notNull().default(true),
  /** How long the old address of a resident who moved to another hoster forwards to the new one, with its auto-reply
   * (federation/moves-source.ts); 0: no forward, the mail account is deleted at once like the others. */
  forwardDays: integer('forward_days').notNull().default(90),
  updatedAt: text('updated_at').notNull().default(now),
});

/** A college: the residents, the volunteers, the city, companies, schools… With no weight, colleges weigh the same. */
export const colleges = sqliteTable('colleges', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  slug: text('slug').notNull().unique(),
  nameFr: text('name_fr').notNull(),
  nameEn: text('name_en').notNull(),
  /** Statutory share of the votes in percent; null: an equal share with every other college. */
  weightPct: real('weight_pct'),
  createdAt: text('created_at').notNull().default(now),
});

export const DUES_PERIODS = ['year', 'days'] as const;
export const duesCategories = sqliteTable('dues_categories', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  slug: text('slug').notNull().unique(),
  nameFr: text('name_fr').notNull(),
  nameEn: text('name_en').notNull(),
  /** In euro cents; 0 is a free membership (always current once admitted). */
  amountCents: integer('amount_cents').notNull(),
  /** year: the calendar year of the payment; days: periodDays from the payment (or from the end of the period paid). */
  period: text('period', { enum: DUES_PERIODS }).notNull(),
  periodDays: integer('period_days'),
  createdAt: text('created_at').notNull().default(now),
});

export const MEMBER_KINDS = ['person', 'organisation'] as const;
export const MEMBER_STATUS = ['applicant', 'admitted', 'refused', 'resigned', 'excluded'] as const;
export type MemberStatus = (typeof MEMBER_STATUS)[number];

export const members = sqliteTable('members', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  kind: text('kind', { enum: MEMBER_KINDS }).notNull(),
  /** A person's name, or the organisation's (the city, a company, a school). */
  name: text('name').notNull(),
  /** The person who speaks and votes for an organisation. */
  representative: text('representative'),
  email: text('email'),
  /** The person's cattery user when they have one (their services, their pages). */
  userId: integer('user_id').references(() => users.id, { onDelete: 'set null' }),
  collegeId: integer('college_id').references(() => colleges.id, { onDelete: 'restrict' }),
  categoryId: integer('category_id').references(() => duesCategories.id, { onDelete: 'restrict' }),
  status: text('status', { enum: MEMBER_STATUS }).notNull().default('applicant'),
  /** Sits on the board (conseil d'administration / collégiale): may admit members and vote in board meetings. */
  board: integer('board', { mode: 'boolean' }).notNull().default(false),
  appliedAt: text('applied_at').notNull().default(now),
  admittedAt: text('admitted_at'),
  leftAt: text('left_at'),
  /** Exclusion: why, and the decision that made it (a decision of the register, or the board's minutes' reference). */
  exclusionReason: text('exclusion_reason'),
  exclusionDecision: text('exclusion_decision'),
}, (t) => [uniqueIndex('members_user_unique').on(t.userId), index('members_college_idx').on(t.collegeId)]);
export type Member = typeof members.$inferSelect;

export const PAYMENT_METHODS = ['cash', 'cheque', 'transfer', 'free'] as const;
/** Dues paid by hand: no payment processor. The period a payment covers is fixed when it is recorded. */
export const duesPayments = sqliteTable('dues_payments', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  memberId: integer('member_id').notNull().references(() => members.id, { onDelete: 'restrict' }),
  categoryId: integer('category_id').notNull().references(() => duesCategories.id, { onDelete: 'restrict' }),
  amountCents: integer('amount_cents').notNull(),
  method: text('method', { enum: PAYMENT_METHODS }).notNull(),
  reference: text('reference').notNull().default(''),
  paidOn: text('paid_on').notNull(),
  coversFrom: text('covers_from').notNull(),
  coversUntil: text('covers_until').notNull(),
  recordedBy: text('recorded_by').notNull(),
  createdAt: text('created_at').notNull().default(now),
}, (t) => [index('dues_payments_member_idx').on(t.memberId, t.coversUntil)]);
export type DuesPayment = typeof duesPayments.$inferSelect;

/** An account governance suspended for lapsed dues: only these are resumed by a payment (never one an admin
 * suspended for another reason). */
export const duesHolds = sqliteTable('dues_holds', {
  accountId: integer('account_id').primaryKey().references(() => accounts.id, { onDelete: 'cascade' }),
  memberId: integer('member_id').notNull().references(() => members.id, { onDelete: 'cascade' }),
  since: text('since').notNull().default(now),
});

export const REMINDER_KINDS = ['before', 'after', 'suspension'] as const;
/** One reminder per member, kind and period end: sent (or shown) once. */
export const duesReminders = sqliteTable('dues_reminders', {
  memberId: integer('member_id').notNull().references(() => members.id, { onDelete: 'cascade' }),
  kind: text('kind', { enum: REMINDER_KINDS }).notNull(),
  periodUntil: text('period_until').notNull(),
  channel: text('channel', { enum: ['email', 'page'] }).notNull(),
  sentAt: text('sent_at'),
  error: text('error'),
  createdAt: text('created_at').notNull().default(now),
}, (t) => [primaryKey({ columns: [t.memberId, t.kind, t.periodUntil] })]);

/** Settings of a service the association decides (an admin, or a decision): they override the manifest's. */
export const serviceSettings = sqliteTable('service_settings', {
  service: text('service').primaryKey(),
  openForSignup: integer('open_for_signup', { mode: 'boolean' }),
  membersOnly: integer('members_only', { mode: 'boolean' }).notNull().default(false),
  defaultQuotaMb: integer('default_quota_mb'),
  updatedAt: text('updated_at').notNull().default(now),
});

export const MEETING_KINDS = ['general', 'board'] as const;
export const meetings = sqliteTable('meetings', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  kind: text('kind', { enum: MEETING_KINDS }).notNull(),
  title: text('title').notNull(),
  startsAt: text('starts_at').notNull(),
  agenda: text('agenda').notNull().default(''),
  /** Share of the members with voting rights who must take part (present, represented or voting), in percent. */
  quorumPct: integer('quorum_pct').notNull().default(0),
  /** The share must be reached in every college, not only overall. */
  quorumPerCollege: integer('quorum_per_college', { mode: 'boolean' }).notNull().default(false),
  createdAt: text('created_at').notNull().default(now),
});
export type Meeting = typeof meetings.$inferSelect;

export const attendance = sqliteTable('attendance', {
  meetingId: integer('meeting_id').notNull().references(() => meetings.id, { onDelete: 'cascade' }),
  memberId: integer('member_id').notNull().references(() => members.id, { onDelete: 'restrict' }),
  at: text('at').notNull().default(now),
}, (t) => [primaryKey({ columns: [t.meetingId, t.memberId] })]);

/** A member (giver) has another (holder) vote in their stead at a meeting. */
export const proxies = sqliteTable('proxies', {
  meetingId: integer('meeting_id').notNull().references(() => meetings.id, { onDelete: 'cascade' }),
  giverId: integer('giver_id').notNull().references(() => members.id, { onDelete: 'restrict' }),
  holderId: integer('holder_id').notNull().references(() => members.id, { onDelete: 'restrict' }),
  at: text('at').notNull().default(now),
}, (t) => [primaryKey({ columns: [t.meetingId, t.giverId] }), index('proxies_holder_idx').on(t.meetingId, t.holderId)]);

export const POLL_KINDS = ['proposal', 'single', 'judgment', 'ranked'] as const;
export type PollKind = (typeof POLL_KINDS)[number];
export const POLL_OUTCOMES = ['passed', 'rejected', 'no_quorum', 'decided', 'tied'] as const;
export type PollOutcome = (typeof POLL_OUTCOMES)[number];
export const ACTION_STATUS = ['none', 'applied', 'failed'] as const;

export const polls = sqliteTable('polls', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  meetingId: integer('meeting_id').references(() => meetings.id, { onDelete: 'restrict' }),
  kind: text('kind', { enum: POLL_KINDS }).notNull(),
  title: text('title').notNull(),
  body: text('body').notNull().default(''),
  /** The choices of a single-choice, judgment or ranked poll; a proposal's are fixed (tally.ts PROPOSAL_CHOICES). */
  options: text('options', { mode: 'json' }).$type<string[]>().notNull(),
  secret: integer('secret', { mode: 'boolean' }).notNull(),
  /** Who votes: every member with voting rights, or the board only. */
  electorate: text('electorate', { enum: ['members', 'board'] }).notNull().default('members'),
  quorumPct: integer('quorum_pct').notNull().default(0),
  quorumPerCollege: integer('quorum_per_college', { mode: 'boolean' }).notNull().default(false),
  opensAt: text('opens_at').notNull(),
  closesAt: text('closes_at').notNull(),
  /** What the hoster does when the proposal passes (actions.ts): one of a fixed list. */
  action: text('action', { mode: 'json' }).$type<Record<string, unknown>>(),
  createdBy: text('created_by').notNull(),
  createdAt: text('created_at').notNull().default(now),
  /** Set once, when the poll is counted after its close. */
  closedAt: text('closed_at'),
  outcome: text('outcome', { enum: POLL_OUTCOMES }),
  result: text('result', { mode: 'json' }).$type<Record<string, unknown>>(),
  actionStatus: text('action_status', { enum: ACTION_STATUS }).notNull().default('none'),
  actionError: text('action_error'),
  actionAt: text('action_at'),
}, (t) => [index('polls_closes_idx').on(t.closedAt, t.closesAt)]);
export type Poll = typeof polls.$inferSelect;

/** Who has voted (themselves, or through the member holding their proxy). Apart from the ballots: for a secret poll
 * nothing links a row here to a row there (no member, no time, no order: ballots are keyed by a random id). */
export const pollVoters = sqliteTable('poll_voters', {
  pollId: integer('poll_id').notNull().references(() => polls.id, { onDelete: 'cascade' }),
  memberId: integer('member_id').notNull().references(() => members.id, { onDelete: 'restrict' }),
  /** The member who cast it: the voter, or their proxy holder. */
  castBy: integer('cast_by').notNull(),
}, (t) => [primaryKey({ columns: [t.pollId, t.memberId] })]);

/** Ballots. Table made WITHOUT ROWID in its migration, keyed by a random id, with no time: the storage order is
 * random, so neither a column nor the order of insertion ties a secret ballot to its voter. `memberId` is set only
 * for an open poll (openVoterId). */
export const ballots = sqliteTable('ballots', {
  id: text('id').primaryKey(),
  pollId: integer('poll_id').notNull().references(() => polls.id, { onDelete: 'cascade' }),
  /** The voter's college (its result counts for the college's weight); null when the association has none. */
  collegeId: integer('college_id'),
  choice: text('choice', { mode: 'json' }).$type<unknown>().notNull(),
  /** An open poll's voter; always null for a secret one. Named apart from poll_voters.member_id on purpose. */
  openVoterId: integer('open_voter_id'),
}, (t) => [index('ballots_poll_idx').on(t.pollId, t.collegeId)]);

/** What happened in the association's life, by whom: applications, admissions, payments, votes opened and closed,
 * actions applied. Kept for good (no foreign keys). */
export const governanceJournal = sqliteTable('governance_journal', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  at: text('at').notNull().default(now),
  actor: text('actor').notNull(),
  kind: text('kind').notNull(),
  memberId: integer('member_id'),
  pollId: integer('poll_id'),
  meetingId: integer('meeting_id'),
  detail: text('detail', { mode: 'json' }).$type<Record<string, unknown>>(),
}, (t) => [index('governance_journal_member_idx').on(t.memberId), index('governance_journal_poll_idx').on(t.pollId)]);
export type GovernanceEntry = typeof governanceJournal.$inferSelect;
