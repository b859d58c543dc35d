// The administrators' page of front-door names: every instance with the names it answers to, and a form per instance
// to change them (the API's PUT /api/instances/:slug/hostnames, through the same ingress/names-change.ts). A refused
// list changes nothing and comes back in its box with the reason, so that nothing typed is lost.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Catalog } from '../../catalog/load.js';
import { isCatteryError } from '../../errors.js';
import { changeHostnames, type NamesDeps } from '../../ingress/names-change.js';
import { MAX_HOSTNAMES_PER_INSTANCE, hostnamesOf } from '../../ingress/store.js';
import { SLUG_PATTERN, getInstance, listInstances } from '../../orchestrator/instances.js';
import { langOf } from './render.js';

const NamesForm = Type.Object({
  _csrf: Type.Optional(Type.String({ maxLength: 200 })),
  // One name per line (spaces and commas separate too): at most 16 names of 254 characters and their separators.
  names: Type.String({ maxLength: MAX_HOSTNAMES_PER_INSTANCE * 260 }),
}, { additionalProperties: false });
const Query = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })), done: Type.Optional(Type.String({ pattern: SLUG_PATTERN })) });
const SlugParams = Type.Object({ slug: Type.String({ pattern: SLUG_PATTERN }) });

export interface NamesPageDeps extends NamesDeps { catalog: Catalog }

export const namesPages: FastifyPluginAsyncTypebox<{ deps: NamesPageDeps }> = async (app, { deps }) => {
  const page = { page: true } as const;
  /** The web instances (a name is for the door, or a mail instance's certificate), with their names. */
  const rows = (lang: 'fr' | 'en') => listInstances(deps.db).filter((i) => i.desired !== 'deleted').flatMap((i) => {
    const m = deps.catalog.services.get(i.service)?.manifest;
    if (!m || !(m.http || i.service === 'mail')) return [];
    return [{ slug: i.slug, service: m.name[lang], names: hostnamesOf(deps.db, i.id) }];
  });

  app.get('/admin/names', { config: page, schema: { hide: true, querystring: Query } }, async (req, reply) =>
    reply.page('admin-names', { rows: rows(langOf(req)), done: req.query.done ?? null, refused: null, domains: deps.config.domains }));

  app.post('/admin/names/:slug', { config: page, schema: { hide: true, params: SlugParams, querystring: Query, body: NamesForm } }, async (req, reply) => {
    const inst = getInstance(deps.db, req.params.slug);
    const given = req.body.names.split(/[\s,]+/).filter(Boolean);
    try {
      changeHostnames(deps, inst, given, req.log);
    } catch (err) {
      if (!isCatteryError(err) || !['CATTERY_ERR_VALIDATION', 'CATTERY_ERR_CONFLICT'].includes(err.code)) throw err;
      reply.header('x-cattery-error', err.code);
      const refused = { slug: inst.slug, text: req.body.names, reason: err.message };
      return reply.page('admin-names', { rows: rows(langOf(req)), done: null, refused, domains: deps.config.domains }, err.code === 'CATTERY_ERR_CONFLICT' ? 409 : 400);
    }
    return reply.redirect(`/admin/names?done=${inst.slug}`, 303);
  });
};
