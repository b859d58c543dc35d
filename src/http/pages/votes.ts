// The votes open to me: one form per poll with the inputs its kind needs (a proposal's four answers, one choice, a
// grade per option, a rank per option), and one more per member whose proxy I hold. Casting goes through the domain
// (governance/polls.ts castVote), which decides alone whether the ballot counts: once per member, while the poll is
// open, with the right to vote and the proxy held. The page says the outcome in plain words.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { statusesOn } from '../../governance/dues.js';
import { memberOfUser } from '../../governance/members.js';
import { castVote, getPoll, openPollsFor } from '../../governance/polls.js';
import type { Poll } from '../../governance/schema.js';
import { GRADES, PROPOSAL_CHOICES } from '../../governance/tally.js';
import { translator, type MessageKey } from '../i18n.js';
import type { PageDeps } from './deps.js';
import { me } from './me.js';
import { langOf } from './render.js';
import { actionText, optionLabel, refused, when } from './gov-view.js';

const page = { page: true } as const;
/** A poll has at most 20 options (polls.ts createPoll): a grade and a rank field for each. */
const MAX_OPTIONS = 20;
const Small = Type.Optional(Type.String({ maxLength: 4 }));
const VoteForm = Type.Object({
  _csrf: Type.Optional(Type.String({ maxLength: 200 })),
  forMember: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$' })),
  choice: Type.Optional(Type.String({ maxLength: 20 })),
  ...Object.fromEntries(Array.from({ length: MAX_OPTIONS }, (_, i) => [[`grade_${i}`, Small], [`rank_${i}`, Small]]).flat()),
}, { additionalProperties: false });
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const Query = Type.Object({
  lang: Type.Optional(Type.String({ maxLength: 5 })),
  done: Type.Optional(Type.Integer({ minimum: 1 })), for: Type.Optional(Type.Integer({ minimum: 1 })),
});

type Body = Record<string, string | undefined>;

/** The ballot a form's fields make for a poll, or the reason it is not one yet (the domain checks it again). */
export function ballotOf(p: Pick<Poll, 'kind' | 'options'>, b: Body): { choice: unknown } | { error: MessageKey } {
  const opts = p.options;
  switch (p.kind) {
    case 'proposal':
      return b.choice && (PROPOSAL_CHOICES as readonly string[]).includes(b.choice) ? { choice: b.choice } : { error: 'gov.err.choose' };
    case 'single': {
      const i = /^\d{1,2}$/.test(b.choice ?? '') ? Number(b.choice) : -1;
      return i >= 0 && i < opts.length ? { choice: opts[i] } : { error: 'gov.err.choose' };
    }
    case 'judgment': {
      const grades: Record<string, number> = {};
      for (const [i, o] of opts.entries()) {
        const g = b[`grade_${i}`];
        if (!g || !/^\d$/.test(g) || Number(g) >= GRADES.length) return { error: 'gov.err.grades' };
        grades[o] = Number(g);
      }
      return { choice: grades };
    }
    case 'ranked': {
      const ranks = opts.map((o, i) => ({ o, r: b[`rank_${i}`] ?? '' })).filter((x) => x.r !== '');
      if (!ranks.length) return { error: 'gov.err.ranks' };
      if (ranks.some((x) => !/^\d{1,2}$/.test(x.r) || Number(x.r) < 1 || Number(x.r) > opts.length)) return { error: 'gov.err.ranks' };
      if (new Set(ranks.map((x) => x.r)).size !== ranks.length) return { error: 'gov.err.rankTwice' };
      return { choice: ranks.sort((a, c) => Number(a.r) - Number(c.r)).map((x) => x.o) };
    }
  }
}

export const votePages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const { db } = deps;

  function render(req: FastifyRequest, reply: FastifyReply, extra: { done?: string | null; refusal?: { pollId: number; forMember: number | null; text: string } | null } = {}, status = 200) {
    const user = me(req);
    const lang = langOf(req);
    const t = translator(lang);
    const m = memberOfUser(db, user.id);
    const admitted = m?.status === 'admitted' ? m : null;
    const dues = admitted ? statusesOn(db, undefined, [admitted.id]).get(admitted.id) : undefined;
    const polls = admitted ? openPollsFor(db, admitted.id)
      // A board vote is the board's: other members do not see it (openPollsFor lists every open poll).
      .filter((x) => x.poll.electorate === 'members' || admitted.board)
      .map((x) => ({
        id: x.poll.id, kind: x.poll.kind, title: x.poll.title, body: x.poll.body, secret: x.poll.secret, board: x.poll.electorate === 'board',
        closesAt: when(x.poll.closesAt, lang), action: actionText(x.poll, lang),
        options: (x.poll.kind === 'proposal' ? [...PROPOSAL_CHOICES] : x.poll.options).map((o, i) => ({ i, value: x.poll.kind === 'proposal' ? o : String(i), label: optionLabel(x.poll, o, t) })),
        voted: x.voted, gaveTo: x.gaveTo, for: x.for,
      })) : [];
    return reply.page('votes', {
      member: admitted ? { id: admitted.id, name: admitted.name } : null, status: m?.status ?? null,
      lapsed: dues?.status === 'lapsed', polls, grades: GRADES.map((g, i) => ({ i, label: t(`gov.grade.${g}` as MessageKey) })),
      done: extra.done ?? null, refusal: extra.refusal ?? null,
    }, status);
  }

  app.get('/votes', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) => {
    let done: string | null = null;
    if (req.query.done) {
      const t = translator(langOf(req));
      try {
        const p = getPoll(db, req.query.done);
        const other = req.query.for ? openPollsFor(db, memberOfUser(db, me(req).id)?.id ?? 0).find((x) => x.poll.id === p.id)?.for.find((f) => f.memberId === req.query.for) : undefined;
        done = other ? t('gov.votes.doneFor', { title: p.title, name: other.name }) : t('gov.votes.done', { title: p.title });
      } catch { done = null; }
    }
    return render(req, reply, { done });
  });

  app.post('/votes/:id', { config: page, schema: { hide: true, params: IdParams, body: VoteForm } }, async (req, reply) => {
    const user = me(req);
    const t = translator(langOf(req));
    const body = req.body as Body;
    const forMember = body.forMember ? Number(body.forMember) : null;
    const answer = (key: string | null, text: string, code: string, status: number) => {
      reply.header('x-cattery-error', code);
      return render(req, reply, { refusal: { pollId: req.params.id, forMember, text: key ? t(key as MessageKey) : text } }, status);
    };
    const m = memberOfUser(db, user.id);
    if (m?.status !== 'admitted') return answer('gov.err.notMember', '', 'CATTERY_ERR_VOTE', 409);
    let poll: Poll;
    try { poll = getPoll(db, req.params.id); } catch (err) { const r = refused(reply, err, t); return answer(null, r.text, r.code, r.status); }
    const ballot = ballotOf(poll, body);
    if ('error' in ballot) return answer(ballot.error, '', 'CATTERY_ERR_VALIDATION', 400);
    try {
      castVote(db, poll.id, m.id, ballot.choice, forMember !== null && forMember !== m.id ? { forMemberId: forMember } : {});
    } catch (err) {
      const r = refused(reply, err, t);
      return answer(null, r.text, r.code, r.status);
    }
    req.log.info({ pollId: poll.id, proxy: forMember !== null && forMember !== m.id }, 'vote cast');
    return reply.redirect(`/votes?done=${poll.id}${forMember !== null && forMember !== m.id ? `&for=${forMember}` : ''}`, 303);
  });
};
