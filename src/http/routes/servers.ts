import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Db } from '../../db/connection.js';
import { addServer, checkEndpoint, listServers, setServerEnergy } from '../../orchestrator/servers.js';
import { ErrorReply } from '../error-handler.js';
import type { Catalog } from '../../catalog/load.js';
import type { Server } from '../../db/schema.js';
import { fail } from '../../errors.js';
import type { Engine } from '../../orchestrator/docker/engine.js';
import { consolidationPlans, demandOf, fleet, place } from '../../orchestrator/placement.js';
import { EnergyInput } from '../../metering/energy-input.js';

const ServerView = Type.Object({
  name: Type.String(), dockerEndpoint: Type.String(), site: Type.String(), publishAddress: Type.String(), createdAt: Type.String(),
});
const ServerInput = Type.Object({
  name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' }),
  dockerEndpoint: Type.String({ pattern: '^(unix:///[A-Za-z0-9._/-]+|tcp://[A-Za-z0-9.-]+:[0-9]{1,5}|https://[A-Za-z0-9.-]+:[0-9]{1,5})$', maxLength: 300 }),
  site: Type.Optional(Type.String({ maxLength: 200 })),
  publishAddress: Type.Optional(Type.String({ pattern: '^(\\d{1,3}\\.){3}\\d{1,3}$' })),
  /** Plain tcp:// to another machine, on purpose (a private link): refused otherwise. */
  allowPlainTcp: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });

const view = (s: { name: string; dockerEndpoint: string; site: string; publishAddress: string; createdAt: string }) => ({
  name: s.name, dockerEndpoint: s.dockerEndpoint, site: s.site, publishAddress: s.publishAddress, createdAt: s.createdAt,
});



const PlanView = Type.Object({
  empties: Type.String(), wattsNow: Type.Number(), wattsIdle: Type.Number(), wattsOff: Type.Number(),
  kWhPerMonthIdle: Type.Number(), kWhPerMonthOff: Type.Number(),
  moves: Type.Array(Type.Object({ slug: Type.String(), from: Type.String(), to: Type.String(), stateful: Type.Boolean() })),
});

export const serverRoutes: FastifyPluginAsyncTypebox<{ db: Db; catalog: Catalog; engineFor: (s: Server) => Engine }> = async (app, { db, catalog, engineFor }) => {
  const fleetDeps = { db, catalog, engineFor, servers: () => listServers(db) };

  app.get('/api/servers/placement', {
    schema: {
      tags: ['servers', 'metering'], summary: 'Where a new instance of a service would go: the watts it would add on each server, or why it does not fit',
      querystring: Type.Object({ service: Type.String({ maxLength: 64 }) }),
      response: { 200: Type.Object({ server: Type.String(), addedWatts: Type.Number(), candidates: Type.Array(Type.Object({ name: Type.String(), addedWatts: Type.Union([Type.Number(), Type.Null()]), refused: Type.Optional(Type.String()) })) }), 400: ErrorReply, 409: ErrorReply },
    },
  }, async (req) => {
    if (!catalog.services.has(req.query.service)) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', req.query.service);
    const p = place(await fleet(fleetDeps), demandOf(fleetDeps, req.query.service));
    return { server: p.server.name, addedWatts: p.addedWatts, candidates: p.candidates };
  });

  app.get('/api/servers/consolidation', {
    schema: {
      tags: ['servers', 'metering'], summary: 'Which moves would let one server rest or be switched off, and the energy that saves per month (nothing moves)',
      response: { 200: Type.Array(PlanView) },
    },
  }, async () => consolidationPlans(await fleet(fleetDeps)));

  app.get('/api/servers', {
    schema: { tags: ['servers'], summary: 'Servers (Docker engines) instances run on', response: { 200: Type.Array(ServerView) } },
  }, async () => listServers(db).map(view));

  app.post('/api/servers', {
    schema: { tags: ['servers'], summary: 'Register a server', body: ServerInput, response: { 201: ServerView, 400: ErrorReply, 409: ErrorReply } },
  }, async (req, reply) => {
    const { allowPlainTcp, ...input } = req.body;
    checkEndpoint(input.dockerEndpoint, allowPlainTcp === true);
    reply.code(201);
    return view(addServer(db, input));
  });

  app.put('/api/servers/:name/energy', {
    schema: {
      tags: ['servers', 'metering'], summary: 'How this server\'s power is known: its power curve, a meter, and its embodied emissions',
      params: Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' }) }), body: EnergyInput,
      response: { 200: EnergyInput, 400: ErrorReply, 404: ErrorReply },
    },
  }, async (req) => setServerEnergy(db, req.params.name, req.body));
};
