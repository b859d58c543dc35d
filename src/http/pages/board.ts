// The board's pages: meetings (general assemblies and board meetings) with their attendance, proxies and quorum, the
// polls of each with their turnout while open and their count once closed, and the form that puts a question to the
// vote (optionally with an action from the fixed list; a server's power curve stays with the API, its form would be
// as long as the rest). Every change goes through the domain (governance/polls.ts), which checks the statutes.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { listMembers } from '../../governance/members.js';
import {
  createMeeting, createPoll, getMeeting, giveProxy, listMeetings, listPolls, markPresent, meetingState, pollState, turnout, withdrawProxy,
} from '../../governance/polls.js';
import type { Poll } from '../../governance/schema.js';
import { getSettings, listColleges } from '../../governance/settings.js';
import { NO_COLLEGE } from '../../governance/tally.js';
import { translator } from '../i18n.js';
import type { PageDeps } from './deps.js';
import { langOf } from './render.js';
import { actionText, localInput, refused, tallyView, when } from './gov-view.js';

const page = { page: true } as const;
const Csrf = Type.Optional(Type.String({ maxLength: 200 }));
const Text = (max: number) => Type.Optional(Type.String({ maxLength: max }));
const Id = Type.String({ pattern: '^[0-9]{1,9}$' });
const Query = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })), done: Type.Optional(Type.String({ maxLength: 20 })) });
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

const MeetingForm = Type.Object({
  _csrf: Csrf, kind: Type.Union([Type.Literal('general'), Type.Literal('board')]), title: Type.String({ maxLength: 300 }),
  startsAt: Type.String({ maxLength: 40 }), agenda: Text(20_000), quorumPct: Text(3), quorumPerCollege: Text(3),
}, { additionalProperties: false });
export const ACTION_CHOICES = ['', 'signup-open', 'signup-close', 'members-only-on', 'members-only-off', 'default-quota', 'grace-days'] as const;
const PollForm = Type.Object({
  _csrf: Csrf, meetingId: Type.Optional(Id),
  kind: Type.Union([Type.Literal('proposal'), Type.Literal('single'), Type.Literal('judgment'), Type.Literal('ranked')]),
  title: Type.String({ maxLength: 300 }), body: Text(20_000), options: Text(5_000), secret: Text(3),
  electorate: Type.Optional(Type.Union([Type.Literal('members'), Type.Literal('board')])), quorumPct: Text(3), quorumPerCollege: Text(3),
  opensAt: Type.String({ maxLength: 40 }), closesAt: Type.String({ maxLength: 40 }),
  action: Type.Optional(Type.Union(ACTION_CHOICES.map((a) => Type.Literal(a)))), actionService: Text(60), actionNumber: Text(12),
}, { additionalProperties: false });
const AttendanceForm = Type.Object({ _csrf: Csrf, memberId: Id, present: Type.Union([Type.Literal('yes'), Type.Literal('no')]) }, { additionalProperties: false });
const ProxyForm = Type.Object({ _csrf: Csrf, giverId: Id, holderId: Id }, { additionalProperties: false });
const WithdrawForm = Type.Object({ _csrf: Csrf, giverId: Id }, { additionalProperties: false });

type PollBody = { [K in keyof typeof PollForm.static]?: string };

/** The action a poll form asks for, in the domain's shape (actions.ts checks it, and refuses what cannot apply). */
export function actionOf(b: PollBody): unknown {
  const service = b.actionService ?? '';
  const n = /^\d{1,9}$/.test(b.actionNumber ?? '') ? Number(b.actionNumber) : NaN;
  switch (b.action ?? '') {
    case 'signup-open': return { type: 'service.signup', service, open: true };
    case 'signup-close': return { type: 'service.signup', service, open: false };
    case 'members-only-on': return { type: 'service.membersOnly', service, membersOnly: true };
    case 'members-only-off': return { type: 'service.membersOnly', service, membersOnly: false };
    case 'default-quota': return { type: 'service.defaultQuota', service, quotaMb: n };
    case 'grace-days': return { type: 'dues.graceDays', days: n };
    default: return null;
  }
}

const MEETING_DONE = new Set(['created', 'attendance', 'proxy', 'withdrawn', 'poll']);
const pctOf = (s: string | undefined) => (s && /^\d{1,3}$/.test(s) ? Number(s) : undefined);

export const boardPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const { db } = deps;
  const actor = (req: FastifyRequest) => req.principal!.id;

  /** What the poll form needs: the services an action may name, defaults for a new poll, what was typed. */
  function pollForm(req: FastifyRequest, meetingId: number | null, values: PollBody | null) {
    const lang = langOf(req);
    const now = new Date();
    return {
      meetingId, meetingKind: meetingId === null ? null : getMeeting(db, meetingId).kind,
      services: [...deps.catalog.services.values()].map((s) => ({ id: s.manifest.id, name: s.manifest.name[lang] })),
      actions: ACTION_CHOICES,
      values: values ?? { kind: 'proposal', opensAt: localInput(now), closesAt: localInput(new Date(now.getTime() + 7 * 86_400_000)), action: '' },
    };
  }

  function pollRow(p: Poll, lang: 'fr' | 'en') {
    return {
      id: p.id, title: p.title, kind: p.kind, state: pollState(p), turnout: turnout(db, p.id), secret: p.secret,
      opensAt: when(p.opensAt, lang), closesAt: when(p.closesAt, lang), action: actionText(p, lang), outcome: p.outcome,
    };
  }

  function boardPage(req: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
    const lang = langOf(req);
    const now = new Date();
    return reply.page('board', {
      meetings: listMeetings(db).map((m) => ({ id: m.id, kind: m.kind, title: m.title, startsAt: when(m.startsAt, lang) })),
      polls: listPolls(db).filter((p) => p.meetingId === null).map((p) => pollRow(p, lang)),
      meetingValues: { kind: 'general', startsAt: localInput(now), quorumPct: '' },
      form: pollForm(req, null, null), refusal: null, done: null, ...extra,
    }, status);
  }

  function meetingPage(req: FastifyRequest, reply: FastifyReply, id: number, extra: Record<string, unknown> = {}, status = 200) {
    const lang = langOf(req);
    const t = translator(lang);
    const s = meetingState(db, id);
    const colleges = new Map(listColleges(db).map((c) => [c.id, lang === 'fr' ? c.nameFr : c.nameEn]));
    const names = new Map(listMembers(db, 'admitted').map((m) => [m.id, m.name]));
    const holderOf = new Map(s.proxies.map((p) => [p.giverId, p.holderId]));
    return reply.page('board-meeting', {
      m: {
        id: s.meeting.id, kind: s.meeting.kind, title: s.meeting.title, agenda: s.meeting.agenda, startsAt: when(s.meeting.startsAt, lang),
        quorumPct: s.meeting.quorumPct, quorumPerCollege: s.meeting.quorumPerCollege,
      },
      quorum: {
        reached: s.reached, taking: s.taking, eligible: s.eligible,
        perCollege: [...s.perCollege].map(([k, v]) => ({ name: k === NO_COLLEGE ? t('gov.college.all') : colleges.get(k) ?? t('gov.college.none'), ...v })),
      },
      maxProxies: getSettings(db).maxProxies,
      voters: s.voters.map((v) => ({
        id: v.id, name: v.name, college: v.collegeId === null ? '—' : colleges.get(v.collegeId) ?? '—', present: s.present.has(v.id),
        holder: holderOf.has(v.id) ? names.get(holderOf.get(v.id)!) ?? `#${holderOf.get(v.id)}` : null,
      })),
      proxies: s.proxies.map((p) => ({ giverId: p.giverId, giver: names.get(p.giverId) ?? `#${p.giverId}`, holder: names.get(p.holderId) ?? `#${p.holderId}`, counts: s.present.has(p.holderId) })),
      polls: listPolls(db).filter((p) => p.meetingId === id).map((p) => ({ ...pollRow(p, lang), tally: tallyView(db, p, lang, t) })),
      form: pollForm(req, id, null), refusal: null, done: null, ...extra,
    }, status);
  }

  app.get('/board', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) =>
    boardPage(req, reply, { done: req.query.done === 'poll' ? 'poll' : null }));

  app.post('/board/meetings', { config: page, schema: { hide: true, body: MeetingForm } }, async (req, reply) => {
    const b = req.body;
    let id: number;
    try {
      id = createMeeting(db, {
        kind: b.kind, title: b.title, startsAt: b.startsAt, agenda: b.agenda ?? '', quorumPct: pctOf(b.quorumPct) ?? 0, quorumPerCollege: b.quorumPerCollege === 'yes',
      }, actor(req)).id;
    } catch (err) {
      const r = refused(reply, err, translator(langOf(req)));
      return boardPage(req, reply, { refusal: r.text, meetingValues: b }, r.status);
    }
    return reply.redirect(`/board/meetings/${id}?done=created`, 303);
  });

  app.get('/board/meetings/:id', { config: page, schema: { hide: true, params: IdParams, querystring: Query } }, async (req, reply) => {
    getMeeting(db, req.params.id);
    return meetingPage(req, reply, req.params.id, { done: req.query.done && MEETING_DONE.has(req.query.done) ? req.query.done : null });
  });

  /** Runs one change of a meeting; a refusal comes back on the meeting page, a success as a fresh one. */
  const onMeeting = async (req: FastifyRequest, reply: FastifyReply, id: number, done: string, change: () => void) => {
    getMeeting(db, id);
    try { change(); } catch (err) {
      const r = refused(reply, err, translator(langOf(req)));
      return meetingPage(req, reply, id, { refusal: r.text }, r.status);
    }
    return reply.redirect(`/board/meetings/${id}?done=${done}`, 303);
  };

  app.post('/board/meetings/:id/attendance', { config: page, schema: { hide: true, params: IdParams, body: AttendanceForm } }, async (req, reply) =>
    onMeeting(req, reply, req.params.id, 'attendance', () => markPresent(db, req.params.id, Number(req.body.memberId), req.body.present === 'yes', actor(req))));

  app.post('/board/meetings/:id/proxies', { config: page, schema: { hide: true, params: IdParams, body: ProxyForm } }, async (req, reply) =>
    onMeeting(req, reply, req.params.id, 'proxy', () => giveProxy(db, req.params.id, Number(req.body.giverId), Number(req.body.holderId), actor(req))));

  app.post('/board/meetings/:id/proxies/withdraw', { config: page, schema: { hide: true, params: IdParams, body: WithdrawForm } }, async (req, reply) =>
    onMeeting(req, reply, req.params.id, 'withdrawn', () => withdrawProxy(db, req.params.id, Number(req.body.giverId), actor(req))));

  app.post('/board/polls', { config: page, schema: { hide: true, body: PollForm } }, async (req, reply) => {
    const b = req.body as PollBody;
    const meetingId = b.meetingId ? Number(b.meetingId) : null;
    if (meetingId !== null) getMeeting(db, meetingId);
    let id: number;
    try {
      id = createPoll(deps, {
        kind: req.body.kind, title: req.body.title, body: b.body ?? '', secret: b.secret === 'yes',
        options: (b.options ?? '').split(/\r?\n/).map((o) => o.trim()).filter(Boolean),
        electorate: req.body.electorate, quorumPct: pctOf(b.quorumPct), quorumPerCollege: b.quorumPerCollege === 'yes',
        opensAt: req.body.opensAt, closesAt: req.body.closesAt, meetingId, action: actionOf(b),
      }, actor(req)).id;
    } catch (err) {
      const r = refused(reply, err, translator(langOf(req)));
      const form = pollForm(req, meetingId, b);
      return meetingId === null ? boardPage(req, reply, { refusal: r.text, form }, r.status) : meetingPage(req, reply, meetingId, { refusal: r.text, form }, r.status);
    }
    req.log.info({ pollId: id }, 'poll created');
    return reply.redirect(meetingId === null ? `/board?done=poll` : `/board/meetings/${meetingId}?done=poll`, 303);
  });
};
