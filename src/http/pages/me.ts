// "My services": a resident's accounts, how to reach each, one password for all, export and deletion.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { accountsOfUser, exportAccount } from '../../accounts/accounts.js';
import { accessOf, linkedAccessOf } from './access.js';
import { fail } from '../../errors.js';
import { verifyPassword } from '../../identity/passwords.js';
import { deleteOwnAccount, setPasswordEverywhere } from '../../identity/person-accounts.js';
import { freshProviderSignIn } from '../../identity/reauth.js';
import { endOtherSessions, sessionById } from '../../identity/sessions.js';
import { createThrottle, type Throttle } from '../../identity/throttle.js';
import { checkNewPassword, findUser } from '../../identity/users.js';
import { accountFigure } from '../../metering/report.js';
import { sendExport } from '../send-export.js';
import type { PageDeps } from './deps.js';
import { memberOfUser } from '../../governance/members.js';
import { pendingSuspension } from '../../governance/dues-gate.js';
import { day } from './gov-view.js';
import { langOf } from './render.js';
import { moveSection, refusalShown } from './move-view.js';

type Person = NonNullable<FastifyRequest['user']>;
interface FormError { field: string; key: string; params?: Record<string, unknown> }

const page = { page: true } as const;
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const PasswordForm = Type.Object({
  _csrf: Type.Optional(Type.String({ maxLength: 200 })), current: Type.Optional(Type.String({ maxLength: 300 })),
  password: Type.String({ maxLength: 300 }), password2: Type.String({ maxLength: 300 }),
}, { additionalProperties: false });
const DeleteForm = Type.Object({ _csrf: Type.Optional(Type.String({ maxLength: 200 })), confirm: Type.Literal('yes') }, { additionalProperties: false });

/** What a form that redirects back here did, by the word it adds to the address. */
const DONE: Record<string, string> = { deleted: 'me.deleted', moved: 'move.done.confirmed', 'move-cancelled': 'move.done.cancelled', arrived: 'move.done.arrived' };

const acceptable = (p: string) => { try { checkNewPassword(p); return true; } catch { return false; } };
const statusOf = (key: string) => (key === 'err.reauth' ? 403 : key === 'err.CATTERY_ERR_THROTTLED' ? 429 : 400);

export function me(req: FastifyRequest): Person {
  if (!req.user) throw fail('CATTERY_ERR_FORBIDDEN', 'this page is for a person signed in, not a token');
  return req.user;
}

/** The resident's own share over the last 30 days (modelled: metering/energy-model.ts accountKey). */
function energyOf(deps: PageDeps, slug: string, username: string) {
  try {
    const f = accountFigure(deps.db, slug, username, { from: new Date(Date.now() - 30 * 86_400_000), to: new Date(), gridGPerKwh: deps.config.gridGCo2ePerKwh });
    return { wh: f.energyWh + f.idleShareWh, g: f.co2eG.total };
  } catch { return null; }
}

/** A person linked to OpenID sets a local password only right after signing in again at the provider. */
const providerFresh = (deps: PageDeps, req: FastifyRequest, user: Person) =>
  freshProviderSignIn(req.principal?.sessionId ? sessionById(deps.db, req.principal.sessionId) : undefined, user);

/** Only the holder of a session can try current passwords here, so the backoff is per person: a session stolen at
 * a public computer gets a few guesses, then waits that double, while the per-address limit stays on the route. */
async function checkCurrent(throttle: Throttle, user: Person, given: string): Promise<FormError | null> {
  const key = String(user.id);
  const wait = throttle.retryAfter(key);
  if (wait > 0) return { field: 'current', key: 'err.CATTERY_ERR_THROTTLED', params: { detail: wait } };
  // Counted as a failure before the hash is checked, so that guesses sent at once all count (a check takes 100 ms
  // of scrypt, time enough for a burst to pass a throttle that counted only afterwards); a right one clears it.
  throttle.failed(key);
  if (!(await verifyPassword(given, user.passwordHash))) return { field: 'current', key: 'err.current' };
  throttle.succeeded(key);
  return null;
}

/** What is wrong with a password form, first problem first; none when the change may go ahead. */
async function passwordErrors(deps: PageDeps, throttle: Throttle, req: FastifyRequest, user: Person): Promise<FormError[]> {
  const body = req.body as { current?: string; password?: string; password2?: string };
  if (req.validationError) return [{ field: '', key: 'err.form' }];
  if (user.oidcSubject && !providerFresh(deps, req, user)) return [{ field: '', key: 'err.reauth' }];
  const wrongCurrent = !user.oidcSubject && user.passwordHash ? await checkCurrent(throttle, user, body.current ?? '') : null;
  if (wrongCurrent) return [wrongCurrent];
  if (!acceptable(body.password ?? '')) return [{ field: 'password', key: 'err.password' }];
  if (body.password !== body.password2) return [{ field: 'password2', key: 'err.password2' }];
  return [];
}

function render(deps: PageDeps, req: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
  const user = me(req);
  const linked = !!user.oidcSubject;
  const lang = langOf(req);
  const accounts = accountsOfUser(deps.db, user.id).map(({ account, instance }) => ({
    id: account.id, state: account.state, service: deps.catalog.services.get(instance.service)?.manifest.name[lang] ?? instance.service,
    access: accessOf(deps, instance, account.username, lang),
    linked: account.state === 'active' ? linkedAccessOf(deps, instance, account.username, lang) : [],
    energy: energyOf(deps, instance.slug, account.username),
    // Mail: an Apple profile to download (http/pages/mail-client.ts); Thunderbird finds its settings alone when the
    // mail domain is one of the association's (autoconfig.<domain>).
    mail: instance.service === 'mail' && account.state === 'active'
      ? { profile: `/me/accounts/${account.id}/mail.mobileconfig`, autoconfig: deps.config.domains.includes(instance.config.env.MAIL_DOMAIN ?? '') }
      : null,
  }));
  // Dues-gated services: the notice comes here too, on "my services", before the suspension (governance/dues-gate.ts).
  const member = memberOfUser(deps.db, user.id);
  const coming = member ? pendingSuspension(deps.accounts, member.id) : null;
  const suspension = coming && { on: day(coming.on, lang), services: coming.services.map((id) => deps.catalog.services.get(id)?.manifest.name[lang] ?? id) };
  return reply.page('me', {
    suspension,
    // Moving to another hoster (http/pages/moves.ts): the peers to choose from, or the move under way.
    moves: moveSection(deps.db, deps.catalog, user.id, lang, '/me/moves'), refused: null,
    name: user.name, login: user.login, pending: user.status === 'pending', first: user.mustChangePassword,
    // The provider vouches for a linked person: no current local password is asked, a fresh sign-in there is.
    hasPassword: !!user.passwordHash && !linked, accounts, done: null, failed: [], errors: [],
    reauth: linked ? { fresh: providerFresh(deps, req, user), label: deps.oidc?.label ?? null, url: `/login/oidc?fresh=1&next=${encodeURIComponent('/me#password')}` } : null,
    ...extra,
  }, status);
}

function passwordPage(app: FastifyInstance, deps: PageDeps): void {
  const throttle = createThrottle();
  app.post('/me/password', {
    config: { ...page, rateLimit: { max: deps.config.loginPerMinute, timeWindow: 60_000 } },
    attachValidation: true,
    schema: { hide: true, body: PasswordForm },
  }, async (req, reply) => {
    const user = me(req);
    const errors = await passwordErrors(deps, throttle, req, user);
    if (errors.length) return render(deps, req, reply, { errors }, statusOf(errors[0]!.key));
    const { failed } = await setPasswordEverywhere(deps.accounts, user, (req.body as { password: string }).password, `user:${user.login}`);
    endOtherSessions(deps.db, user.id, req.principal?.sessionId);
    // The session's roles stay what the session allows (sessions.ts), whatever the stored row holds.
    const fresh = findUser(deps.db, user.id);
    req.user = fresh ? { ...fresh, roles: user.roles } : null;
    return render(deps, req, reply, { done: failed.length ? null : 'me.password.done', failed });
  });
}

export const residentPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  app.get('/me', {
    config: page,
    schema: {
      hide: true,
      querystring: Type.Object({
        done: Type.Optional(Type.String({ maxLength: 20 })), lang: Type.Optional(Type.String({ maxLength: 5 })),
        // Why a move did not start (http/pages/moves.ts START_REFUSALS), said next to its form.
        move: Type.Optional(Type.String({ maxLength: 20 })),
      }),
    },
  }, async (req, reply) => render(deps, req, reply, {
    done: Object.hasOwn(DONE, req.query.done ?? '') ? DONE[req.query.done!] : null,
    refused: refusalShown(req.query.move),
  }));

  passwordPage(app as unknown as FastifyInstance, deps);

  // `acts`: it stages an export in the container (http/csrf.ts checkOwnSite refuses it from another page of the site).
  app.get('/me/accounts/:id/export', { config: { ...page, acts: true }, schema: { hide: true, params: IdParams } }, async (req, reply) => {
    const user = me(req);
    const mine = accountsOfUser(deps.db, user.id).find((a) => a.account.id === req.params.id);
    if (!mine) throw fail('CATTERY_ERR_NOT_FOUND', 'no such account of yours');
    const stream = await exportAccount(deps.accounts, mine.instance.slug, mine.account.username, `user:${user.login}`);
    return sendExport(req, reply, stream, `${mine.instance.service}-${mine.account.username}.tar`);
  });

  app.post('/me/accounts/:id/delete', { config: page, schema: { hide: true, params: IdParams, body: DeleteForm } }, async (req, reply) => {
    await deleteOwnAccount(deps.accounts, me(req), req.params.id);
    return reply.redirect('/me?done=deleted', 303);
  });
};
