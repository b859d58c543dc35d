// The front door's API: which names an instance answers to, whether its well-known ports are on the public address, and
// what each server's door serves now.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Catalog } from '../../catalog/load.js';
import type { Config } from '../../config.js';
import type { Db } from '../../db/connection.js';
import type { Instance } from '../../db/schema.js';
import { doorServerOf, servedServers, type Ingress } from '../../ingress/ingress.js';
import { changeHostnames } from '../../ingress/names-change.js';
import { MAX_HOSTNAMES_PER_INSTANCE, hostnamesOf, ingressStateOf, listHostnames } from '../../ingress/store.js';
import { SLUG_PATTERN, getInstance } from '../../orchestrator/instances.js';
import { publicPortsView, setPublicPorts, type ReservedPort } from '../../orchestrator/public-ports.js';
import type { Reconciler } from '../../orchestrator/reconcile.js';
import { listServers } from '../../orchestrator/servers.js';
import { ErrorReply } from '../error-handler.js';

const SlugParams = Type.Object({ slug: Type.String({ pattern: SLUG_PATTERN }) });
const Names = Type.Object({ hostnames: Type.Array(Type.String({ minLength: 1, maxLength: 254 }), { maxItems: MAX_HOSTNAMES_PER_INSTANCE }) }, { additionalProperties: false });
const Nullable = (t: ReturnType<typeof Type.String>) => Type.Union([t, Type.Null()]);
const DoorView = Type.Object({
  server: Type.String(), enabled: Type.Boolean(), ports: Type.Object({ http: Type.Integer(), https: Type.Integer() }),
  appliedHash: Nullable(Type.String()), appliedAt: Nullable(Type.String()), lastError: Nullable(Type.String()), lastErrorAt: Nullable(Type.String()),
  hostnames: Type.Array(Type.Object({ hostname: Type.String(), instance: Type.String(), service: Type.String() })),
});

const PublicPortsBody = Type.Object({
  enabled: Type.Boolean({ description: 'true: publish the instance\'s well-known ports (the manifest\'s wellKnown) on CATTERY_INGRESS_ADDRESS; false: its allocated ports only' }),
}, { additionalProperties: false });
const PublicPortsReply = Type.Object({
  enabled: Type.Boolean(), address: Nullable(Type.String()), ports: Type.Record(Type.String(), Type.Integer()),
  generation: Type.Integer(), observed: Type.String(),
});
const Wait = Type.Object({ wait: Type.Optional(Type.Boolean({ description: 'Reply once the instance runs with its new ports (as for PATCH /api/instances/:slug)' })) });

export interface IngressRouteDeps { db: Db; config: Config; catalog: Catalog; reconciler: Reconciler; ingress: Ingress | undefined }

/** The host's own numbers on the public address: the front door's, while it runs. */
function reservedPorts(config: Config): ReservedPort[] {
  if (!config.ingress.enabled) return [];
  return [{ port: config.ingress.httpPort, by: 'the front door (HTTP)' }, { port: config.ingress.httpsPort, by: 'the front door (HTTPS)' }].filter((r) => r.port > 0);
}

export const ingressRoutes: FastifyPluginAsyncTypebox<{ deps: IngressRouteDeps }> = async (app, { deps }) => {
  const { db, config } = deps;

  app.get('/api/instances/:slug/hostnames', {
    schema: { tags: ['ingress'], summary: 'The names an instance answers to through the front door', params: SlugParams, response: { 200: Names, 404: ErrorReply } },
  }, async (req) => ({ hostnames: hostnamesOf(db, getInstance(db, req.params.slug).id) }));

  app.put('/api/instances/:slug/hostnames', {
    schema: {
      tags: ['ingress'], summary: 'Set the names an instance answers to (whole list; under the association\'s domains, not used by another instance)',
      params: SlugParams, body: Names, response: { 200: Names, 400: ErrorReply, 404: ErrorReply, 409: ErrorReply },
    },
  }, async (req) => {
    return { hostnames: changeHostnames(deps, getInstance(db, req.params.slug), req.body.hostnames, req.log) };
  });

  const publicPortsOf = (row: Instance) => ({ ...publicPortsView(row), generation: row.generation, observed: row.observed });

  app.get('/api/instances/:slug/public-ports', {
    schema: { tags: ['ingress'], summary: 'Whether an instance\'s well-known ports are published on the public address', params: SlugParams, response: { 200: PublicPortsReply, 404: ErrorReply } },
  }, async (req) => publicPortsOf(getInstance(db, req.params.slug)));

  app.put('/api/instances/:slug/public-ports', {
    schema: {
      tags: ['ingress'],
      summary: 'Publish an instance\'s well-known ports (mail: 25, 465, 587, 993, 143) on the public address, or stop; one instance per server holds each number (409 CATTERY_ERR_PORT_TAKEN)',
      params: SlugParams, querystring: Wait, body: PublicPortsBody,
      response: { 200: PublicPortsReply, 400: ErrorReply, 404: ErrorReply, 409: ErrorReply },
    },
  }, async (req) => {
    const actor = req.principal?.id ?? 'anonymous';
    const row = setPublicPorts({ db, catalog: deps.catalog }, req.params.slug,
      { enabled: req.body.enabled, address: config.ingress.bindAddress, reserved: reservedPorts(config) }, actor);
    // The container is made again with its new bindings (a new generation); the door's plan does not change.
    const pass = deps.reconciler.trigger('public-ports', row.slug);
    if (!req.query.wait) { pass.catch(() => undefined); return publicPortsOf(row); }
    await pass;
    return publicPortsOf((await deps.reconciler.waitConverged(row.slug, row.generation)) ?? row);
  });

  app.get('/api/ingress', {
    schema: { tags: ['ingress'], summary: 'What the front door of each server serves, and its last refusal', response: { 200: Type.Array(DoorView) } },
  }, async () => {
    const rows = listHostnames(db);
    const all = listServers(db);
    return all.map((s) => {
      const st = ingressStateOf(db, s.id);
      // A swarm worker has no door of its own: its instances' names are under the manager's.
      const hasDoor = doorServerOf(all, s)?.id === s.id;
      const served = hasDoor ? servedServers(all, s) : new Set<number>();
      return {
        server: s.name, enabled: config.ingress.enabled, ports: (hasDoor ? deps.ingress?.ports(s.id) : undefined) ?? { http: 0, https: 0 },
        appliedHash: st?.appliedHash ?? null, appliedAt: st?.appliedAt ?? null, lastError: st?.lastError ?? null, lastErrorAt: st?.lastErrorAt ?? null,
        hostnames: rows.filter((r) => served.has(r.serverId)).map((r) => ({ hostname: r.hostname, instance: r.slug, service: r.service })),
      };
    });
  });
};
