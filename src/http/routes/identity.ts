// The identity API, for scripts: who am I, people and their roles, API tokens, sign-ups.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SIGNUP_STATUS, USER_STATUS } from '../../db/schema.js';
import { fail } from '../../errors.js';
import { firstPassword } from '../../identity/passwords.js';
import { PERSON_ROLES } from '../../identity/roles.js';
import { approveSignup, listSignups, rejectSignup } from '../../identity/signup.js';
import { createApiToken, listApiTokens, publicToken, revokeApiToken } from '../../identity/tokens.js';
import { EMAIL_PATTERN, NAME_PATTERN, createUser, findByLogin, listUsers, publicUser, setUserRoles } from '../../identity/users.js';
import { disablePerson, enablePerson } from '../../identity/person-status.js';
import { USERNAME_PATTERN } from '../../accounts/accounts.js';
import { ErrorReply } from '../error-handler.js';
import { signupDeps, type PageDeps } from '../pages/deps.js';

const Nullable = <T extends import('@sinclair/typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);
const RoleName = Type.Union(PERSON_ROLES.map((r) => Type.Literal(r)));
const UserView = Type.Object({
  id: Type.Integer(), login: Type.String(), name: Type.String(), email: Nullable(Type.String()), roles: Type.Array(Type.String()),
  status: Type.String(), via: Type.String(), mustChangePassword: Type.Boolean(), createdAt: Type.String(), lastLoginAt: Nullable(Type.String()),
});
const TokenView = Type.Object({
  id: Type.Integer(), name: Type.String(), roles: Type.Array(Type.String()), createdBy: Type.String(), createdAt: Type.String(),
  expiresAt: Nullable(Type.String()), revokedAt: Nullable(Type.String()), lastUsedAt: Nullable(Type.String()),
});
const SignupView = Type.Object({
  id: Type.Integer(), login: Type.String(), name: Type.String(), email: Nullable(Type.String()), services: Type.Array(Type.String()),
  termsVersion: Type.String(), channel: Type.String(), mediatorLogin: Nullable(Type.String()), consentAt: Type.String(),
  status: Type.String(), decidedBy: Nullable(Type.String()), decidedAt: Nullable(Type.String()), lastError: Nullable(Type.String()), createdAt: Type.String(),
});
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

export const identityRoutes: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  app.get('/api/me', {
    schema: {
      tags: ['identity'], summary: 'Who is calling, with which roles',
      response: { 200: Type.Object({ id: Type.String(), roles: Type.Array(Type.String()) }) },
    },
  }, async (req) => ({ id: req.principal!.id, roles: req.principal!.roles }));

  app.get('/api/users', {
    schema: { tags: ['identity'], summary: 'People known to cattery', response: { 200: Type.Array(UserView) } },
  }, async () => listUsers(deps.db).map(publicUser));

  app.post('/api/users', {
    schema: {
      tags: ['identity'], summary: 'Add a person with a first password (returned once), to be changed at first sign-in',
      body: Type.Object({
        login: Type.String({ pattern: USERNAME_PATTERN, description: '2 to 32 lowercase letters, digits, dots, dashes or underscores' }),
        name: Type.String({ pattern: NAME_PATTERN, maxLength: 80, description: 'letters, spaces, apostrophes and hyphens' }),
        email: Type.Optional(Type.String({ pattern: EMAIL_PATTERN, maxLength: 255, description: 'an email address' })),
        roles: Type.Array(RoleName, { minItems: 1, uniqueItems: true }),
      }, { additionalProperties: false }),
      response: { 201: Type.Object({ user: UserView, firstPassword: Type.String() }), 400: ErrorReply, 409: ErrorReply },
    },
  }, async (req, reply) => {
    const password = firstPassword();
    const user = await createUser(deps.db, { ...req.body, password, mustChangePassword: true });
    reply.code(201);
    return { user: publicUser(user), firstPassword: password };
  });

  app.patch('/api/users/:login', {
    schema: {
      tags: ['identity'], summary: 'Change a person\'s roles, or disable them (sessions and tokens stop at once, service accounts are suspended) or enable them again (the accounts the disabling suspended resume)',
      params: Type.Object({ login: Type.String({ pattern: USERNAME_PATTERN }) }),
      body: Type.Object({
        roles: Type.Optional(Type.Array(RoleName, { minItems: 1, uniqueItems: true })),
        status: Type.Optional(Type.Union(USER_STATUS.filter((s) => s !== 'pending').map((s) => Type.Literal(s)))),
      }, { additionalProperties: false }),
      response: { 200: UserView, 400: ErrorReply, 404: ErrorReply },
    },
  }, async (req) => {
    const user = findByLogin(deps.db, req.params.login);
    if (!user) throw fail('CATTERY_ERR_NOT_FOUND', `no person "${req.params.login}"`);
    if (req.body.roles) setUserRoles(deps.db, user.id, req.body.roles);
    // Repeating a status retries what an earlier call could not apply (person-status.ts).
    if (req.body.status === 'disabled') await disablePerson(deps.accounts, user, req.principal!.id);
    else if (req.body.status === 'active') await enablePerson(deps.accounts, user, req.principal!.id);
    return publicUser(findByLogin(deps.db, user.login)!);
  });

  await tokenAndSignupRoutes(app, deps);
};


type App = Parameters<FastifyPluginAsyncTypebox<{ deps: PageDeps }>>[0];

/** API tokens, and the sign-ups waiting for an administrator. */
async function tokenAndSignupRoutes(app: App, deps: PageDeps): Promise<void> {
  app.get('/api/tokens', {
    schema: { tags: ['identity'], summary: 'API tokens (never their secret)', response: { 200: Type.Array(TokenView) } },
  }, async () => listApiTokens(deps.db).map(publicToken));

  app.post('/api/tokens', {
    schema: {
      tags: ['identity'], summary: 'Create an API token; the token is shown once',
      body: Type.Object({
        name: Type.String({ minLength: 1, maxLength: 80, pattern: '^[\\w .:@-]+$', description: 'letters, digits, spaces and . : @ -' }),
        roles: Type.Array(RoleName, { minItems: 1, uniqueItems: true }),
        expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
      }, { additionalProperties: false }),
      response: { 201: Type.Object({ token: Type.String(), info: TokenView }), 400: ErrorReply, 403: ErrorReply },
    },
  }, async (req, reply) => {
    const { token, row } = createApiToken(deps.db, req.principal!, req.body);
    reply.code(201);
    return { token, info: publicToken(row) };
  });

  app.delete('/api/tokens/:id', {
    schema: { tags: ['identity'], summary: 'Revoke a token (it stops at once)', params: IdParams, response: { 204: Type.Null(), 404: ErrorReply } },
  }, async (req, reply) => {
    revokeApiToken(deps.db, req.params.id);
    return reply.code(204).send(null);
  });

  app.get('/api/signups', {
    schema: {
      tags: ['identity'], summary: 'Sign-up requests', response: { 200: Type.Array(SignupView) },
      querystring: Type.Object({ status: Type.Optional(Type.Union(SIGNUP_STATUS.map((s) => Type.Literal(s)))) }, { additionalProperties: false }),
    },
  }, async (req) => listSignups(deps, req.query.status ? { status: req.query.status } : {}));

  app.post('/api/signups/:id/approve', {
    schema: { tags: ['identity'], summary: 'Approve: create the accounts', params: IdParams, response: { 200: SignupView, 404: ErrorReply, 409: ErrorReply, 502: ErrorReply } },
  }, async (req) => {
    await approveSignup(signupDeps(deps), req.params.id, req.principal!.id);
    return listSignups(deps, { id: req.params.id })[0]!;
  });

  app.post('/api/signups/:id/reject', {
    schema: { tags: ['identity'], summary: 'Reject a sign-up not yet approved; accounts a failed approval made are removed', params: IdParams, response: { 200: SignupView, 404: ErrorReply, 409: ErrorReply } },
  }, async (req) => {
    await rejectSignup(deps.accounts, req.params.id, req.principal!.id);
    return listSignups(deps, { id: req.params.id })[0]!;
  });
}
