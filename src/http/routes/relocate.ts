// Moving instances between servers, draining a server, restoring a down instance elsewhere (orchestrator/relocate.ts).
// Each answers once the work is done (a move takes its backups, its restore and a health check: tens of seconds to
// minutes), with what happened; a drain is planned first (?dryRun=true) and shown before anything moves.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  drainPlan, drainServer, moveInstance, restoreElsewhere, type RelocateDeps,
} from '../../orchestrator/relocate.js';
import { SLUG_PATTERN } from '../../orchestrator/instances.js';
import { ErrorReply } from '../error-handler.js';

const SERVER = { pattern: '^[a-z][a-z0-9-]{0,40}$' };
const SlugParams = Type.Object({ slug: Type.String({ pattern: SLUG_PATTERN }) });
const ServerBody = Type.Object({ server: Type.String(SERVER) }, { additionalProperties: false });

export const MoveView = Type.Object({
  slug: Type.String(), from: Type.String(), to: Type.String(), stateful: Type.Boolean(),
  downtimeSeconds: Type.Number(), snapshot: Type.Union([Type.String(), Type.Null()]),
  steps: Type.Array(Type.Object({ step: Type.String(), ms: Type.Number() })),
});
const PlanView = Type.Object({
  server: Type.String(),
  moves: Type.Array(Type.Object({ slug: Type.String(), to: Type.String(), stateful: Type.Boolean() })),
  cannot: Type.Array(Type.Object({ slug: Type.String(), why: Type.String() })),
  moved: Type.Optional(Type.Array(MoveView)),
});
const errors = { 400: ErrorReply, 404: ErrorReply, 409: ErrorReply, 502: ErrorReply, 503: ErrorReply };

export const relocateRoutes: FastifyPluginAsyncTypebox<{ deps: RelocateDeps }> = async (app, { deps }) => {
  app.post('/api/instances/:slug/move', {
    schema: {
      tags: ['instances', 'servers'], summary: 'Move an instance to another server: backup, stop, restore there, start, healthy, then drop the old volume (rolled back on failure)',
      params: SlugParams, body: ServerBody, response: { 200: MoveView, ...errors },
    },
  }, async (req) => moveInstance(deps, req.params.slug, req.body.server, req.principal!.id));

  app.post('/api/instances/:slug/restore-elsewhere', {
    schema: {
      tags: ['instances', 'backups'], summary: 'An instance whose server is down, restored on another server from its latest snapshot',
      params: SlugParams, body: ServerBody, response: { 200: MoveView, ...errors },
    },
  }, async (req) => restoreElsewhere(deps, req.params.slug, req.body.server, req.principal!.id));

  app.post('/api/servers/:name/drain', {
    schema: {
      tags: ['servers'], summary: 'Move every instance off a server (stateless re-placed, stateful through backup and restore); ?dryRun=true plans only',
      params: Type.Object({ name: Type.String(SERVER) }),
      querystring: Type.Object({ dryRun: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 200: PlanView, ...errors },
    },
  }, async (req) => (req.query.dryRun ? drainPlan(deps, req.params.name) : drainServer(deps, req.params.name, req.principal!.id)));
};
