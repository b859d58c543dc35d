// Housekeeping through the API (orchestrator/housekeeping.ts): orphan volumes listed, archived and dropped, unused
// hash-tagged images collected. Administrators only (permissions.ts); nothing here runs unless asked.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  VOLUME_NAME_PATTERN, archiveOrphanVolume, collectImages, dropOrphanVolume, listOrphanVolumes, type HousekeepingDeps,
} from '../../orchestrator/housekeeping.js';
import { ErrorReply } from '../error-handler.js';

const NameParams = Type.Object({ name: Type.String({ pattern: VOLUME_NAME_PATTERN }) });
const ServerName = Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const OrphanView = Type.Object({
  server: Type.String(), name: Type.String(), slug: Type.String(), service: Nullable(Type.String()), volume: Nullable(Type.String()),
  createdAt: Type.String(), sizeBytes: Nullable(Type.Integer()), usedBytes: Nullable(Type.Integer()),
  archive: Nullable(Type.Object({ file: Type.String(), at: Type.String(), bytes: Type.Integer() })),
});
const ImageView = Type.Object({
  server: Type.String(), ref: Type.String(), id: Type.String(), bytes: Type.Integer(), created: Type.String(),
  removed: Type.Optional(Type.Boolean()), error: Type.Optional(Type.String()),
});

const actor = (req: { principal: { id: string } | null }) => req.principal?.id ?? 'anonymous';

export const housekeepingRoutes: FastifyPluginAsyncTypebox<{ deps: HousekeepingDeps }> = async (app, { deps }) => {
  app.get('/api/volumes/orphans', {
    schema: { tags: ['housekeeping'], summary: 'Volumes of this hoster that no instance row claims', response: { 200: Type.Array(OrphanView) } },
  }, async () => listOrphanVolumes(deps));

  app.post('/api/volumes/orphans/:name/archive', {
    schema: {
      tags: ['housekeeping'], summary: 'Copy an orphan volume to data/backups as a .tar.gz', params: NameParams,
      body: Type.Object({ server: Type.Optional(ServerName) }, { additionalProperties: false }),
      response: { 200: Type.Object({ file: Type.String(), bytes: Type.Integer() }), 404: ErrorReply, 409: ErrorReply },
    },
  }, async (req) => archiveOrphanVolume(deps, req.params.name, { actor: actor(req), server: req.body.server }));

  app.post('/api/volumes/orphans/:name/drop', {
    schema: {
      tags: ['housekeeping'], summary: 'Remove an orphan volume: archived first, or with force', params: NameParams,
      body: Type.Object({ server: Type.Optional(ServerName), force: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 200: Type.Object({ dropped: Type.String() }), 404: ErrorReply, 409: ErrorReply },
    },
  }, async (req) => {
    await dropOrphanVolume(deps, req.params.name, { actor: actor(req), server: req.body.server, force: req.body.force === true });
    return { dropped: req.params.name };
  });

  app.post('/api/images/gc', {
    schema: {
      tags: ['housekeeping'], summary: 'Hash-tagged images nothing uses: listed, or removed with apply',
      body: Type.Object({
        apply: Type.Optional(Type.Boolean()),
        only: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{0,63}$' }), { maxItems: 64 })),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ applied: Type.Boolean(), images: Type.Array(ImageView), bytes: Type.Integer() }) },
    },
  }, async (req) => collectImages(deps, { apply: req.body.apply === true, actor: actor(req), ...(req.body.only ? { only: req.body.only } : {}) }));
};
