// The public transparency pages (no sign-in; publication/transparency*.ts): where data and backups live, who else
// handles them and how long things are kept (/transparency), the software of every image (/transparency/software),
// the register of requests from authorities as counts (/transparency/requests), the yearly activity report as HTML
// and as PDF (/transparency/report/<year>[.pdf]); and the administrators' side of the register (/admin/requests).
import fs from 'node:fs';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Eta } from 'eta';
import { fail } from '../../errors.js';
import { softwareDir } from '../../orchestrator/docker/index.js';
import { formatNumber, type Lang } from '../../publication/charts.js';
import { listRequests, recordRequest, registerCounts, validDay } from '../../publication/register.js';
import { ANSWERS, AUTHORITY_KINDS, REQUEST_TYPES } from '../../publication/schema.js';
import { transparencyFacts } from '../../publication/transparency.js';
import { reportCacheDir, reportPrinter, yearReport, type YearReport } from '../../publication/transparency-report.js';
import { softwareByImage, softwareTotals } from '../../publication/transparency-software.js';
import { translator } from '../i18n.js';
import { VIEWS_DIR, type PageDeps } from './deps.js';
import { langOf } from './render.js';

const page = { page: true } as const;
const Query = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })) });
const ReportParams = Type.Object({ file: Type.String({ maxLength: 16 }) });
const REPORT_FILE = /^(\d{4})(\.pdf)?$/;
const AdminQuery = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })), done: Type.Optional(Type.Literal('1')) });
export const RequestForm = Type.Object({
  _csrf: Type.Optional(Type.String({ maxLength: 200 })),
  receivedOn: Type.String({ maxLength: 10 }),
  type: Type.Union(REQUEST_TYPES.map((t) => Type.Literal(t))),
  authority: Type.Union(AUTHORITY_KINDS.map((t) => Type.Literal(t))),
  answer: Type.Union(ANSWERS.map((t) => Type.Literal(t))),
  note: Type.Optional(Type.String({ maxLength: 4000 })),
}, { additionalProperties: false });

const countryName = (code: string, lang: Lang) => {
  try { return new Intl.DisplayNames([lang], { type: 'region' }).of(code) ?? code; } catch { return code; }
};
const monthLabel = (month: string, lang: Lang) => new Intl.DateTimeFormat(lang, { month: 'short', timeZone: 'UTC' }).format(new Date(`${month}-01T00:00:00Z`));

export const transparencyPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const swDir = softwareDir(deps.config.dataDir);
  // The PDF's document is rendered without the site's layout (no menu, no link out) and with its style sheet inline:
  // Chromium prints it with every request blocked.
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true });
  const css = () => fs.readFileSync(path.join(VIEWS_DIR, 'cattery.css'), 'utf8');
  const printReport = reportPrinter({ chromium: deps.config.chromium, cacheDir: reportCacheDir(deps.config.dataDir) });

  app.get('/transparency', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) => {
    const lang = langOf(req);
    const tr = translator(lang);
    return reply.page('transparency', {
      title: tr('tr.nav'), f: transparencyFacts(deps.db, deps.config), country: (c: string) => countryName(c, lang),
      year: new Date().getUTCFullYear(),
    });
  });

  app.get('/transparency/software', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) => {
    const images = softwareByImage(deps.catalog, swDir);
    return reply.page('transparency-software', { title: translator(langOf(req))('tr.sw.title'), images, totals: softwareTotals(images) });
  });

  app.get('/transparency/requests', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) =>
    reply.page('transparency-requests', { title: translator(langOf(req))('tr.req.title'), years: registerCounts(deps.db), types: REQUEST_TYPES }));

  const reportData = (r: YearReport, lang: Lang) => {
    const images = softwareByImage(deps.catalog, swDir);
    return {
      r, types: REQUEST_TYPES, software: softwareTotals(images),
      n: (v: number | null, d = 0) => (v === null ? null : formatNumber(v, lang, d)),
      month: (m: string) => monthLabel(m, lang),
      kg: r.energyKwh === null ? null : formatNumber((r.energyKwh * r.gridGPerKwh) / 1000, lang, 1),
    };
  };

  app.get('/transparency/report/:file', { config: page, schema: { hide: true, params: ReportParams, querystring: Query } }, async (req, reply) => {
    const m = REPORT_FILE.exec(req.params.file);
    if (!m) throw fail('CATTERY_ERR_NOT_FOUND', 'No such report: <year> or <year>.pdf');
    const lang = langOf(req);
    const tr = translator(lang);
    const r = yearReport(deps, Number(m[1]));
    const title = tr('tr.rep.title', { year: r.year });
    if (!m[2]) return reply.page('transparency-report', { title, ...reportData(r, lang), pdf: true });
    const html = () => {
      const body = eta.render('./transparency-report', { lang, t: tr, title, ...reportData(r, lang), pdf: false });
      return `<!doctype html><html lang="${lang}"><head><meta charset="utf-8"><title>${title}</title><style>${css()}</style></head><body><main>${body}</main></body></html>`;
    };
    const pdf = await printReport(r.year, lang, r.complete, html);
    // No public cache header: the language comes from the query, a cookie or Accept-Language, and a shared cache
    // keyed on the URL alone could hand one reader another's language. The file kept on disk is the cache.
    reply.header('content-type', 'application/pdf').header('content-disposition', `inline; filename="report-${r.year}-${lang}.pdf"`);
    return reply.send(pdf);
  });

  app.get('/admin/requests', { config: page, schema: { hide: true, querystring: AdminQuery } }, async (req, reply) =>
    reply.page('admin-requests', {
      title: translator(langOf(req))('tr.admin.title'), rows: listRequests(deps.db), done: req.query.done === '1', errors: [], form: {},
      types: REQUEST_TYPES, authorities: AUTHORITY_KINDS, answers: ANSWERS, today: new Date().toISOString().slice(0, 10),
    }));

  app.post('/admin/requests', { config: page, schema: { hide: true, querystring: Query, body: RequestForm } }, async (req, reply) => {
    const b = req.body;
    if (!validDay(b.receivedOn)) {
      return reply.page('admin-requests', {
        title: translator(langOf(req))('tr.admin.title'), rows: listRequests(deps.db), done: false, form: b,
        errors: [{ field: 'receivedOn', key: 'tr.admin.err.day' }],
        types: REQUEST_TYPES, authorities: AUTHORITY_KINDS, answers: ANSWERS, today: new Date().toISOString().slice(0, 10),
      }, 400);
    }
    recordRequest(deps.db, { receivedOn: b.receivedOn, type: b.type, authority: b.authority, answer: b.answer, note: b.note ?? '' }, req.principal?.id ?? 'admin');
    return reply.redirect('/admin/requests?done=1', 303);
  });
};
