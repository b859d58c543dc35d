// The energy and usage dashboard, for the association and the city: what the servers drew, per server and per
// service, over a day and a month, with CO2e and how each figure was obtained. Aggregates only: no person on it.
import fs from 'node:fs';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Collector, PowerReading } from '../../metering/collector.js';
import { energyReport, topConsumers, type Figure } from '../../metering/report.js';
import { energyBetween } from '../../metering/store.js';
import { energyWithheld } from '../../publication/figures.js';
import { VIEWS_DIR, type PageDeps } from './deps.js';

const PERIODS = { day: 86_400_000, week: 7 * 86_400_000, month: 30 * 86_400_000, year: 365 * 86_400_000 } as const;

/** What a page's live power stream sends after each metering pass: per server, and the total. Aggregates only. */
export function livePower(readings: PowerReading[]) {
  const round1 = (w: number) => Math.round(w * 10) / 10;
  return {
    at: readings[0]?.at ?? null,
    totalW: round1(readings.reduce((sum, r) => sum + r.watts, 0)),
    servers: readings.map((r) => ({ id: r.serverId, watts: round1(r.watts), load: Math.round(r.load * 100) })),
  };
}

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
    // The city reads per service only what the open data publishes for those months, and no instance (one instance
    // can be one resident): administrators see everything (docs/publication.md, "Who reads what").
    const admin = (req.principal?.roles ?? []).includes('admin');
    const withheld = admin ? new Set<string>() : energyWithheld(deps.db, deps.catalog, o.from, o.to, deps.config.publication.minGroup).services;
    const byService = energyReport(deps.db, 'service', o, rows).figures
      .filter((f) => f.kind === 'idle' || f.kind === 'other' || (f.kind === 'service' && !withheld.has(f.key))).map(round);
    const services = new Map([...deps.catalog.services.values()].map((s) => [s.manifest.id, s.manifest.name]));
    return reply.page('dashboard', {
      period, periods: Object.keys(PERIODS), byServer, byService, serviceNames: Object.fromEntries(services),
      top: admin ? topConsumers(deps.db, o, 5, rows).map(round) : null, withheld: withheld.size > 0, power: collector.current(), grid: deps.config.gridGCo2ePerKwh,
      idlePolicy: deps.config.idlePolicy, live: livePower(collector.current()), script: true,
    });
  });

  // The pages' twin of /api/metering/stream, for a browser: the session cookie, not a token (auth.ts), and the
  // handshake's Origin checked (app.ts adds checkSocketOrigin to every page WebSocket). live-power.js reads it.
  app.get('/dashboard/live', { websocket: true, config: { page: true }, schema: { hide: true } }, (socket) => {
    const send = (readings: PowerReading[]) => {
      // A reader that does not keep up is dropped, not buffered for: the next page load starts afresh.
      if (socket.bufferedAmount > 64 * 1024) { socket.terminate(); return; }
      socket.send(JSON.stringify(livePower(readings)));
    };
    const now = collector.current();
    if (now.length) send(now);
    const off = collector.onPower(send);
    // The session was checked once, at the handshake: a socket lives a quarter of an hour, and the script opens a
    // new one (checked again) when it closes. A session that ended stops getting figures within that bound.
    const lifetime = setTimeout(() => socket.close(1000, 'renew'), 15 * 60_000);
    const done = () => { off(); clearTimeout(lifetime); };
    socket.on('close', done);
    socket.on('error', done);
    // The browser only listens: anything it sends is ignored, and the 64 KB frame cap (app.ts) bounds it.
  });

  // Served from the same origin (the pages' CSP names 'self' only) and cached: it changes only with cattery.
  const liveScript = fs.readFileSync(path.join(VIEWS_DIR, 'live-power.js'));
  app.get('/assets/live-power.js', { config: { cacheable: true }, schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', 'text/javascript; charset=utf-8').header('cache-control', 'public, max-age=86400');
    return liveScript;
  });
};
