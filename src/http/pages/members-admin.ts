// Members as the board and the administrators manage them: applicants to admit or refuse, members' college,
// category and seat on the board, exclusion (its reason and the decision that made it are required), a paper
// application typed in, and (administrators only: they keep the accounts) a payment of dues received by hand.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { recordPayment, statusesOn, today } from '../../governance/dues.js';
import { admit, applyForMembership, exclude, getMember, listMembers, refuse, updateMember } from '../../governance/members.js';
import { PAYMENT_METHODS, type Member } from '../../governance/schema.js';
import { listCategories, listColleges } from '../../governance/settings.js';
import { translator } from '../i18n.js';
import type { PageDeps } from './deps.js';
import { langOf } from './render.js';
import { centsOf, day, euros, namesOf, refused } from './gov-view.js';

const page = { page: true } as const;
const Csrf = Type.Optional(Type.String({ maxLength: 200 }));
const Text = (max: number) => Type.Optional(Type.String({ maxLength: max }));
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const Query = Type.Object({
  lang: Type.Optional(Type.String({ maxLength: 5 })), done: Type.Optional(Type.String({ maxLength: 20 })), m: Type.Optional(Type.Integer({ minimum: 1 })),
});
const AddForm = Type.Object({
  _csrf: Csrf, kind: Type.Union([Type.Literal('person'), Type.Literal('organisation')]), name: Type.String({ maxLength: 300 }),
  representative: Text(300), email: Text(300), college: Text(60), category: Text(60),
}, { additionalProperties: false });
const Empty = Type.Object({ _csrf: Csrf }, { additionalProperties: false });
const RefuseForm = Type.Object({ _csrf: Csrf, reason: Type.String({ maxLength: 1200 }) }, { additionalProperties: false });
const ExcludeForm = Type.Object({ _csrf: Csrf, reason: Type.String({ maxLength: 1200 }), decision: Type.String({ maxLength: 300 }) }, { additionalProperties: false });
const UpdateForm = Type.Object({ _csrf: Csrf, college: Text(60), category: Text(60), board: Text(3) }, { additionalProperties: false });
const PaymentForm = Type.Object({
  _csrf: Csrf, amount: Type.String({ maxLength: 20 }), method: Type.Union(PAYMENT_METHODS.map((m) => Type.Literal(m))),
  reference: Text(300), paidOn: Text(20), category: Text(60),
}, { additionalProperties: false });
const DONE = new Set(['added', 'admitted', 'refused', 'updated', 'excluded', 'paid']);

export const memberAdminPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const { db } = deps;
  const actor = (req: FastifyRequest) => req.principal!.id;

  function render(req: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
    const lang = langOf(req);
    const names = namesOf(db, lang);
    const statuses = statusesOn(db);
    const all = listMembers(db);
    const cols = listColleges(db);
    const cats = listCategories(db);
    const row = (m: Member) => {
      const s = statuses.get(m.id);
      const cat = cats.find((c) => c.id === m.categoryId);
      return {
        id: m.id, kind: m.kind, name: m.name, representative: m.representative, email: m.email, status: m.status, board: m.board,
        college: names.college(m), collegeSlug: cols.find((c) => c.id === m.collegeId)?.slug ?? '', category: names.category(m),
        categorySlug: cat?.slug ?? '', amount: cat ? (cat.amountCents / 100).toFixed(2) : '',
        appliedAt: day(m.appliedAt, lang), admittedAt: day(m.admittedAt, lang), leftAt: day(m.leftAt, lang),
        reason: m.exclusionReason, decision: m.exclusionDecision,
        dues: s ? { status: s.status, until: day(s.until, lang), free: s.until === null && s.status === 'current' } : null,
      };
    };
    const done = extra.done as string | null | undefined;
    const who = extra.who as number | undefined;
    return reply.page('admin-members', {
      applicants: all.filter((m) => m.status === 'applicant').map(row),
      members: all.filter((m) => m.status === 'admitted').map(row),
      former: all.filter((m) => !['applicant', 'admitted'].includes(m.status)).map(row),
      colleges: cols.map((c) => ({ slug: c.slug, name: lang === 'fr' ? c.nameFr : c.nameEn })),
      categories: cats.map((c) => ({ slug: c.slug, name: lang === 'fr' ? c.nameFr : c.nameEn, amount: euros(c.amountCents, lang) })),
      methods: PAYMENT_METHODS, today: today(), isAdmin: req.principal?.roles.includes('admin') ?? false,
      done: done && DONE.has(done) ? done : null, doneName: who ? (() => { try { return getMember(db, who).name; } catch { return ''; } })() : '',
      refusal: null, addValues: { kind: 'person' }, ...extra,
    }, status);
  }

  /** One change to a member; a refusal comes back on the page with its reason, a success as a fresh page. */
  const change = (req: FastifyRequest, reply: FastifyReply, done: string, id: number, fn: () => unknown) => {
    try { fn(); } catch (err) {
      const r = refused(reply, err, translator(langOf(req)));
      return render(req, reply, { refusal: r.text }, r.status);
    }
    return reply.redirect(`/admin/members?done=${done}&m=${id}`, 303);
  };

  app.get('/admin/members', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) =>
    render(req, reply, { done: req.query.done ?? null, who: req.query.m }));

  app.post('/admin/members', { config: page, schema: { hide: true, body: AddForm } }, async (req, reply) => {
    const b = req.body;
    try {
      const m = applyForMembership(db, {
        kind: b.kind, name: b.name, representative: b.representative || null, email: b.email?.trim() || null, college: b.college || null, category: b.category || null,
      }, actor(req));
      return reply.redirect(`/admin/members?done=added&m=${m.id}`, 303);
    } catch (err) {
      const r = refused(reply, err, translator(langOf(req)));
      return render(req, reply, { refusal: r.text, addValues: b }, r.status);
    }
  });

  app.post('/admin/members/:id/admit', { config: page, schema: { hide: true, params: IdParams, body: Empty } }, async (req, reply) =>
    change(req, reply, 'admitted', req.params.id, () => admit(db, req.params.id, actor(req))));

  app.post('/admin/members/:id/refuse', { config: page, schema: { hide: true, params: IdParams, body: RefuseForm } }, async (req, reply) =>
    change(req, reply, 'refused', req.params.id, () => refuse(db, req.params.id, actor(req), req.body.reason)));

  app.post('/admin/members/:id', { config: page, schema: { hide: true, params: IdParams, body: UpdateForm } }, async (req, reply) =>
    change(req, reply, 'updated', req.params.id, () => {
      updateMember(db, req.params.id, {
        ...(req.body.college ? { college: req.body.college } : {}), category: req.body.category || null, board: req.body.board === 'yes',
      }, actor(req));
    }));

  app.post('/admin/members/:id/exclude', { config: page, schema: { hide: true, params: IdParams, body: ExcludeForm } }, async (req, reply) =>
    change(req, reply, 'excluded', req.params.id, () => exclude(db, req.params.id, actor(req), req.body.reason, req.body.decision)));

  app.post('/admin/members/:id/payments', { config: page, schema: { hide: true, params: IdParams, body: PaymentForm } }, async (req, reply) => {
    const cents = centsOf(req.body.amount);
    if (cents === null) {
      reply.header('x-cattery-error', 'CATTERY_ERR_VALIDATION');
      return render(req, reply, { refusal: translator(langOf(req))('gov.err.amount') }, 400);
    }
    return change(req, reply, 'paid', req.params.id, () => recordPayment(db, req.params.id, {
      amountCents: cents, method: req.body.method, reference: req.body.reference ?? '', ...(req.body.paidOn ? { paidOn: req.body.paidOn } : {}),
      ...(req.body.category ? { category: req.body.category } : {}),
    }, actor(req)));
  });
};
