import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Db } from '../../db/connection.js';
import { DESIRED, OBSERVED, type Instance } from '../../db/schema.js';
import {
  SLUG_PATTERN, createInstance, getInstance, listInstances, publicInstance, updateInstance, type InstanceDeps,
} from '../../orchestrator/instances.js';
import { listServers } from '../../orchestrator/servers.js';
import type { Reconciler } from '../../orchestrator/reconcile.js';
import { listOperations } from '../../orchestrator/journal.js';
import { demandOf, fleet, place } from '../../orchestrator/placement.js';
import { ErrorReply } from '../error-handler.js';

const lit = <T extends string>(xs: readonly T[]) => Type.Union(xs.map((x) => Type.Literal(x)));
const EnvMap = Type.Record(Type.String({ pattern: '^[A-Z_][A-Z0-9_]{0,63}$' }), Type.String({ maxLength: 4096 }), { maxProperties: 64, additionalProperties: false });
const LinkMap = Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_-]{0,30}$' }), Type.String({ pattern: SLUG_PATTERN }), {
  maxProperties: 8, additionalProperties: false,
  description: 'The instances to link to, by the service\'s link names (catalog `links`): e.g. {"mail": "courriel"} for a webmail. Replaced whole on a change.',
});

const InstanceView = Type.Object({
  slug: Type.String(), service: Type.String(), server: Type.String(), desired: lit(DESIRED), observed: lit([...OBSERVED, 'deleted']),
  generation: Type.Integer(), image: Type.String(), ports: Type.Record(Type.String(), Type.Integer()),
  publicPorts: Type.Union([Type.Object({ address: Type.String(), ports: Type.Record(Type.String(), Type.Integer()) }), Type.Null()],
    { description: 'The well-known ports published on the public address (PUT /api/instances/:slug/public-ports), or null' }),
  env: Type.Record(Type.String(), Type.String()),
  links: Type.Record(Type.String(), Type.String(), { description: 'Link name → the linked instance\'s slug' }),
  linkedEnv: Type.Record(Type.String(), Type.String(), { description: 'The variables the links fill in (an override in env wins where the variable is overridable)' }),
  lastError: Type.Union([Type.String(), Type.Null()]), attempts: Type.Integer(), createdAt: Type.String(), updatedAt: Type.String(),
});
const OperationView = Type.Object({
  id: Type.Integer(), instanceSlug: Type.String(), kind: Type.String(), status: Type.String(), actor: Type.String(),
  detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]), error: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(), finishedAt: Type.Union([Type.String(), Type.Null()]),
});
const SlugParams = Type.Object({ slug: Type.String({ pattern: SLUG_PATTERN, description: 'lowercase letters, digits and dashes, 3 to 42 characters' }) });
const Wait = Type.Object({ wait: Type.Optional(Type.Boolean({
  description: 'Reply once the instance has converged: healthy (running for a service without health check), stopped or deleted; 409 with the reason when it failed or did not get there within the health timeout',
})) });
const Errors = { 400: ErrorReply, 404: ErrorReply, 409: ErrorReply };

const actor = (req: { principal: { id: string } | null }) => req.principal?.id ?? 'anonymous';

/** What the API shows of an instance, with its server's name. */
const serverNames = (db: Db) => new Map(listServers(db).map((s) => [s.id, s.name]));

function viewOf(db: Db) {
  return (row: Instance, names = serverNames(db)) => publicInstance(row, names.get(row.serverId));
}

/** After a change: wake the reconciler, and with ?wait=true answer with what it achieved. */
function afterChangeOf(view: ReturnType<typeof viewOf>, reconciler: Reconciler) {
  return async (row: Instance, wait: boolean | undefined, reason: string) => {
    const pass = reconciler.trigger(reason, row.slug);
    // A pass logs its own failures; one nobody waits for must not become an unhandled rejection.
    if (!wait) { pass.catch(() => undefined); return view(row); }
    await pass;
    // Converged and healthy (or stopped, or gone), or a clear error: never a reply while it is still starting.
    const fresh = await reconciler.waitConverged(row.slug, row.generation);
    // No row left after a wait on a delete: the reconciler finished it.
    return fresh ? view(fresh) : { ...view(row), observed: 'deleted' as const };
  };
}

export const instanceRoutes: FastifyPluginAsyncTypebox<{ deps: InstanceDeps; reconciler: Reconciler }> = async (app, { deps, reconciler }) => {
  const db: Db = deps.db;
  const view = viewOf(db);
  const afterChange = afterChangeOf(view, reconciler);
  const fleetDeps = { db, catalog: deps.catalog, engineFor: reconciler.engineFor, servers: () => listServers(db) };

  app.get('/api/instances', {
    schema: {
      tags: ['instances'], summary: 'List instances',
      querystring: Type.Object({ service: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false }),
      response: { 200: Type.Array(InstanceView) },
    },
  }, async (req) => {
    const names = serverNames(db);
    return listInstances(db, { service: req.query.service }).map((row) => view(row, names));
  });

  app.post('/api/instances', {
    schema: {
      tags: ['instances'], summary: 'Create an instance of a catalog service',
      querystring: Wait,
      body: Type.Object({
        service: Type.String({ maxLength: 64 }),
        slug: SlugParams.properties.slug,
        server: Type.Optional(Type.String({ maxLength: 64 })),
        desired: Type.Optional(Type.Union([Type.Literal('running'), Type.Literal('stopped')])),
        env: Type.Optional(EnvMap),
        links: Type.Optional(LinkMap),
      }, { additionalProperties: false }),
      response: { 201: InstanceView, 202: InstanceView, ...Errors },
    },
  }, async (req, reply) => {
    // No server named and several to choose from: the one where it adds the fewest watts, within room
    // (orchestrator/placement.ts). One server: that one, as always; and when no engine answers now, the default
    // server, where the instance waits for its engine as it always did.
    let input = req.body;
    if (input.server === undefined && listServers(db).length > 1) {
      const servers = await fleet(fleetDeps);
      if (servers.length) input = { ...input, server: place(servers, demandOf(fleetDeps, input.service)).server.name };
    }
    const row = createInstance(deps, input, actor(req));
    reply.code(req.query.wait ? 201 : 202).header('location', `/api/instances/${row.slug}`);
    return afterChange(row, req.query.wait, 'create');
  });

  app.get('/api/instances/:slug', {
    schema: { tags: ['instances'], summary: 'Read an instance', params: SlugParams, response: { 200: InstanceView, ...Errors } },
  }, async (req) => view(getInstance(db, req.params.slug)));

  app.patch('/api/instances/:slug', {
    schema: {
      tags: ['instances'], summary: 'Change an instance (desired state, environment overrides, links)', params: SlugParams, querystring: Wait,
      body: Type.Object({ desired: Type.Optional(Type.Union([Type.Literal('running'), Type.Literal('stopped')])), env: Type.Optional(EnvMap), links: Type.Optional(LinkMap) },
        { additionalProperties: false, minProperties: 1 }),
      response: { 200: InstanceView, ...Errors },
    },
  }, async (req) => afterChange(updateInstance(deps, req.params.slug, req.body, actor(req), 'change'), req.query.wait, 'change'));

  app.delete('/api/instances/:slug', {
    schema: {
      tags: ['instances'], summary: 'Delete an instance; its volumes are archived under data/backups unless purge=true',
      params: SlugParams,
      querystring: Type.Object({ purge: Type.Optional(Type.Boolean()), wait: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 202: InstanceView, 200: InstanceView, ...Errors },
    },
  }, async (req, reply) => {
    const row = updateInstance(deps, req.params.slug, { desired: 'deleted', purge: req.query.purge ?? false }, actor(req), req.query.purge ? 'purge' : 'delete');
    reply.code(req.query.wait ? 200 : 202);
    return afterChange(row, req.query.wait, 'delete');
  });

  for (const action of ['start', 'stop', 'upgrade', 'restart'] as const) {
    app.post(`/api/instances/:slug/${action}`, {
      schema: {
        tags: ['instances'], summary: `${action[0]!.toUpperCase()}${action.slice(1)} an instance`, params: SlugParams, querystring: Wait,
        response: { 202: InstanceView, 200: InstanceView, ...Errors },
      },
    }, async (req, reply) => {
      const slug = req.params.slug;
      reply.code(req.query.wait ? 200 : 202);
      if (action === 'restart') {
        // The intent is written before this returns: a refusal (404, 409) is this request's answer, with or without
        // ?wait=true; with it, the reply comes once the restarted instance has converged, as for the other actions.
        const done = reconciler.restart(slug, actor(req));
        if (!req.query.wait) {
          done.catch((err) => req.log.warn({ err, slug }, 'restart failed'));
          return view(getInstance(db, slug));
        }
        const inst = await done;
        return view((await reconciler.waitConverged(slug, inst.generation)) ?? getInstance(db, slug));
      }
      const change = action === 'upgrade' ? { upgrade: true } : { desired: action === 'start' ? 'running' as const : 'stopped' as const };
      return afterChange(updateInstance(deps, slug, change, actor(req), action), req.query.wait, action);
    });
  }

  app.get('/api/instances/:slug/operations', {
    schema: { tags: ['instances'], summary: 'The journal of an instance, newest first', params: SlugParams, response: { 200: Type.Array(OperationView) } },
  }, async (req) => listOperations(db, req.params.slug));
};
