import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  PASSWORD_MAX, PASSWORD_MIN, QUOTA_MAX_MB, USERNAME_PATTERN, changeAccount, checkImportable, createAccount, deleteAccount, exportAccount, getAccount, importAccount,
  importLimitBytes, listAccounts, publicAccount, refreshUsage, type AccountDeps,
} from '../../accounts/accounts.js';
import { ACCOUNT_STATES } from '../../db/schema.js';
import { ErrorReply } from '../error-handler.js';
import { fail } from '../../errors.js';
import { SLUG_PATTERN } from '../../orchestrator/instances.js';
import { sendExport } from '../send-export.js';

const Nullable = <T extends import('@sinclair/typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);
const AccountView = Type.Object({
  username: Type.String(), state: Type.Union(ACCOUNT_STATES.map((s) => Type.Literal(s))), quotaMb: Type.Integer(),
  usageBytes: Nullable(Type.Integer()), usageItems: Nullable(Type.Integer()), usageAt: Nullable(Type.String()),
  lastError: Nullable(Type.String()),
  pending: Nullable(Type.Object({ suspended: Type.Optional(Type.Boolean()), quotaMb: Type.Optional(Type.Integer()),
    create: Type.Optional(Type.Boolean({ description: 'The account is created once its instance is up (state pending)' })) },
    { description: 'Changes recorded but not applied yet by the service; cattery retries them' })),
  createdAt: Type.String(), updatedAt: Type.String(),
});
const Username = Type.String({ pattern: USERNAME_PATTERN, maxLength: 32, description: '2 to 32 lowercase letters, digits, dots, dashes or underscores, starting with a letter' });
const Password = Type.String({ minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX, description: `${PASSWORD_MIN} to ${PASSWORD_MAX} characters` });
const Quota = Type.Integer({ minimum: 1, maximum: QUOTA_MAX_MB, description: 'megabytes' });
const Params = Type.Object({ slug: Type.String({ pattern: SLUG_PATTERN }) });
const AccParams = Type.Object({ slug: Type.String({ pattern: SLUG_PATTERN }), username: Username });
const Errors = { 400: ErrorReply, 404: ErrorReply, 409: ErrorReply, 502: ErrorReply };

export const accountRoutes: FastifyPluginAsyncTypebox<{ deps: AccountDeps }> = async (app, { deps }) => {
  const actor = (req: { principal: { id: string } | null }) => req.principal?.id ?? 'anonymous';

  app.get('/api/instances/:slug/accounts', {
    schema: { tags: ['accounts'], summary: 'Accounts of an instance', params: Params, response: { 200: Type.Array(AccountView), 404: ErrorReply } },
  }, async (req) => listAccounts(deps.db, req.params.slug).map(publicAccount));

  app.post('/api/instances/:slug/accounts', {
    schema: {
      tags: ['accounts'], summary: 'Create an account (idempotent: an existing account is returned as it is, with 200; 202 when its instance is still starting: the account is pending and created once the instance is up)', params: Params,
      body: Type.Object({ username: Username, password: Password, quotaMb: Quota }, { additionalProperties: false }),
      response: { 201: AccountView, 200: AccountView, 202: AccountView, ...Errors },
    },
  }, async (req, reply) => {
    const { account, created, queued } = await createAccount(deps, req.params.slug, req.body, actor(req));
    reply.code(queued ? 202 : created ? 201 : 200);
    return publicAccount(account);
  });

  app.get('/api/instances/:slug/accounts/:username', {
    schema: {
      tags: ['accounts'], summary: 'Read an account; ?usage=true asks the service for current usage', params: AccParams,
      querystring: Type.Object({ usage: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 200: AccountView, ...Errors },
    },
  }, async (req) => publicAccount(req.query.usage
    ? await refreshUsage(deps, req.params.slug, req.params.username)
    : getAccount(deps.db, req.params.slug, req.params.username)));

  app.patch('/api/instances/:slug/accounts/:username', {
    schema: {
      tags: ['accounts'], summary: 'Change password or quota, suspend or resume', params: AccParams,
      body: Type.Object({ password: Type.Optional(Password), quotaMb: Type.Optional(Quota), suspended: Type.Optional(Type.Boolean()) },
        { additionalProperties: false, minProperties: 1 }),
      response: { 200: AccountView, 202: AccountView, ...Errors },
    },
  }, async (req, reply) => {
    const { account, applied } = await changeAccount(deps, req.params.slug, req.params.username, req.body, actor(req));
    return reply.code(applied ? 200 : 202).send(publicAccount(account));
  });

  for (const [action, suspended] of [['suspend', true], ['resume', false]] as const) {
    app.post(`/api/instances/:slug/accounts/:username/${action}`, {
      schema: {
        tags: ['accounts'], summary: `${action === 'suspend' ? 'Suspend' : 'Resume'} an account (202 when recorded and left for a retry)`,
        params: AccParams, response: { 200: AccountView, 202: AccountView, ...Errors },
      },
    }, async (req, reply) => {
      const { account, applied } = await changeAccount(deps, req.params.slug, req.params.username, { suspended }, actor(req));
      return reply.code(applied ? 200 : 202).send(publicAccount(account));
    });
  }

  app.get('/api/instances/:slug/accounts/:username/export', {
    schema: { tags: ['accounts'], summary: 'Download the account\'s data (tar, open formats)', params: AccParams },
  }, async (req, reply) => {
    const stream = await exportAccount(deps, req.params.slug, req.params.username, actor(req));
    return sendExport(req, reply, stream, `${req.params.slug}-${req.params.username}.tar`);
  });

  // An archive arrives as the raw body (application/x-tar), staged to a 0600 file within the account's bound before
  // the service sees a byte: the body is never held in memory, and a cut upload is never imported.
  app.addContentTypeParser('application/x-tar', (_req, payload, done) => done(null, payload));
  app.post('/api/instances/:slug/accounts/:username/import', {
    config: { bodyType: 'application/x-tar' },
    schema: {
      tags: ['accounts'], params: AccParams, response: { 200: AccountView, ...Errors, 413: ErrorReply, 415: ErrorReply },
      summary: 'Replace the account\'s data, whole, with an archive its service\'s export wrote (Content-Type: application/x-tar). A refused archive changes nothing',
    },
  }, async (req, reply) => {
    const { slug, username } = req.params;
    // checkBodyType (auth.ts) let only the declared type through; checked again here, as a media type is compared.
    if ((req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() !== 'application/x-tar') throw fail('CATTERY_ERR_UNSUPPORTED_MEDIA', 'send the archive as application/x-tar');
    // Nothing is received for an account that cannot take it now.
    const max = importLimitBytes(deps, checkImportable(deps, slug, username).quotaMb);
    const root = deps.stagingDir ?? os.tmpdir();
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    const dir = fs.mkdtempSync(path.join(root, 'import-'));
    const file = path.join(dir, `${crypto.randomUUID()}.tar`);
    try {
      let bytes = 0;
      const body = req.body as Readable;
      await pipeline(body, async function* cap(src: AsyncIterable<Buffer>) {
        for await (const c of src) {
          bytes += c.length;
          if (bytes > max) throw fail('CATTERY_ERR_TOO_LARGE', `the archive is larger than ${username}'s quota allows (${max} bytes at most)`);
          yield c;
        }
      }, fs.createWriteStream(file, { flags: 'wx', mode: 0o600 }));
      return reply.send(publicAccount(await importAccount(deps, slug, username, file, actor(req))));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  app.delete('/api/instances/:slug/accounts/:username', {
    schema: {
      tags: ['accounts'], summary: 'Delete an account and purge its data (idempotent); 202 when the service cannot do it now and cattery will retry',
      params: AccParams, response: { 204: Type.Null(), 202: AccountView, ...Errors },
    },
  }, async (req, reply) => {
    const done = await deleteAccount(deps, req.params.slug, req.params.username, actor(req));
    if (done) return reply.code(204).send(null);
    return reply.code(202).send(publicAccount(getAccount(deps.db, req.params.slug, req.params.username)));
  });
};
