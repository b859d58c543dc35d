// Who may call what. Every route declares `config.roles`; a route without the declaration makes the app refuse to
// start (see app.ts), so no route can be added without saying who may use it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { fail } from '../errors.js';

export const ROLES = ['public', 'resident', 'mediator', 'admin', 'city', 'member', 'peer'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal { id: string; roles: Role[] }

declare module 'fastify' {
  interface FastifyContextConfig { roles?: readonly Role[] }
  interface FastifyRequest { principal: Principal | null }
}

/** preHandler on every route: 401 without a principal where one is needed, 403 for a role the route does not list. */
export async function checkRoles(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  // The not-found handler has no route: it answers 404 to anyone.
  if (!request.routeOptions.url) return;
  const allowed = request.routeOptions.config.roles ?? [];
  if (allowed.includes('public')) return;
  const p = request.principal;
  if (!p) throw fail('CATTERY_ERR_UNAUTHENTICATED');
  if (!p.roles.some((r) => allowed.includes(r))) throw fail('CATTERY_ERR_FORBIDDEN', `${request.method} ${request.routeOptions.url}`);
}
