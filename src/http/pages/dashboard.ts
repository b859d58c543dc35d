// The energy and usage dashboard, for the association and the city: what the servers drew, per server and per
// service, over a day and a month, with CO2e and how each figure was obtained. Aggregates only: no person on it.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Collector } from '../../metering/collector.js';
import { energyReport, topConsumers, type Figure } from '../../metering/report.js';
import { energyBetween } from '../../metering/store.js';
import type { PageDeps } from './deps.js';

const PERIODS = { day: 86_400_000, week: 7 * 86_400_000, month: 30 * 86_400_000, year: 365 * 86_400_000 } as const;

export const dashboardPages: FastifyPluginAsyncTypebox<{ deps: PageDeps; collector: Collector }> = async (app, { deps, collector }) => {
  app.get('/dashboard', {
    config: { page: true },
    schema: {
      hide: true,
      querystring: Type.Object({
        period: Type.Optional(Type.Union(Object.keys(PERIODS).map((p) => Type.Literal(p)))),
        lang: Type.Optional(Type.String({ maxLength: 5 })),
      }),
    },
  }, async (req, reply) => {
    const period = (req.query.period ?? 'day') as keyof typeof PERIODS;
    const to = new Date();
    const o = { from: new Date(to.getTime() - PERIODS[period]), to, gridGPerKwh: deps.config.gridGCo2ePerKwh };
    const round = (f: Figure) => ({ ...f, energyWh: Math.round(f.energyWh * 10) / 10, idleShareWh: Math.round(f.idleShareWh * 10) / 10, co2: Math.round(f.co2eG.total) });
    const rows = energyBetween(deps.db, o.from, o.to);
    const byServer = energyReport(deps.db, 'server', o, rows).figures.map(round);
    const byService = energyReport(deps.db, 'service', o, rows).figures.filter((f) => f.kind === 'service' || f.kind === 'idle' || f.kind === 'other').map(round);
    const services = new Map([...deps.catalog.services.values()].map((s) => [s.manifest.id, s.manifest.name]));
    return reply.page('dashboard', {
      period, periods: Object.keys(PERIODS), byServer, byService, serviceNames: Object.fromEntries(services),
      top: topConsumers(deps.db, o, 5, rows).map(round), power: collector.current(), grid: deps.config.gridGCo2ePerKwh,
      idlePolicy: deps.config.idlePolicy,
    });
  });
};
