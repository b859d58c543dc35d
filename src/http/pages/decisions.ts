// The public register of decisions: every poll once closed and counted, with its text, its date, its outcome, the
// quorum, the count per college, and the action it carried with what became of it. Open to anyone, like the
// association's minutes; a secret ballot's count says nothing of who chose what (the stored result has no voter).
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { fail } from '../../errors.js';
import { decisions, getPoll } from '../../governance/polls.js';
import { translator } from '../i18n.js';
import type { PageDeps } from './deps.js';
import { langOf } from './render.js';
import { actionText, tallyView, when } from './gov-view.js';

const page = { page: true } as const;
const Query = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })) });
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

export const decisionPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const { db } = deps;

  app.get('/decisions', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) => {
    const lang = langOf(req);
    const rows = decisions(db).map((p) => ({
      id: p.id, title: p.title, kind: p.kind, closedAt: when(p.closedAt, lang), outcome: p.outcome,
      quorum: (p.result as { quorum?: { reached?: boolean } } | null)?.quorum?.reached ?? null,
      action: actionText(p, lang), actionStatus: p.actionStatus,
    }));
    return reply.page('decisions', { rows });
  });

  app.get('/decisions/:id', { config: page, schema: { hide: true, params: IdParams, querystring: Query } }, async (req, reply) => {
    const lang = langOf(req);
    const p = getPoll(db, req.params.id);
    // Only a counted poll is in the register: an open one's partial count is nobody's to see.
    if (!p.closedAt) throw fail('CATTERY_ERR_NOT_FOUND', `no decision ${req.params.id}`);
    return reply.page('decision', {
      d: {
        id: p.id, title: p.title, body: p.body, kind: p.kind, secret: p.secret, board: p.electorate === 'board',
        opensAt: when(p.opensAt, lang), closesAt: when(p.closesAt, lang), closedAt: when(p.closedAt, lang), outcome: p.outcome,
        action: actionText(p, lang), actionStatus: p.actionStatus, actionError: p.actionError, actionAt: when(p.actionAt, lang),
      },
      tally: tallyView(db, p, lang, translator(lang)),
    });
  });
};
