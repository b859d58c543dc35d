// Metering for the association and the city: current power, energy over a period, top consumers, one account
// (administrators only), a live power stream, and Prometheus text at /metrics. The city's routes carry aggregates
// only: servers, services and instances, never a person.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Config } from '../../config.js';
import type { Db } from '../../db/connection.js';
import { fail } from '../../errors.js';
import type { FastifyRequest } from 'fastify';
import type { Catalog } from '../../catalog/load.js';
import type { Collector, PowerReading } from '../../metering/collector.js';
import { energyWithheld } from '../../publication/figures.js';
import { createPrometheus } from '../../metering/prometheus.js';
import { registerBackupMetrics } from '../../backups/metrics.js';
import { accountFigure, energyReport, topConsumers } from '../../metering/report.js';
import { USERNAME_PATTERN } from '../../accounts/accounts.js';
import { SLUG_PATTERN } from '../../orchestrator/instances.js';
import { ErrorReply } from '../error-handler.js';

const Period = Type.Object({
  from: Type.Optional(Type.String({ format: 'date-time', description: 'start (ISO 8601); default 24 hours ago' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'end (ISO 8601); default now' })),
});
const FigureView = Type.Object({
  key: Type.String(), kind: Type.String(), energyWh: Type.Number(), idleShareWh: Type.Number(),
  co2eG: Type.Object({ operational: Type.Number(), embodied: Type.Number(), total: Type.Number() }),
  cpuSeconds: Type.Number(), meanMemoryBytes: Type.Number(), netBytes: Type.Number(), blockIoBytes: Type.Number(),
  method: Type.Union([Type.Literal('measured'), Type.Literal('modelled')]), model: Type.String(),
});
const ReportView = Type.Object({ from: Type.String(), to: Type.String(), gridGCo2ePerKwh: Type.Number(), figures: Type.Array(FigureView) });

function period(q: { from?: string | undefined; to?: string | undefined }): { from: Date; to: Date } {
  const to = q.to ? new Date(q.to) : new Date();
  const from = q.from ? new Date(q.from) : new Date(to.getTime() - 86_400_000);
  if (!(from < to)) throw fail('CATTERY_ERR_VALIDATION', 'from must be before to');
  if (to.getTime() - from.getTime() > 20 * 366 * 86_400_000) throw fail('CATTERY_ERR_VALIDATION', 'a period of at most 20 years');
  return { from, to };
}

const isAdmin = (req: FastifyRequest) => (req.principal?.roles ?? []).includes('admin');
/** Power readings as a caller may read them: per instance for administrators, per server for the city. */
const forCaller = (req: FastifyRequest, readings: PowerReading[]) => (isAdmin(req) ? readings : readings.map((r) => ({ ...r, instances: [] })));

export const meteringRoutes: FastifyPluginAsyncTypebox<{ db: Db; config: Config; collector: Collector; catalog: Catalog }> = async (app, { db, config, collector, catalog }) => {
  const opts = (q: { from?: string | undefined; to?: string | undefined }) => ({ ...period(q), gridGPerKwh: config.gridGCo2ePerKwh });

  app.get('/api/metering/power', {
    schema: { tags: ['metering'], summary: 'Power now, per server and instance (the last metering pass; instances for administrators only)' },
  }, async (req) => ({ intervalSeconds: config.meterIntervalSeconds, servers: forCaller(req, collector.current()) }));

  app.get('/api/metering/energy', {
    schema: {
      tags: ['metering'], summary: 'Energy and CO2e over a period, by server, service or instance; idle and other processes apart',
      querystring: Type.Intersect([Period, Type.Object({ by: Type.Optional(Type.Union([Type.Literal('server'), Type.Literal('service'), Type.Literal('instance')])) })]),
      response: { 200: ReportView, 400: ErrorReply },
    },
  }, async (req) => {
    const by = req.query.by ?? 'service';
    const report = energyReport(db, by, opts(req.query));
    if (isAdmin(req)) return report;
    // The city: per server, and per service what the open data publishes for the months the period touches; never
    // per instance (one instance can be one resident).
    if (by === 'instance') throw fail('CATTERY_ERR_FORBIDDEN', 'per instance: administrators only; the city reads per server and per service');
    const withheld = energyWithheld(db, catalog, report.from ? new Date(report.from) : new Date(), new Date(report.to), config.publication.minGroup).services;
    return { ...report, figures: report.figures.filter((f) => f.kind !== 'service' || !withheld.has(f.key)) };
  });

  app.get('/api/metering/top', {
    schema: {
      tags: ['metering'], summary: 'The instances that used the most energy over a period',
      querystring: Type.Intersect([Period, Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })) })]),
      response: { 200: Type.Array(FigureView), 400: ErrorReply },
    },
  }, async (req) => topConsumers(db, opts(req.query), req.query.limit ?? 10));

  app.get('/api/metering/accounts/:slug/:username', {
    schema: {
      tags: ['metering'], summary: 'One resident account\'s share of its instance (modelled): administrators only',
      params: Type.Object({ slug: Type.String({ pattern: SLUG_PATTERN }), username: Type.String({ pattern: USERNAME_PATTERN }) }),
      querystring: Period,
      response: { 200: Type.Intersect([FigureView, Type.Object({ keyShare: Type.Number() })]), 400: ErrorReply, 404: ErrorReply },
    },
  }, async (req) => accountFigure(db, req.params.slug, req.params.username, opts(req.query)));

  app.get('/api/metering/stream', {
    websocket: true,
    schema: { tags: ['metering'], summary: 'WebSocket: current power after each metering pass (JSON)' },
  }, (socket, req) => {
    const now = forCaller(req, collector.current());
    if (now.length) socket.send(JSON.stringify(now));
    const off = collector.onPower((readings) => {
      if (socket.bufferedAmount > 1 << 20) { socket.terminate(); return; }
      socket.send(JSON.stringify(forCaller(req, readings)));
    });
    socket.on('close', off);
    socket.on('error', off);
  });

  const prometheus = createPrometheus(db, collector, [(registry) => registerBackupMetrics(registry, db)]);
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', prometheus.contentType);
    return prometheus.scrape();
  });
};
