// What the association publishes for anyone, without signing in (src/publication/): the open data's CSV files and
// their Table Schemas at stable URLs, and the ChatonsInfos files under /.well-known/chatonsinfos/. Every figure in
// them has been through statistical secrecy first.
import crypto from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Catalog } from '../../catalog/load.js';
import type { Config } from '../../config.js';
import type { Db } from '../../db/connection.js';
import { fail } from '../../errors.js';
import { monthBounds, previousMonth, MONTH } from '../../publication/figures.js';
import { DATASETS, LICENCE, dataPackage, datasetCsv, tableSchema, type Dataset } from '../../publication/opendata.js';
import { organizationFile, serviceFile } from '../../publication/chatonsinfos.js';
import { ErrorReply } from '../error-handler.js';

export interface PublicationDeps { db: Db; catalog: Catalog; config: Config }

const isDataset = (d: string): d is Dataset => (DATASETS as readonly string[]).includes(d);
const FILE = /^(\d{4}-(0[1-9]|1[0-2])|latest)\.csv$/;
const SERVICE_FILE = /^[a-z][a-z0-9-]{1,30}\.properties$/;

// A closed month's figures change only if the past is rewritten (a late import): a day in caches. The month in
// progress, `latest` and the ChatonsInfos files follow live state: an hour.
const DAY = 'public, max-age=86400';
const HOUR = 'public, max-age=3600';

/** RFC 9110 §13.1.2: If-None-Match is `*` or a list of tags, compared weakly (a proxy that compressed the answer
 * may have made the tag weak, W/"…"). */
export function matchesTag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').map((x) => x.trim().replace(/^W\//, '')).includes(etag);
}

/** Sends a public text with its validator: a client that has it already gets 304. */
function send(req: FastifyRequest, reply: FastifyReply, type: string, body: string, cache: string) {
  const etag = `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  reply.header('cache-control', cache).header('etag', etag).header('access-control-allow-origin', '*');
  if (matchesTag(req.headers['if-none-match'], etag)) return reply.code(304).send();
  return reply.type(type).send(body);
}

export const publicationRoutes: FastifyPluginAsyncTypebox<{ deps: PublicationDeps }> = async (app, { deps }) => {
  const licence = `<${LICENCE.path}>; rel="license"; title="${LICENCE.title}"`;

  app.get('/open-data/datapackage.json', {
    config: { cacheable: true },
    schema: { tags: ['publication'], summary: 'The open datasets (frictionless Data Package), pointing at the last complete month' },
  }, async (req, reply) => send(req, reply, 'application/json; charset=utf-8', JSON.stringify(dataPackage(deps.config, previousMonth(new Date())), null, 2), HOUR));

  app.get('/open-data/:dataset/schema.json', {
    config: { cacheable: true },
    schema: {
      tags: ['publication'], summary: 'A dataset\'s Table Schema (frictionless), Licence Ouverte 2.0',
      params: Type.Object({ dataset: Type.String({ maxLength: 64 }) }), response: { 400: ErrorReply, 404: ErrorReply },
    },
  }, async (req, reply) => {
    if (!isDataset(req.params.dataset)) throw fail('CATTERY_ERR_NOT_FOUND', `No dataset; there are ${DATASETS.join(', ')}`);
    reply.header('link', licence);
    return send(req, reply, 'application/schema+json; charset=utf-8', JSON.stringify(tableSchema(req.params.dataset, deps.config), null, 2), DAY);
  });

  app.get('/open-data/:dataset/:file', {
    config: { cacheable: true },
    schema: {
      tags: ['publication'], summary: 'A dataset for one month (YYYY-MM.csv), or the last complete month (latest.csv), after statistical secrecy',
      // Names are checked in the handler, not by the schema: a name that is not one of the files (an empty segment
      // included, which the router lets reach a parameter) is a 404 like any other missing file, not a 400.
      params: Type.Object({ dataset: Type.String({ maxLength: 64 }), file: Type.String({ maxLength: 64 }) }), response: { 400: ErrorReply, 404: ErrorReply },
    },
  }, async (req, reply) => {
    if (!isDataset(req.params.dataset) || !FILE.test(req.params.file)) throw fail('CATTERY_ERR_NOT_FOUND', 'No such dataset or file: <dataset>/<YYYY-MM>.csv or <dataset>/latest.csv');
    const now = new Date();
    const asked = req.params.file.slice(0, -4);
    const month = asked === 'latest' ? previousMonth(now) : asked;
    if (!MONTH.test(month) || monthBounds(month).start > now) throw fail('CATTERY_ERR_NOT_FOUND', `No figures for ${month} yet`);
    const closed = monthBounds(month).end <= now;
    reply.header('link', licence).header('content-disposition', `inline; filename="${req.params.dataset}-${month}.csv"`);
    if (asked === 'latest') reply.header('content-location', `/open-data/${req.params.dataset}/${month}.csv`);
    const body = datasetCsv(req.params.dataset, month, deps.config, deps.db, deps.catalog, now);
    // Frictionless' CSV dialect defaults: comma, double quotes, a header line (https://specs.frictionlessdata.io/csv-dialect/).
    return send(req, reply, 'text/csv; charset=utf-8; header=present', body, closed && asked !== 'latest' ? DAY : HOUR);
  });

  const organization = {
    config: { cacheable: true },
    schema: { tags: ['publication'], summary: 'ChatonsInfos: the organization file' },
  };
  const org = async (req: FastifyRequest, reply: FastifyReply) => send(req, reply, 'text/plain; charset=utf-8', organizationFile(deps), HOUR);
  app.get('/.well-known/chatonsinfos/', organization, org);
  app.get('/.well-known/chatonsinfos/organization.properties', organization, org);

  app.get('/.well-known/chatonsinfos/:file', {
    config: { cacheable: true },
    schema: {
      tags: ['publication'], summary: 'ChatonsInfos: one offered service\'s file (<service>.properties)',
      params: Type.Object({ file: Type.String({ maxLength: 64 }) }), response: { 400: ErrorReply, 404: ErrorReply },
    },
  }, async (req, reply) => {
    if (!SERVICE_FILE.test(req.params.file)) throw fail('CATTERY_ERR_NOT_FOUND', 'No such file: <service>.properties');
    const body = serviceFile(deps, req.params.file.slice(0, -'.properties'.length));
    if (body === undefined) throw fail('CATTERY_ERR_NOT_FOUND', 'No such service offered here');
    return send(req, reply, 'text/plain; charset=utf-8', body, HOUR);
  });
};
