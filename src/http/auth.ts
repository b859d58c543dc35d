// Who is calling. Scripts present a bearer token (an API token, or the operator's bootstrap CATTERY_ADMIN_TOKEN);
// browsers present the session cookie. Which of the two counts is decided by the route the router matched, never by
// the URL text (the router decodes `/%61pi/users` to `/api/users`; a text test on the raw URL does not):
// - a page route (config.page) takes the session cookie only; a bearer header on it is ignored, so a page never acts
//   on a script's authority and its forms always go through the CSRF check with a person's session;
// - every other route (the JSON API, /metrics, /healthz…) takes the bearer token only; the cookie is ignored, so a
//   forged cross-site request to the API carries no authority and needs no CSRF token;
// - a request that carries both is judged by the one credential its route takes, the other is ignored;
// - a route of a node's agent (config.signature: agent/) takes neither: its body is a JWS signed by the key enrolled
//   for a server, checked by the route's own preValidation once the body is read (checkSignedRoles then applies the
//   route's roles); a cookie or a bearer token on it is ignored;
// - a request no route matches (the not-found handler) gets no principal at all.
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../db/connection.js';
import type { User } from '../db/schema.js';
import { fail } from '../errors.js';
import { readSession, type SessionPolicy } from '../identity/sessions.js';
import { verifyApiToken } from '../identity/tokens.js';
import type { Principal, Role } from '../identity/roles.js';
import { membershipRoles } from '../governance/members.js';


declare module 'fastify' {
  interface FastifyContextConfig {
    roles?: readonly Role[]; page?: boolean;
    /** A page GET that does something: checked for the site it comes from (csrf.ts checkOwnSite). */
    acts?: boolean;
    /** The answer is the same for everyone and holds no person's data (published figures): caches may keep it. Only
     * a public route may say so (app.ts refuses the rest). */
    cacheable?: boolean;
    /** Authenticated by the signature of its body only (a node's agent): see the header of this file. */
    signature?: boolean;
  }
  interface FastifyRequest { principal: Principal | null; user: User | null }
}

function sameToken(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}

/** The credential the matched route takes: `none` when no route matched. */
export function credentialOf(request: FastifyRequest): 'cookie' | 'bearer' | 'signature' | 'none' {
  if (!request.routeOptions.url) return 'none';
  if (request.routeOptions.config?.signature === true) return 'signature';
  return request.routeOptions.config?.page === true ? 'cookie' : 'bearer';
}

export function createPrincipalResolver(opts: { db: Db; adminToken?: string | undefined; session: SessionPolicy }) {
  return (request: FastifyRequest): void => {
    const takes = credentialOf(request);
    if (takes === 'bearer') {
      const header = request.headers.authorization;
      if (!header?.startsWith('Bearer ')) return;
      const token = header.slice(7).trim();
      if (opts.adminToken && sameToken(token, opts.adminToken)) request.principal = { id: 'operator', roles: ['admin'] };
      else request.principal = verifyApiToken(opts.db, token) ?? null;
      return;
    }
    if (takes !== 'cookie') return;
    const cookie = request.cookies?.[request.server.cookieNames.session];
    if (!cookie) return;
    const s = readSession(opts.db, opts.session, cookie);
    if (!s) return;
    request.user = s.user;
    const roles = [...new Set([...(s.user.roles as Role[]), ...membershipRoles(opts.db, s.user.id)])];
    request.principal = { id: `user:${s.user.login}`, roles, userId: s.user.id, sessionId: s.sessionId };
  };
}

/** onRequest, before the body is even read: 401 without a principal where one is needed, 403 for a role the route
 * does not list. Pages turn these into a redirect to the sign-in page or an HTML page (error-handler.ts). */
export async function checkRoles(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  // The not-found handler has no route: it answers 404 to anyone.
  if (!request.routeOptions.url) return;
  // A signed route's caller is known only once its body is read: checkSignedRoles, after the route's own check.
  if (credentialOf(request) === 'signature') return;
  rolesAllow(request);
}

/** The role check of a signed route (config.signature), run after its preValidation set the principal from the
 * body's signature; without one (no JWS, or the route's check did not run) the caller is unauthenticated. */
export async function checkSignedRoles(request: FastifyRequest): Promise<void> {
  if (credentialOf(request) !== 'signature') throw fail('CATTERY_ERR_CONFIG', 'checkSignedRoles on a route that is not signed');
  rolesAllow(request);
}

function rolesAllow(request: FastifyRequest): void {
  const allowed = request.routeOptions.config.roles ?? [];
  if (allowed.includes('public')) return;
  const p = request.principal;
  if (!p) throw fail('CATTERY_ERR_UNAUTHENTICATED');
  if (!p.roles.some((r) => allowed.includes(r))) throw fail('CATTERY_ERR_FORBIDDEN', `${request.method} ${request.routeOptions.url}`);
  // A first password (printed on a mediator's sheet, or given on the command line) was seen by someone else: it
  // opens only the page where its owner chooses their own, and the way out.
  if (p.sessionId && request.user?.mustChangePassword && !FIRST_PASSWORD_ROUTES.has(`${request.method} ${request.routeOptions.url}`)) {
    throw fail('CATTERY_ERR_PASSWORD_CHANGE_REQUIRED');
  }
}

const FIRST_PASSWORD_ROUTES: ReadonlySet<string> = new Set(['GET /me', 'HEAD /me', 'POST /me/password', 'POST /logout']);

/** The media types a route's body may have: forms on pages only, JSON on the API only (or the one type an API route
 * declares). Anything else with a body is
 * refused before it is parsed (415), so the form parser, registered for the pages, never feeds an API handler. */
export function checkBodyType(request: FastifyRequest): void {
  if (!request.routeOptions.url) return;
  const length = request.headers['content-length'];
  const hasBody = request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  if (!hasBody) return;
  const media = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  // An API route may declare another raw type in its config (`bodyType`: an import's application/x-tar); a cookie
  // (a page's credential, which a same-site form could send) never gets more than a form.
  const declared = (request.routeOptions.config as { bodyType?: string } | undefined)?.bodyType;
  const wanted = credentialOf(request) === 'cookie' ? 'application/x-www-form-urlencoded' : declared ?? 'application/json';
  if (media !== wanted) throw fail('CATTERY_ERR_UNSUPPORTED_MEDIA', `this route takes ${wanted}`);
}
