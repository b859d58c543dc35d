// Metering for the association and the city: current power, energy over a period, top consumers, one account
// (administrators only), a live power stream, and Prometheus text at /metrics. The city's routes carry aggregates
// only: servers, services and instances, never a person.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Config } from '../../config.js';
import type { Db } from '../../db/connection.js';
import { fail } from '../../errors.js';
import type { Collector } from '../../metering/collector.js';
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

export const meteringRoutes: FastifyPluginAsyncTypebox<{ db: Db; config: Config; collector: Collector }> = async (app, { db, config, collector }) => {
  const opts = (q: { from?: string | undefined; to?: string | undefined }) => ({ ...period(q), gridGPerKwh: config.gridGCo2ePerKwh });

  app.get('/api/metering/power', {
    schema: { tags: ['metering'], summary: 'Power now, per server and instance (the last metering pass)' },
  }, async () => ({ intervalSeconds: config.meterIntervalSeconds, servers: collector.current() }));

  app.get('/api/metering/energy', {
    schema: {
      tags: ['metering'], summary: 'Energy and CO2e over a period, by server, service or instance; idle and other processes apart',
      querystring: Type.Intersect([Period, Type.Object({ by: Type.Optional(Type.Union([Type.Literal('server'), Type.Literal('service'), Type.Literal('instance')])) })]),
      response: { 200: ReportView, 400: ErrorReply },
    },
  }, async (req) => energyReport(db, req.query.by ?? 'service', opts(req.query)));

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
  }, (socket) => {
    const now = collector.current();
    if (now.length) socket.send(JSON.stringify(now));
    const off = collector.onPower((readings) => {
      if (socket.bufferedAmount > 1 << 20) { socket.terminate(); return; }
      socket.send(JSON.stringify(readings));
    });
    socket.on('close', off);
    socket.on('error', off);
  });

  // Prometheus, in the naming of Scaphandre and Kepler. Totals come from the daily rollups (kept for good), so the
  // counters only grow; power is the last pass's.
  const registry = new Registry();
  const totals = () => db.$client.prepare(`SELECT s.name server, scope, slug, service, SUM(energy_j) e, SUM(idle_share_j) i, SUM(cpu_seconds) c
    FROM meter_daily d JOIN servers s ON s.id = d.server_id GROUP BY s.name, scope, slug`).all() as { server: string; scope: string; slug: string; service: string; e: number; i: number; c: number }[];
  new Gauge({
    name: 'cattery_server_power_watts', help: 'Server power over the last metering pass', labelNames: ['server', 'method', 'model'], registers: [registry],
    collect() { this.reset(); for (const r of collector.current()) this.set({ server: r.server, method: r.method, model: r.model }, r.watts); },
  });
  new Gauge({
    name: 'cattery_instance_power_watts', help: 'Instance active power over the last pass (CPU share of active power)', labelNames: ['server', 'instance', 'service'], registers: [registry],
    collect() { this.reset(); for (const r of collector.current()) for (const i of r.instances) this.set({ server: r.server, instance: i.slug, service: i.service }, i.watts); },
  });
  new Counter({
    name: 'cattery_server_energy_joules_total', help: 'Server energy since metering began, by part: idle, other processes, instances', labelNames: ['server', 'part'], registers: [registry],
    collect() {
      this.reset();
      for (const r of totals()) if (r.scope !== 'server') this.inc({ server: r.server, part: r.scope }, r.e);
    },
  });
  new Counter({
    name: 'cattery_instance_energy_joules_total', help: 'Instance energy since metering began: active (CPU share) and allocated idle, apart', labelNames: ['server', 'instance', 'service', 'kind'], registers: [registry],
    collect() {
      this.reset();
      for (const r of totals()) if (r.scope === 'instance') {
        this.inc({ server: r.server, instance: r.slug, service: r.service, kind: 'active' }, r.e);
        this.inc({ server: r.server, instance: r.slug, service: r.service, kind: 'idle_share' }, r.i);
      }
    },
  });
  new Counter({
    name: 'cattery_instance_cpu_seconds_total', help: 'Instance CPU time since metering began', labelNames: ['server', 'instance', 'service'], registers: [registry],
    collect() { this.reset(); for (const r of totals()) if (r.scope === 'instance') this.inc({ server: r.server, instance: r.slug, service: r.service }, r.c); },
  });

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
};
