// The association's governance over JSON: its statutes' settings, colleges and dues categories, members and their
// dues, meetings and polls, and the public decision register. Routes stay thin: the domain (src/governance/) checks
// and journals; voting itself is done by a member on their page (/votes), with their own session.
import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AccountDeps } from '../../accounts/accounts.js';
import { duesGatePass } from '../../governance/dues-gate.js';
import { paymentsOf, recordPayment, statusesOn, today } from '../../governance/dues.js';
import { admit, applyForMembership, countsByCollege, exclude, getMember, listMembers, memberRecord, refuse, resign, updateMember } from '../../governance/members.js';
import { createMeeting, createPoll, decisions, getPoll, listMeetings, listPolls, meetingState, markPresent, giveProxy, pollState, runAction, turnout } from '../../governance/polls.js';
import { LEGAL_FORMS, MEMBER_STATUS, PAYMENT_METHODS, POLL_KINDS, type Member, type Poll } from '../../governance/schema.js';
import {
  SLUG, getSettings, listCategories, listColleges, replaceColleges, serviceSettingsMap, setServiceSettings, updateSettings, upsertCategory,
  FORWARD_DAYS_MAX,
} from '../../governance/settings.js';
import { Action } from '../../governance/actions.js';
import { ErrorReply } from '../error-handler.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Id = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2 ** 31 }) });
const Slug = Type.String({ pattern: SLUG, maxLength: 40 });
const Name = Type.String({ minLength: 1, maxLength: 200 });
const Errors = { 400: ErrorReply, 404: ErrorReply, 409: ErrorReply, 422: ErrorReply };
const Any = Type.Record(Type.String(), Type.Unknown());

const SettingsView = Type.Object({
  legalForm: Type.Union(LEGAL_FORMS.map((f) => Type.Literal(f))), graceDays: Type.Integer(), maxProxies: Type.Integer(),
  remindDays: Type.Integer(), blockStops: Type.Boolean(), forwardDays: Type.Integer(),
});
const CollegeView = Type.Object({ slug: Type.String(), nameFr: Type.String(), nameEn: Type.String(), weightPct: Nullable(Type.Number()) });
const CategoryView = Type.Object({
  slug: Type.String(), nameFr: Type.String(), nameEn: Type.String(), amountCents: Type.Integer(),
  period: Type.Union([Type.Literal('year'), Type.Literal('days')]), periodDays: Nullable(Type.Integer()),
});
const MemberView = Type.Object({
  id: Type.Integer(), kind: Type.String(), name: Type.String(), representative: Nullable(Type.String()), email: Nullable(Type.String()),
  userId: Nullable(Type.Integer()), college: Nullable(Type.String()), category: Nullable(Type.String()),
  status: Type.Union(MEMBER_STATUS.map((s) => Type.Literal(s))), board: Type.Boolean(), appliedAt: Type.String(), admittedAt: Nullable(Type.String()),
  leftAt: Nullable(Type.String()), exclusionReason: Nullable(Type.String()), exclusionDecision: Nullable(Type.String()),
  dues: Nullable(Type.Object({ status: Type.String(), until: Nullable(Type.String()), graceUntil: Nullable(Type.String()) })),
});
const PaymentView = Type.Object({
  id: Type.Integer(), amountCents: Type.Integer(), method: Type.String(), reference: Type.String(), paidOn: Type.String(),
  coversFrom: Type.String(), coversUntil: Type.String(), recordedBy: Type.String(),
});
const PollView = Type.Object({
  id: Type.Integer(), meetingId: Nullable(Type.Integer()), kind: Type.String(), title: Type.String(), body: Type.String(),
  options: Type.Array(Type.String()), secret: Type.Boolean(), electorate: Type.String(), quorumPct: Type.Integer(), quorumPerCollege: Type.Boolean(),
  opensAt: Type.String(), closesAt: Type.String(), state: Type.String(), action: Nullable(Any), turnout: Type.Integer(),
  closedAt: Nullable(Type.String()), outcome: Nullable(Type.String()), result: Nullable(Any),
  actionStatus: Type.String(), actionError: Nullable(Type.String()), actionAt: Nullable(Type.String()),
});

export interface GovernanceRouteDeps { accounts: AccountDeps }

export const governanceRoutes: FastifyPluginAsyncTypebox<{ deps: GovernanceRouteDeps }> = async (app, { deps }) => {
  const db = deps.accounts.db;
  const catalog = deps.accounts.catalog;
  const actor = (req: { principal: { id: string } | null }) => req.principal?.id ?? 'anonymous';
  const collegeSlug = new Map<number, string>();
  const categorySlug = new Map<number, string>();
  const memberView = (m: Member) => {
    if (m.collegeId !== null && !collegeSlug.has(m.collegeId)) for (const c of listColleges(db)) collegeSlug.set(c.id, c.slug);
    if (m.categoryId !== null && !categorySlug.has(m.categoryId)) for (const c of listCategories(db)) categorySlug.set(c.id, c.slug);
    const s = statusesOn(db, today(), [m.id]).get(m.id);
    return {
      ...m, college: m.collegeId === null ? null : collegeSlug.get(m.collegeId) ?? null, category: m.categoryId === null ? null : categorySlug.get(m.categoryId) ?? null,
      dues: s ? { status: s.status, until: s.until, graceUntil: s.graceUntil } : null,
    };
  };
  const pollView = (p: Poll) => ({ ...p, state: pollState(p), turnout: turnout(db, p.id) });

  // ── the statutes' settings, colleges, dues categories, services ──
  app.get('/api/governance', {
    schema: { tags: ['governance'], summary: 'The statutes\' settings, colleges and dues categories', response: { 200: Type.Object({ settings: SettingsView, colleges: Type.Array(CollegeView), categories: Type.Array(CategoryView) }) } },
  }, async () => ({ settings: getSettings(db), colleges: listColleges(db), categories: listCategories(db) }));

  app.patch('/api/governance/settings', {
    schema: {
      tags: ['governance'], summary: 'Change the statutes\' figures (a SCIC\'s colleges are checked against loi 1947 art. 19 octies)',
      body: Type.Partial(Type.Object({
        legalForm: Type.Union(LEGAL_FORMS.map((f) => Type.Literal(f))), graceDays: Type.Integer({ minimum: 0, maximum: 365 }),
        maxProxies: Type.Integer({ minimum: 0, maximum: 10 }), remindDays: Type.Integer({ minimum: 0, maximum: 365 }), blockStops: Type.Boolean(),
        forwardDays: Type.Integer({ minimum: 0, maximum: FORWARD_DAYS_MAX, description: 'Days a moved resident\'s old mail address forwards to the new one, with an auto-reply (0: none)' }),
      }), { additionalProperties: false, minProperties: 1 }),
      response: { 200: SettingsView, ...Errors },
    },
  }, async (req) => updateSettings(db, req.body, actor(req)));

  app.put('/api/governance/colleges', {
    schema: {
      tags: ['governance'], summary: 'The whole set of colleges at once (checked against the legal form)',
      body: Type.Array(Type.Object({ slug: Slug, nameFr: Name, nameEn: Name, weightPct: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 100 })) }, { additionalProperties: false }), { maxItems: 20 }),
      response: { 200: Type.Array(CollegeView), ...Errors },
    },
  }, async (req) => replaceColleges(db, req.body, actor(req)));

  app.put('/api/governance/categories/:slug', {
    schema: {
      tags: ['governance'], summary: 'Create or change a dues category', params: Type.Object({ slug: Slug }),
      body: Type.Object({
        nameFr: Name, nameEn: Name, amountCents: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
        period: Type.Union([Type.Literal('year'), Type.Literal('days')]), periodDays: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 3660 }))),
      }, { additionalProperties: false }),
      response: { 200: CategoryView, ...Errors },
    },
  }, async (req) => upsertCategory(db, { slug: req.params.slug, ...req.body }, actor(req)));

  app.get('/api/governance/counts', {
    schema: { tags: ['governance'], summary: 'Admitted members per college: counts only, no names (what the city sees)',
      response: { 200: Type.Array(Type.Object({ college: Type.String(), nameFr: Type.String(), nameEn: Type.String(), members: Type.Integer() })) } },
  }, async () => countsByCollege(db));

  const ServiceSettingView = Type.Object({ service: Type.String(), openForSignup: Nullable(Type.Boolean()), membersOnly: Type.Boolean(), defaultQuotaMb: Nullable(Type.Integer()) });
  app.get('/api/services/settings', {
    schema: { tags: ['governance'], summary: 'What the association decided for each service (over its manifest)', response: { 200: Type.Array(ServiceSettingView) } },
  }, async () => [...serviceSettingsMap(db).values()]);

  app.put('/api/services/:id/settings', {
    schema: {
      tags: ['governance'], summary: 'Open or close a service to sign-up, keep it for members, set its default quota',
      params: Type.Object({ id: Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' }) }),
      body: Type.Partial(Type.Object({ openForSignup: Type.Boolean(), membersOnly: Type.Boolean(), defaultQuotaMb: Nullable(Type.Integer({ minimum: 1, maximum: 1024 * 1024 })) }), { additionalProperties: false, minProperties: 1 }),
      response: { 200: ServiceSettingView, ...Errors },
    },
  }, async (req) => {
    const s = setServiceSettings(db, catalog, req.params.id, req.body, actor(req));
    // Members-only changed: the gate follows at once (suspending or resuming), not at the next timer pass.
    if (req.body.membersOnly !== undefined) void duesGatePass(deps.accounts).catch((err) => req.log.warn({ err }, 'dues gate after a settings change failed'));
    return s;
  });

  // ── members and dues ──
  const MemberInput = Type.Object({
    kind: Type.Union([Type.Literal('person'), Type.Literal('organisation')]), name: Name,
    representative: Type.Optional(Nullable(Name)), email: Type.Optional(Nullable(Type.String({ maxLength: 254 }))),
    userId: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))), college: Type.Optional(Nullable(Slug)), category: Type.Optional(Nullable(Slug)),
  }, { additionalProperties: false });

  app.get('/api/members', {
    schema: { tags: ['governance'], summary: 'Members and applicants', querystring: Type.Object({ status: Type.Optional(Type.Union(MEMBER_STATUS.map((s) => Type.Literal(s)))) }), response: { 200: Type.Array(MemberView) } },
  }, async (req) => listMembers(db, req.query.status).map(memberView));

  app.post('/api/members', {
    schema: { tags: ['governance'], summary: 'Record an application (a paper form typed in)', body: MemberInput, response: { 201: MemberView, ...Errors } },
  }, async (req, reply) => { reply.code(201); return memberView(applyForMembership(db, req.body, actor(req))); });

  app.get('/api/members/:id', {
    schema: { tags: ['governance'], summary: 'One member\'s record, with their journal', params: Id, response: { 200: Type.Object({ member: MemberView, history: Type.Array(Any), payments: Type.Array(PaymentView) }), 404: ErrorReply } },
  }, async (req) => {
    const r = memberRecord(db, req.params.id);
    return { member: memberView(r.member), history: r.history, payments: paymentsOf(db, req.params.id) };
  });

  app.patch('/api/members/:id', {
    schema: {
      tags: ['governance'], summary: 'Change a member\'s college, dues category, contact or seat on the board', params: Id,
      body: Type.Partial(Type.Object({ college: Slug, category: Nullable(Slug), email: Nullable(Type.String({ maxLength: 254 })), representative: Nullable(Name), board: Type.Boolean() }), { additionalProperties: false, minProperties: 1 }),
      response: { 200: MemberView, ...Errors },
    },
  }, async (req) => memberView(updateMember(db, req.params.id, req.body, actor(req))));

  app.post('/api/members/:id/admit', {
    schema: { tags: ['governance'], summary: 'Admit an applicant (the board)', params: Id, response: { 200: MemberView, ...Errors } },
  }, async (req) => memberView(admit(db, req.params.id, actor(req))));

  const Reason = Type.Object({ reason: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false });
  app.post('/api/members/:id/refuse', {
    schema: { tags: ['governance'], summary: 'Refuse an application, with the reason', params: Id, body: Reason, response: { 200: MemberView, ...Errors } },
  }, async (req) => memberView(refuse(db, req.params.id, actor(req), req.body.reason)));

  app.post('/api/members/:id/resign', {
    schema: { tags: ['governance'], summary: 'Record a resignation', params: Id, response: { 200: MemberView, ...Errors } },
  }, async (req) => memberView(resign(db, req.params.id, actor(req))));

  app.post('/api/members/:id/exclude', {
    schema: {
      tags: ['governance'], summary: 'Exclude a member: the reason and the decision that made it are required', params: Id,
      body: Type.Object({ reason: Type.String({ minLength: 1, maxLength: 1000 }), decision: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
      response: { 200: MemberView, ...Errors },
    },
  }, async (req) => memberView(exclude(db, req.params.id, actor(req), req.body.reason, req.body.decision)));

  app.get('/api/members/:id/payments', {
    schema: { tags: ['governance'], summary: 'A member\'s dues payments', params: Id, response: { 200: Type.Array(PaymentView), 404: ErrorReply } },
  }, async (req) => { getMember(db, req.params.id); return paymentsOf(db, req.params.id); });

  app.post('/api/members/:id/payments', {
    schema: {
      tags: ['governance'], summary: 'Record dues received by hand (cash, cheque, transfer); services held for lapsed dues resume', params: Id,
      body: Type.Object({
        amountCents: Type.Integer({ minimum: 0, maximum: 10_000_000 }), method: Type.Union(PAYMENT_METHODS.map((m) => Type.Literal(m))),
        reference: Type.Optional(Type.String({ maxLength: 200 })), paidOn: Type.Optional(Type.String({ format: 'date' })), category: Type.Optional(Slug),
      }, { additionalProperties: false }),
      response: { 201: Type.Object({ payment: PaymentView, member: MemberView, resumed: Type.Array(Type.String()) }), ...Errors },
    },
  }, async (req, reply) => {
    const payment = recordPayment(db, req.params.id, req.body, actor(req));
    const gate = await duesGatePass(deps.accounts, today(), req.params.id);
    reply.code(201);
    return { payment, member: memberView(getMember(db, req.params.id)), resumed: gate.resumed };
  });

  // ── meetings and polls ──
  app.get('/api/meetings', {
    schema: { tags: ['governance'], summary: 'Meetings (general assemblies, board)', response: { 200: Type.Array(Any) } },
  }, async () => listMeetings(db));

  app.post('/api/meetings', {
    schema: {
      tags: ['governance'], summary: 'Call a meeting',
      body: Type.Object({
        kind: Type.Union([Type.Literal('general'), Type.Literal('board')]), title: Name, startsAt: Type.String({ maxLength: 40 }),
        agenda: Type.Optional(Type.String({ maxLength: 20_000 })), quorumPct: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })), quorumPerCollege: Type.Optional(Type.Boolean()),
      }, { additionalProperties: false }),
      response: { 201: Any, ...Errors },
    },
  }, async (req, reply) => { reply.code(201); return createMeeting(db, req.body, actor(req)); });

  app.get('/api/meetings/:id', {
    schema: { tags: ['governance'], summary: 'A meeting: attendance, proxies and quorum', params: Id, response: { 200: Any, 404: ErrorReply } },
  }, async (req) => {
    const s = meetingState(db, req.params.id);
    return {
      meeting: s.meeting, eligible: s.eligible, takingPart: s.taking, quorumReached: s.reached,
      present: [...s.present], proxies: s.proxies.map((p) => ({ giverId: p.giverId, holderId: p.holderId })),
    };
  });

  app.put('/api/meetings/:id/attendance', {
    schema: {
      tags: ['governance'], summary: 'Mark a member present or absent', params: Id,
      body: Type.Object({ memberId: Type.Integer({ minimum: 1 }), present: Type.Boolean() }, { additionalProperties: false }), response: { 204: Type.Null(), ...Errors },
    },
  }, async (req, reply) => { markPresent(db, req.params.id, req.body.memberId, req.body.present, actor(req)); return reply.code(204).send(null); });

  app.post('/api/meetings/:id/proxies', {
    schema: {
      tags: ['governance'], summary: 'Record a proxy (a signed paper one) from one member to another', params: Id,
      body: Type.Object({ giverId: Type.Integer({ minimum: 1 }), holderId: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }), response: { 204: Type.Null(), ...Errors },
    },
  }, async (req, reply) => { giveProxy(db, req.params.id, req.body.giverId, req.body.holderId, actor(req)); return reply.code(204).send(null); });

  app.get('/api/polls', {
    schema: { tags: ['governance'], summary: 'Polls, newest first', response: { 200: Type.Array(PollView) } },
  }, async () => listPolls(db).map(pollView));

  app.post('/api/polls', {
    schema: {
      tags: ['governance'], summary: 'Open a poll: a proposal (with an optional action on the hoster), a single choice, a majority judgment or a ranked choice',
      body: Type.Object({
        kind: Type.Union(POLL_KINDS.map((k) => Type.Literal(k))), title: Name, body: Type.Optional(Type.String({ maxLength: 20_000 })),
        options: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 20 })), secret: Type.Boolean(),
        electorate: Type.Optional(Type.Union([Type.Literal('members'), Type.Literal('board')])),
        quorumPct: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })), quorumPerCollege: Type.Optional(Type.Boolean()),
        opensAt: Type.String({ maxLength: 40 }), closesAt: Type.String({ maxLength: 40 }), meetingId: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
        action: Type.Optional(Nullable(Action)),
      }, { additionalProperties: false }),
      response: { 201: PollView, ...Errors },
    },
  }, async (req, reply) => { reply.code(201); return pollView(createPoll({ db, catalog }, req.body, actor(req))); });

  app.get('/api/polls/:id', {
    schema: { tags: ['governance'], summary: 'A poll, with its turnout; its count once closed', params: Id, response: { 200: PollView, 404: ErrorReply } },
  }, async (req) => pollView(getPoll(db, req.params.id)));

  app.post('/api/polls/:id/apply', {
    schema: { tags: ['governance'], summary: 'Apply a passed decision\'s action again, after it failed', params: Id, response: { 200: PollView, ...Errors } },
  }, async (req) => pollView(runAction({ db, catalog, log: deps.accounts.log }, req.params.id, actor(req))));

  app.get('/api/decisions', {
    schema: { tags: ['governance'], summary: 'The public register of decisions: text, date, count per college, quorum, action', response: { 200: Type.Array(PollView) } },
  }, async () => decisions(db).map(pollView));
};
