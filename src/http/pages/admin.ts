// Administrators' pages: sign-ups waiting (approve, reject) and the accounts of every instance.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { accountsWithOwners } from '../../identity/person-accounts.js';
import { approveSignup, listSignups, rejectSignup } from '../../identity/signup.js';
import { signupDeps, type PageDeps } from './deps.js';

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const CsrfOnly = Type.Object({ _csrf: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false });

export const adminPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const page = { page: true } as const;

  app.get('/admin', {
    config: page,
    schema: { hide: true, querystring: Type.Object({ failed: Type.Optional(Type.Integer({ minimum: 1 })), lang: Type.Optional(Type.String({ maxLength: 5 })) }) },
  }, async (req, reply) => {
    const waiting = listSignups(deps, { status: 'pending' });
    const failed = listSignups(deps, { status: 'failed' });
    // The link names a sign-up, never a text: what the alert says comes from the sign-up's own row, so a link
    // from elsewhere cannot put words of its choosing in the administrator's page.
    const error = req.query.failed ? failed.find((s) => s.id === req.query.failed)?.lastError ?? null : null;
    return reply.page('admin', { waiting, failed, accounts: accountsWithOwners(deps.db), error });
  });

  app.post('/admin/signups/:id/approve', { config: page, schema: { hide: true, params: IdParams, body: CsrfOnly } }, async (req, reply) => {
    try {
      await approveSignup(signupDeps(deps), req.params.id, req.principal!.id);
    } catch (err) {
      // The failure is kept on the sign-up (status failed, last error) and shown on the page; approving again retries.
      req.log.warn({ err }, 'sign-up approval failed');
      return reply.redirect(`/admin?failed=${req.params.id}`, 303);
    }
    return reply.redirect('/admin', 303);
  });

  app.post('/admin/signups/:id/reject', { config: page, schema: { hide: true, params: IdParams, body: CsrfOnly } }, async (req, reply) => {
    await rejectSignup(deps.accounts, req.params.id, req.principal!.id);
    return reply.redirect('/admin', 303);
  });
};
