// The dashboards drawn as charts (publication/charts.ts): the city's (aggregates, after statistical secrecy), the
// administrators' (health, capacity, backups) and a resident's own. Each chart comes with its table, a one-sentence
// summary and a CSV of the same numbers at `<page>/<chart>.csv`; all of them rendered from one value. The only script
// is the city page's live power figure (live-power.js), and the page is whole without it.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { backupState } from '../../backups/status.js';
import { fail } from '../../errors.js';
import { listColleges } from '../../governance/settings.js';
import { csv, formatNumber, summary, svg, table, type Chart, type Lang } from '../../publication/charts.js';
import { GRAINS, cityCharts, type Grain } from '../../publication/city.js';
import { previousMonth } from '../../publication/figures.js';
import { capacity, openOperations, operationsChart } from '../../publication/health.js';
import { BUS_G_PER_KM, BUS_SOURCE, residentView } from '../../publication/resident.js';
import type { PageDeps } from './deps.js';
import { langOf } from './render.js';
import { translator } from '../i18n.js';
import { me } from './me.js';
import { livePower } from './dashboard.js';
import type { Collector } from '../../metering/collector.js';

const page = { page: true } as const;
const Lang = Type.Optional(Type.String({ maxLength: 5 }));
const CityQuery = Type.Object({ grain: Type.Optional(Type.Union(GRAINS.map((g) => Type.Literal(g)))), lang: Lang });
const PlainQuery = Type.Object({ lang: Lang });
// A chart's CSV: its id and `.csv`; checked in the handler, so an unknown name is a 404 like any missing file.
const FileParams = Type.Object({ file: Type.String({ maxLength: 64 }) });
const CSV_FILE = /^([a-z][a-z0-9-]{0,40})\.csv$/;

/** What the template draws for one chart. */
export function block(c: Chart, lang: Lang, t: (k: 'charts.secret' | 'charts.period') => string, csvHref: string) {
  return { id: c.id, title: c.title, svg: svg(c, lang), table: table(c, lang, { secret: t('charts.secret'), total: '', period: t('charts.period') }), summary: summary(c, lang), csv: csvHref };
}

function sendCsv(reply: FastifyReply, charts: Chart[], file: string, periodHeader: string) {
  const id = CSV_FILE.exec(file)?.[1];
  const c = charts.find((x) => x.id === id);
  if (!c) throw fail('CATTERY_ERR_NOT_FOUND', 'No such chart: <chart>.csv');
  reply.header('content-type', 'text/csv; charset=utf-8; header=present').header('content-disposition', `attachment; filename="${c.id}.csv"`);
  return reply.send(csv(c, periodHeader));
}

export const chartPages: FastifyPluginAsyncTypebox<{ deps: PageDeps; collector: Collector }> = async (app, { deps, collector }) => {
  const collegeNames = (lang: Lang) => { const m = new Map(listColleges(deps.db).map((c) => [c.slug, lang === 'fr' ? c.nameFr : c.nameEn])); return (s: string) => m.get(s) ?? s; };
  const city = (lang: Lang, grain: Grain) => cityCharts(deps.db, deps.catalog, grain, { minGroup: deps.config.publication.minGroup, gridGPerKwh: deps.config.gridGCo2ePerKwh, lang }, collegeNames(lang));

  app.get('/dashboard/city', { config: page, schema: { hide: true, querystring: CityQuery } }, async (req, reply) => {
    const lang = langOf(req);
    const grain = (req.query as Static<typeof CityQuery>).grain ?? 'month';
    const charts = city(lang, grain);
    const tr = translator(lang);
    return reply.page('charts-city', {
      title: tr('charts.city.title'), grain, grains: GRAINS, min: deps.config.publication.minGroup, openDataMonth: previousMonth(new Date()),
      blocks: charts.map((c) => block(c, lang, tr, `/dashboard/city/${c.id}.csv?grain=${grain}&lang=${lang}`)),
      energyCount: charts.filter((c) => c.id.startsWith('energy-') || c.id.startsWith('co2-')).length,
      live: livePower(collector.current()), script: true,
    });
  });

  app.get('/dashboard/city/:file', { config: page, schema: { hide: true, params: FileParams, querystring: CityQuery } }, async (req, reply) => {
    const lang = langOf(req);
    return sendCsv(reply, city(lang, (req.query as Static<typeof CityQuery>).grain ?? 'month'), req.params.file, translator(lang)('charts.period'));
  });

  app.get('/admin/health', { config: page, schema: { hide: true, querystring: PlainQuery } }, async (req, reply) => {
    const lang = langOf(req);
    const tr = translator(lang);
    const c = operationsChart(deps.db, lang);
    const cap = capacity(deps.db, deps.catalog, deps.config);
    const n = (v: number | null, d = 0) => (v === null ? '—' : formatNumber(v, lang, d));
    return reply.page('charts-health', {
      title: tr('charts.health.title'), blocks: [block(c, lang, tr, `/admin/health/${c.id}.csv?lang=${lang}`)],
      open: openOperations(deps.db), n,
      servers: cap.servers, services: cap.services, backups: backupState(deps.db),
    });
  });

  app.get('/admin/health/:file', { config: page, schema: { hide: true, params: FileParams, querystring: PlainQuery } }, async (req, reply) => {
    const lang = langOf(req);
    return sendCsv(reply, [operationsChart(deps.db, lang)], req.params.file, translator(lang)('charts.period'));
  });

  app.get('/me/usage', { config: page, schema: { hide: true, querystring: PlainQuery } }, async (req, reply) => {
    const lang = langOf(req);
    const user = me(req);
    const tr = translator(lang);
    const v = residentView(deps.db, user.id, deps.config.gridGCo2ePerKwh, lang);
    return reply.page('charts-me', {
      title: tr('charts.me.title'), blocks: v.charts.map((c) => block(c, lang, tr, `/me/usage/${c.id}.csv?lang=${lang}`)),
      none: v.accounts.length === 0,
      bus: tr('charts.me.bus', { g: formatNumber(v.yearCo2eG, lang, 0), km: formatNumber(v.busKm, lang, 1), factor: formatNumber(BUS_G_PER_KM, lang, 1) }), source: BUS_SOURCE,
    });
  });

  app.get('/me/usage/:file', { config: page, schema: { hide: true, params: FileParams, querystring: PlainQuery } }, async (req, reply) => {
    const lang = langOf(req);
    const user = me(req);
    return sendCsv(reply, residentView(deps.db, user.id, deps.config.gridGCo2ePerKwh, lang).charts, req.params.file, translator(lang)('charts.period'));
  });
};
