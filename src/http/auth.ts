// Who is calling. Scripts present a bearer token (an API token, or the operator's bootstrap CATTERY_ADMIN_TOKEN);
// browsers present the session cookie, accepted on pages only: the JSON API never authenticates by cookie, so a
// forged cross-site request to it carries no authority and needs no CSRF token.
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../db/connection.js';
import type { User } from '../db/schema.js';
import { fail } from '../errors.js';
import { readSession, type SessionPolicy } from '../identity/sessions.js';
import { verifyApiToken } from '../identity/tokens.js';
import type { Principal, Role } from '../identity/roles.js';

export const SESSION_COOKIE = 'cattery_session';

declare module 'fastify' {
  interface FastifyContextConfig { roles?: readonly Role[]; page?: boolean }
  interface FastifyRequest { principal: Principal | null; user: User | null }
}

function sameToken(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}

export function createPrincipalResolver(opts: { db: Db; adminToken?: string | undefined; session: SessionPolicy }) {
  return (request: FastifyRequest): void => {
    const header = request.headers.authorization;
    if (header?.startsWith('Bearer ')) {
      const token = header.slice(7).trim();
      if (opts.adminToken && sameToken(token, opts.adminToken)) request.principal = { id: 'operator', roles: ['admin'] };
      else request.principal = verifyApiToken(opts.db, token) ?? null;
      return;
    }
    const cookie = request.cookies?.[SESSION_COOKIE];
    if (!cookie || request.url.startsWith('/api/')) return;
    const s = readSession(opts.db, opts.session, cookie);
    if (!s) return;
    request.user = s.user;
    request.principal = { id: `user:${s.user.login}`, roles: s.user.roles as Role[], userId: s.user.id, sessionId: s.sessionId };
  };
}

/** onRequest, before the body is even read: 401 without a principal where one is needed, 403 for a role the route
 * does not list. Pages turn these into a redirect to the sign-in page or an HTML page (error-handler.ts). */
export async function checkRoles(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  // The not-found handler has no route: it answers 404 to anyone.
  if (!request.routeOptions.url) return;
  const allowed = request.routeOptions.config.roles ?? [];
  if (allowed.includes('public')) return;
  const p = request.principal;
  if (!p) throw fail('CATTERY_ERR_UNAUTHENTICATED');
  if (!p.roles.some((r) => allowed.includes(r))) throw fail('CATTERY_ERR_FORBIDDEN', `${request.method} ${request.routeOptions.url}`);
}
