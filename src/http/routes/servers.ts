import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Db } from '../../db/connection.js';
import { addServer, listServers, setServerEnergy } from '../../orchestrator/servers.js';
import { ErrorReply } from '../error-handler.js';

const ServerView = Type.Object({
  name: Type.String(), dockerEndpoint: Type.String(), site: Type.String(), publishAddress: Type.String(), createdAt: Type.String(),
});
const ServerInput = Type.Object({
  name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' }),
  dockerEndpoint: Type.String({ pattern: '^(unix:///[A-Za-z0-9._/-]+|tcp://[A-Za-z0-9.-]+:[0-9]{1,5}|https://[A-Za-z0-9.-]+:[0-9]{1,5})$', maxLength: 300 }),
  site: Type.Optional(Type.String({ maxLength: 200 })),
  publishAddress: Type.Optional(Type.String({ pattern: '^(\\d{1,3}\\.){3}\\d{1,3}$' })),
}, { additionalProperties: false });

const view = (s: { name: string; dockerEndpoint: string; site: string; publishAddress: string; createdAt: string }) => ({
  name: s.name, dockerEndpoint: s.dockerEndpoint, site: s.site, publishAddress: s.publishAddress, createdAt: s.createdAt,
});

const Watts = Type.Number({ minimum: 0, maximum: 100_000 });
const MeterUrl = Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 500, description: 'http(s) URL of the meter' });
const EnergyInput = Type.Object({
  idleWatts: Watts, maxWatts: Watts,
  curve: Type.Optional(Type.Array(Watts, { minItems: 11, maxItems: 11, description: 'watts at 0 %, 10 % … 100 % load (SPECpower_ssj2008)' })),
  meter: Type.Optional(Type.Union([
    Type.Object({ kind: Type.Literal('rapl') }, { additionalProperties: false }),
    Type.Object({ kind: Type.Literal('http-json'), url: MeterUrl, field: Type.String({ pattern: '^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$', maxLength: 100 }) }, { additionalProperties: false }),
    Type.Object({ kind: Type.Literal('prometheus'), url: MeterUrl, metric: Type.String({ pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$', maxLength: 200 }) }, { additionalProperties: false }),
  ])),
  embodiedKgCo2e: Type.Number({ minimum: 0, maximum: 100_000, description: 'manufacturer PCF sheet or Boavizta' }),
  serviceLifeYears: Type.Number({ minimum: 1, maximum: 30 }),
}, { additionalProperties: false });

export const serverRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  app.get('/api/servers', {
    schema: { tags: ['servers'], summary: 'Servers (Docker engines) instances run on', response: { 200: Type.Array(ServerView) } },
  }, async () => listServers(db).map(view));

  app.post('/api/servers', {
    schema: { tags: ['servers'], summary: 'Register a server', body: ServerInput, response: { 201: ServerView, 400: ErrorReply, 409: ErrorReply } },
  }, async (req, reply) => {
    reply.code(201);
    return view(addServer(db, req.body));
  });

  app.put('/api/servers/:name/energy', {
    schema: {
      tags: ['servers', 'metering'], summary: 'How this server\'s power is known: its power curve, a meter, and its embodied emissions',
      params: Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' }) }), body: EnergyInput,
      response: { 200: EnergyInput, 400: ErrorReply, 404: ErrorReply },
    },
  }, async (req) => setServerEnergy(db, req.params.name, req.body));
};
