// Dues as the treasurer and the mediators see them: every member's status, the CSV files the treasurer's spreadsheet
// opens, and the printable list of reminders for members the association cannot write to (pageReminders).
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { allPayments, paidUntilOf, statusesOn } from '../../governance/dues.js';
import { listMembers } from '../../governance/members.js';
import { pageReminders } from '../../governance/reminders.js';
import type { PageDeps } from './deps.js';
import { langOf } from './render.js';
import { day, euros, namesOf } from './gov-view.js';

const page = { page: true } as const;
const Query = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })) });

/** A cell a spreadsheet reads as text, never as a formula: one that starts with = + - @ (or a tab or carriage return,
 * which some spreadsheets skip before looking) gets a leading apostrophe (OWASP, "CSV Injection"); then quoted as
 * RFC 4180 says when it holds a separator, a quote or a line break. */
export function csvCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A whole file: a header line, then rows, CRLF between lines (RFC 4180), and a byte-order mark so that a
 * spreadsheet reads the accents as UTF-8. */
export function csv(header: string[], rows: (string | number | boolean | null | undefined)[][]): string {
  return `\ufeff${[header, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n')}\r\n`;
}

export const duesPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const { db } = deps;

  app.get('/admin/dues', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) => {
    const lang = langOf(req);
    const names = namesOf(db, lang);
    const rows = [...statusesOn(db).values()].sort((a, b) => a.member.name.localeCompare(b.member.name, 'fr')).map((s) => ({
      id: s.member.id, name: s.member.name, category: names.category(s.member), status: s.status, free: s.until === null && s.status === 'current',
      until: day(s.until, lang), graceUntil: day(s.graceUntil, lang),
    }));
    const count = (st: string) => rows.filter((r) => r.status === st).length;
    const year = new Date().toISOString().slice(0, 4);
    const cashed = allPayments(db, year).reduce((sum, p) => sum + p.p.amountCents, 0);
    return reply.page('admin-dues', { rows, counts: { current: count('current'), grace: count('grace'), lapsed: count('lapsed') }, year, cashed: euros(cashed, lang) });
  });

  // `acts`: a download of people's data, refused from another site's page (csrf.ts checkOwnSite).
  app.get('/admin/members.csv', { config: { ...page, acts: true }, schema: { hide: true } }, async (_req, reply) => {
    const names = namesOf(db, 'fr');
    const statuses = statusesOn(db);
    const rows = listMembers(db).map((m) => {
      const s = statuses.get(m.id);
      return [m.id, m.kind, m.name, m.representative, m.email, names.college(m), names.category(m), m.status, m.board ? 'oui' : 'non',
        m.appliedAt.slice(0, 10), m.admittedAt?.slice(0, 10), m.leftAt?.slice(0, 10), s?.status ?? '', paidUntilOf(db, m.id), m.exclusionReason, m.exclusionDecision];
    });
    return sendCsv(reply, 'membres.csv', csv(['id', 'type', 'nom', 'representant', 'courriel', 'college', 'categorie', 'statut', 'bureau',
      'demande', 'admission', 'depart', 'cotisation', 'payee_jusqu_au', 'motif', 'decision'], rows));
  });

  app.get('/admin/payments.csv', { config: { ...page, acts: true }, schema: { hide: true } }, async (_req, reply) => {
    const rows = allPayments(db).map(({ p, name, category }) => [
      p.id, p.paidOn, p.memberId, name, category, (p.amountCents / 100).toFixed(2), p.method, p.reference, p.coversFrom, p.coversUntil, p.recordedBy,
    ]);
    return sendCsv(reply, 'cotisations.csv', csv(['id', 'date', 'membre', 'nom', 'categorie', 'montant_eur', 'moyen', 'reference', 'du', 'au', 'saisi_par'], rows));
  });

  app.get('/mediator/dues', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) => {
    const lang = langOf(req);
    const rows = pageReminders(db).sort((a, b) => a.name.localeCompare(b.name, 'fr')).map((r) => ({
      name: r.name, representative: r.representative, kind: r.kind, until: day(r.periodUntil, lang), status: r.status, graceUntil: day(r.graceUntil, lang),
    }));
    return reply.page('mediator-dues', { rows, date: day(new Date().toISOString(), lang) });
  });
};

function sendCsv(reply: import('fastify').FastifyReply, filename: string, body: string) {
  return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${filename}"`)
    .header('cache-control', 'no-store').send(body);
}
