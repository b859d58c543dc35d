// Pages anyone can open: home, terms, sign-up, sign-in (password or OpenID), sign-out, and the stylesheet.
import fs from 'node:fs';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { fail, isCatteryError } from '../../errors.js';
import { passwordSignIn } from '../../identity/sign-in.js';
import { createSession, endSession, sessionById } from '../../identity/sessions.js';
import { isOpen, openServiceChoices, openServices } from '../../catalog/offer.js';
import { serviceSettingsMap } from '../../governance/settings.js';
import { submitSignup } from '../../identity/signup.js';
import { cookieOptions } from '../cookies.js';
import { langOf } from './render.js';
import { VIEWS_DIR, safeNext, sessionPolicy, signupDeps, type PageDeps } from './deps.js';
import { SignupBody, checkSignupForm, type SignupForm } from './forms.js';
import { clientKey } from '../proxy-trust.js';
import { fullHere } from '../../federation/directory.js';

export function startSession(deps: PageDeps, reply: FastifyReply, userId: number, via: 'password' | 'oidc', idToken?: string): void {
  const token = createSession(deps.db, sessionPolicy(deps.config), userId, via, idToken);
  // No Max-Age: the cookie dies with the browser, which matters on a shared computer at a public internet point.
  reply.setCookie(reply.server.cookieNames.session, token, cookieOptions(deps.secureCookies));
}

export const publicPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const page = { page: true } as const;
  const css = fs.readFileSync(path.join(VIEWS_DIR, 'cattery.css'));

  app.get('/assets/cattery.css', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', 'text/css; charset=utf-8').header('cache-control', 'public, max-age=86400');
    return css;
  });

  app.get('/', { config: page, schema: { hide: true } }, async (req, reply) => {
    const lang = langOf(req);
    const settings = serviceSettingsMap(deps.db);
    const all = [...deps.catalog.services.values()].map((s) => s.manifest)
      .map((m) => ({ id: m.id, name: m.name[lang], description: m.description[lang], open: isOpen(m, settings.get(m.id)), membersOnly: settings.get(m.id)?.membersOnly ?? false }));
    return reply.page('home', { services: all });
  });

  app.get('/terms', { config: page, schema: { hide: true } }, async (_req, reply) => reply.page('terms', { version: deps.config.termsVersion }));

  const signupForm = (reply: FastifyReply, values: SignupForm, errors: { field: string; key: string }[], status = 200) =>
    reply.page('signup', {
      services: openServiceChoices(deps.catalog, langOf(reply.request), serviceSettingsMap(deps.db)), values, errors, version: deps.config.termsVersion,
      // Our services full here, each with the peers open for it (federation/directory.ts).
      full: fullHere(deps),
    }, status);

  app.get('/signup', { config: page, schema: { hide: true } }, async (_req, reply) => signupForm(reply, {}, []));

  app.post('/signup', {
    config: { ...page, rateLimit: { max: deps.config.signupPerHour, timeWindow: 3_600_000 } },
    attachValidation: true,
    schema: { hide: true, body: SignupBody },
  }, async (req, reply) => {
    if (req.validationError) return signupForm(reply, {}, [{ field: '', key: 'err.form' }], 400);
    const body = req.body as SignupForm;
    const open = new Set(openServices(deps.catalog, serviceSettingsMap(deps.db)).map((m) => m.id));
    const errors = checkSignupForm(body, { needPassword: true, consentField: 'terms', termsVersion: deps.config.termsVersion, open });
    const kept = { name: body.name, email: body.email, services: body.services };
    if (errors.length) return signupForm(reply, kept, errors, 400);
    const { user, signup } = await submitSignup(signupDeps(deps), {
      name: body.name!.trim(), email: body.email?.trim() || undefined, services: body.services!, termsVersion: body.terms!,
      password: body.password!, lang: langOf(req),
    });
    return reply.page('signup-done', { login: user.login, approved: signup.status === 'approved' }, 201);
  });

  await signInPages(app, deps);
};


type App = Parameters<FastifyPluginAsyncTypebox<{ deps: PageDeps }>>[0];

/** Signing in (password or OpenID) and out. */
async function signInPages(app: App, deps: PageDeps): Promise<void> {
  const page = { page: true } as const;
  const loginLimit = { max: deps.config.loginPerMinute, timeWindow: 60_000 };
  const loginForm = (reply: FastifyReply, next: string, error: { key: string; detail?: string } | null, status = 200) =>
    reply.page('login', { next, error, oidcLabel: deps.oidc?.label }, status);

  app.get('/login', {
    config: page,
    schema: { hide: true, querystring: Type.Object({ next: Type.Optional(Type.String({ maxLength: 300 })), lang: Type.Optional(Type.String({ maxLength: 5 })) }) },
  }, async (req, reply) => loginForm(reply, safeNext(req.query.next), null));

  app.post('/login', {
    config: { ...page, rateLimit: loginLimit },
    attachValidation: true,
    schema: {
      hide: true,
      body: Type.Object({
        _csrf: Type.Optional(Type.String({ maxLength: 200 })), login: Type.String({ maxLength: 100 }),
        password: Type.String({ maxLength: 300 }), next: Type.Optional(Type.String({ maxLength: 300 })),
      }, { additionalProperties: false }),
    },
  }, async (req, reply) => {
    const body = req.body as { login?: string; password?: string; next?: string };
    const next = safeNext(body.next);
    if (req.validationError) return loginForm(reply, next, { key: 'err.CATTERY_ERR_LOGIN_FAILED' }, 400);
    try {
      // Throttled per (login, client address): a stranger's failures slow the stranger, not the owner (throttle.ts).
      const user = await passwordSignIn(deps.signIn, deps.throttle.from(clientKey(req.ip)), body.login ?? '', body.password ?? '');
      startSession(deps, reply, user.id, 'password');
      return reply.redirect(user.mustChangePassword ? '/me#password' : next, 303);
    } catch (err) {
      if (!isCatteryError(err) || (err.code !== 'CATTERY_ERR_LOGIN_FAILED' && err.code !== 'CATTERY_ERR_THROTTLED')) throw err;
      const detail = err.code === 'CATTERY_ERR_THROTTLED' ? (/\d+/.exec(err.message)?.[0] ?? '') : '';
      if (detail) reply.header('retry-after', detail);
      reply.header('x-cattery-error', err.code);
      return loginForm(reply, next, { key: `err.${err.code}`, detail }, err.statusCode);
    }
  });

  app.get('/login/oidc', {
    config: { ...page, rateLimit: loginLimit },
    schema: {
      hide: true,
      // fresh=1: the provider must authenticate again (before a local password is set, reauth.ts).
      querystring: Type.Object({ next: Type.Optional(Type.String({ maxLength: 300 })), fresh: Type.Optional(Type.Literal('1')) }),
    },
  }, async (req, reply) => {
    if (!deps.oidc) throw fail('CATTERY_ERR_NOT_FOUND', 'no identity provider is configured');
    const { url, state } = await deps.oidc.start(deps.db, safeNext(req.query.next), { fresh: req.query.fresh === '1' });
    // Path=/ and not /auth: a `__Host-` cookie must have it (cookies.ts).
    reply.setCookie(reply.server.cookieNames.oidc, state, { ...cookieOptions(deps.secureCookies), maxAge: 600 });
    return reply.redirect(url, 303);
  });

  app.get('/auth/callback', {
    config: { ...page, rateLimit: loginLimit },
    schema: { hide: true, querystring: Type.Record(Type.String(), Type.String({ maxLength: 4096 })) },
  }, async (req, reply) => {
    if (!deps.oidc) throw fail('CATTERY_ERR_NOT_FOUND', 'no identity provider is configured');
    const oidcCookie = reply.server.cookieNames.oidc;
    reply.clearCookie(oidcCookie, cookieOptions(deps.secureCookies));
    const { user, idToken, returnTo } = await deps.oidc.finish(deps.db, new URL(req.url, deps.config.publicUrl), req.cookies[oidcCookie]);
    startSession(deps, reply, user.id, 'oidc', idToken);
    return reply.redirect(safeNext(returnTo), 303);
  });

  app.post('/logout', {
    config: page,
    schema: { hide: true, body: Type.Object({ _csrf: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }) },
  }, async (req, reply) => {
    const sessionId = req.principal?.sessionId;
    let target = '/';
    if (sessionId) {
      const row = sessionById(deps.db, sessionId);
      endSession(deps.db, sessionId);
      if (row?.via === 'oidc' && deps.oidc) target = (await deps.oidc.logoutUrl(row.idToken, `${deps.config.publicUrl}/`).catch(() => undefined)) ?? '/';
    }
    reply.clearCookie(reply.server.cookieNames.session, cookieOptions(deps.secureCookies));
    return reply.redirect(target, 303);
  });
}
