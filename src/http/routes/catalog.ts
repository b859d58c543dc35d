import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Catalog } from '../../catalog/load.js';
import { ManifestSchema } from '../../catalog/manifest.js';
import { fail } from '../../errors.js';
import { ErrorReply } from '../error-handler.js';
import type { Db } from '../../db/connection.js';
import { isOpen } from '../../catalog/offer.js';
import { serviceSettingsMap } from '../../governance/settings.js';

const ServiceView = Type.Object({
  id: Type.String(), name: Type.Object({ fr: Type.String(), en: Type.String() }),
  description: Type.Object({ fr: Type.String(), en: Type.String() }),
  openForSignup: Type.Boolean({ description: 'Residents may sign up alone: the association\'s decision over the manifest\'s' }),
  membersOnly: Type.Boolean({ description: 'Kept for members of the association (ChatonsInfos registration `Member`): lapsed dues suspend the accounts' }),
  productionImage: Type.String(), ports: Type.Array(Type.String()), volumes: Type.Array(Type.String()),
});

export const catalogRoutes: FastifyPluginAsyncTypebox<{ catalog: Catalog; db: Db }> = async (app, { catalog, db }) => {
  const view = (id: string, settings = serviceSettingsMap(db)) => {
    const m = catalog.services.get(id)!.manifest;
    return {
      id: m.id, name: m.name, description: m.description, openForSignup: isOpen(m, settings.get(m.id)), membersOnly: settings.get(m.id)?.membersOnly ?? false,
      productionImage: m.image.production,
      ports: m.ports.map((p) => p.name), volumes: m.volumes.map((v) => v.name),
    };
  };
  app.get('/api/catalog', {
    schema: { tags: ['catalog'], summary: 'Services this hoster offers', response: { 200: Type.Array(ServiceView) } },
  }, async () => { const settings = serviceSettingsMap(db); return [...catalog.services.keys()].map((id) => view(id, settings)); });

  app.get('/api/catalog/:id', {
    schema: {
      tags: ['catalog'], summary: 'A service\'s full manifest',
      params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
      response: { 200: Type.Unsafe<unknown>({ ...ManifestSchema, $id: undefined }), 404: ErrorReply },
    },
  }, async (req) => {
    const svc = catalog.services.get(req.params.id);
    if (!svc) throw fail('CATTERY_ERR_NOT_FOUND', `No service "${req.params.id}" in the catalog`);
    return svc.manifest;
  });
};
