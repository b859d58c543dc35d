import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Db } from '../../db/connection.js';
import { addServer, listServers, setServerEnergy } from '../../orchestrator/servers.js';
import { ErrorReply } from '../error-handler.js';
import { EnergyInput } from '../../metering/energy-input.js';

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
