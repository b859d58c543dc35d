// "My membership": a person's own place in the association. Their status, their dues and until when, their receipts,
// the notice of a coming suspension, the reminders meant for them, their own journal; the application form when they
// are not a member; resignation; and their whole record to download (JSON).
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { fail } from '../../errors.js';
import { pendingSuspension } from '../../governance/dues-gate.js';
import { paymentsOf, statusesOn } from '../../governance/dues.js';
import { applyForMembership, memberOfUser, memberRecord, resign } from '../../governance/members.js';
import { pageReminders } from '../../governance/reminders.js';
import { listCategories, listColleges } from '../../governance/settings.js';
import { translator } from '../i18n.js';
import type { PageDeps } from './deps.js';
import { me } from './me.js';
import { langOf } from './render.js';
import { day, euros, journalLabel, namesOf, refused, when } from './gov-view.js';

const page = { page: true } as const;
const Csrf = Type.Optional(Type.String({ maxLength: 200 }));
const ApplyForm = Type.Object({
  _csrf: Csrf, name: Type.String({ maxLength: 300 }), email: Type.Optional(Type.String({ maxLength: 300 })),
  college: Type.Optional(Type.String({ maxLength: 60 })), category: Type.Optional(Type.String({ maxLength: 60 })),
}, { additionalProperties: false });
const ResignForm = Type.Object({ _csrf: Csrf, confirm: Type.Literal('yes') }, { additionalProperties: false });
const Query = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })), done: Type.Optional(Type.String({ maxLength: 20 })) });
const DONE = new Set(['applied', 'resigned']);

export const membershipPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const { db } = deps;

  function render(req: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
    const user = me(req);
    const lang = langOf(req);
    const m = memberOfUser(db, user.id);
    const names = namesOf(db, lang);
    const colleges = listColleges(db).map((c) => ({ slug: c.slug, name: lang === 'fr' ? c.nameFr : c.nameEn }));
    const categories = listCategories(db).map((c) => ({ slug: c.slug, name: lang === 'fr' ? c.nameFr : c.nameEn, amount: euros(c.amountCents, lang), period: c.period, days: c.periodDays }));
    const base = { colleges, categories, values: { name: user.name, email: user.email ?? '' }, errors: [], refusal: null, done: null };
    if (!m) return reply.page('membership', { ...base, member: null, ...extra }, status);
    const dues = m.status === 'admitted' ? statusesOn(db, undefined, [m.id]).get(m.id) ?? null : null;
    const rec = memberRecord(db, m.id);
    return reply.page('membership', {
      ...base,
      member: {
        id: m.id, status: m.status, board: m.board, college: names.college(m), category: names.category(m),
        appliedAt: day(m.appliedAt, lang), admittedAt: day(m.admittedAt, lang), leftAt: day(m.leftAt, lang), reason: m.exclusionReason,
      },
      dues: dues && { status: dues.status, until: day(dues.until, lang), graceUntil: day(dues.graceUntil, lang), free: dues.until === null && dues.status === 'current' },
      payments: paymentsOf(db, m.id).map((p) => ({
        paidOn: day(p.paidOn, lang), amount: euros(p.amountCents, lang), method: p.method, reference: p.reference,
        covers: `${day(p.coversFrom, lang)} – ${day(p.coversUntil, lang)}`,
      })),
      suspension: (() => { const s = pendingSuspension(deps.accounts, m.id); return s && { on: day(s.on, lang), services: s.services.map((id) => deps.catalog.services.get(id)?.manifest.name[lang] ?? id) }; })(),
      reminders: pageReminders(db, m.id).map((r) => ({ kind: r.kind, until: day(r.periodUntil, lang), graceUntil: day(r.graceUntil, lang) })),
      history: rec.history.map((h) => ({ at: when(h.at, lang), what: journalLabel(h.kind, lang), actor: h.actor })),
      voted: rec.voted.map((v) => ({ title: v.title, secret: v.secret, byProxy: v.castBy !== m.id })),
      ...extra,
    }, status);
  }

  app.get('/me/membership', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) =>
    render(req, reply, { done: req.query.done && DONE.has(req.query.done) ? req.query.done : null }));

  app.post('/me/membership/apply', { config: page, schema: { hide: true, body: ApplyForm } }, async (req, reply) => {
    const user = me(req);
    const t = translator(langOf(req));
    const b = req.body;
    const values = { name: b.name, email: b.email ?? '', college: b.college ?? '', category: b.category ?? '' };
    // Said kindly next to the field first; the domain checks all of it again.
    const errors: { field: string; key: string }[] = [];
    if (!b.name.trim()) errors.push({ field: 'name', key: 'gov.err.name' });
    if (listColleges(db).length && !b.college) errors.push({ field: 'college', key: 'gov.err.college' });
    if (errors.length) return render(req, reply, { values, errors }, 400);
    try {
      applyForMembership(db, {
        kind: 'person', name: b.name, email: b.email?.trim() || null, userId: user.id, college: b.college || null, category: b.category || null,
      }, `user:${user.login}`);
    } catch (err) {
      const r = refused(reply, err, t);
      return render(req, reply, { values, refusal: r.text }, r.status);
    }
    return reply.redirect('/me/membership?done=applied', 303);
  });

  app.post('/me/membership/resign', { config: page, schema: { hide: true, body: ResignForm } }, async (req, reply) => {
    const user = me(req);
    const m = memberOfUser(db, user.id);
    if (!m) throw fail('CATTERY_ERR_NOT_FOUND', 'you are not a member');
    try {
      resign(db, m.id, `user:${user.login}`);
    } catch (err) {
      const r = refused(reply, err, translator(langOf(req)));
      return render(req, reply, { refusal: r.text }, r.status);
    }
    return reply.redirect('/me/membership?done=resigned', 303);
  });

  // `acts`: a download of one's record, refused from another site's page (csrf.ts checkOwnSite), as the account export.
  app.get('/me/membership/export', { config: { ...page, acts: true }, schema: { hide: true } }, async (req, reply) => {
    const user = me(req);
    const m = memberOfUser(db, user.id);
    if (!m) throw fail('CATTERY_ERR_NOT_FOUND', 'you have no membership record');
    const rec = memberRecord(db, m.id);
    const dues = statusesOn(db, undefined, [m.id]).get(m.id);
    const body = {
      exportedAt: new Date().toISOString(),
      member: rec.member, dues: dues ? { status: dues.status, until: dues.until, graceUntil: dues.graceUntil } : null,
      payments: paymentsOf(db, m.id), history: rec.history, voted: rec.voted,
    };
    reply.header('content-type', 'application/json; charset=utf-8')
      .header('content-disposition', `attachment; filename="membership-${m.id}.json"`)
      .header('cache-control', 'no-store');
    return reply.send(JSON.stringify(body, null, 2));
  });
};
