// The Fastify app, built as a plugin tree from its dependencies; server.ts only listens and shuts down.
import crypto from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import type { EventBus } from '../orchestrator/events.js';
import type { Reconciler } from '../orchestrator/reconcile.js';
import { createPrincipalResolver } from './auth.js';
import { errorHandler } from './error-handler.js';
import { checkRoles } from './roles.js';
import { accountRoutes } from './routes/accounts.js';
import { catalogRoutes } from './routes/catalog.js';
import { eventRoutes } from './routes/events.js';
import { instanceRoutes } from './routes/instances.js';
import { serverRoutes } from './routes/servers.js';

export interface AppDeps {
  config: Config;
  db: Db;
  catalog: Catalog;
  reconciler: Reconciler;
  events: EventBus;
  log: Logger;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log.child({ domain: 'http' }) as FastifyBaseLogger,
    // A client may send its own id (a reverse proxy's); else one is made, and every log line of the request has it.
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
    bodyLimit: 256 * 1024,
    trustProxy: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false, verbose: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ statusCode: 404, code: 'CATTERY_ERR_NOT_FOUND', error: 'Not Found', message: `No route ${req.method} ${req.url.split('?')[0]}` });
  });

  // Fail fast: a route that does not say who may call it is a bug, caught when the app is built.
  app.addHook('onRoute', (route) => {
    if (route.method === 'HEAD') return;
    if (!route.config?.roles?.length && !route.url.startsWith('/documentation')) {
      throw fail('CATTERY_ERR_CONFIG', `route ${String(route.method)} ${route.url} declares no roles`);
    }
  });
  const resolve = createPrincipalResolver({ adminToken: deps.config.adminToken });
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (req) => { req.principal = resolve(req); });
  app.addHook('preHandler', checkRoles);
  app.addHook('onSend', async (_req, reply) => { reply.header('x-content-type-options', 'nosniff'); });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'cattery', version: '0.1.0', description: 'Control plane of a community hoster (CHATONS)' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  app.get('/api/openapi.json', {
    config: { roles: ['public'] },
    schema: { hide: true },
  }, async () => app.swagger());
  app.get('/healthz', {
    config: { roles: ['public'] },
    schema: { tags: ['system'], summary: 'Liveness', response: { 200: Type.Object({ ok: Type.Boolean() }) } },
  }, async () => ({ ok: true }));

  const instanceDeps = { db: deps.db, catalog: deps.catalog, portRange: deps.config.portRange, subnetPool: deps.config.subnetPool };
  await app.register(catalogRoutes, { catalog: deps.catalog });
  await app.register(serverRoutes, { db: deps.db });
  await app.register(instanceRoutes, { deps: instanceDeps, reconciler: deps.reconciler });
  await app.register(accountRoutes, {
    deps: { db: deps.db, catalog: deps.catalog, hosterId: deps.config.hosterId, engineFor: deps.reconciler.engineFor, log: deps.log.child({ domain: 'accounts' }) },
  });
  await app.register(eventRoutes, { events: deps.events });
  return app as unknown as FastifyInstance;
}
