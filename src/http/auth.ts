// Who is calling. Until OpenID Connect login lands (identity issue), cattery knows one principal: the operator,
// by a bearer token when CATTERY_ADMIN_TOKEN is set, or any caller on the loopback interface when it is not (the
// default bind is 127.0.0.1, so only someone already on the server can reach the API).
import crypto from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Principal } from './roles.js';

function sameToken(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

export function createPrincipalResolver(opts: { adminToken?: string | undefined }) {
  return (request: FastifyRequest): Principal | null => {
    const header = request.headers.authorization;
    if (opts.adminToken) {
      const token = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
      return token && sameToken(token, opts.adminToken) ? { id: 'operator', roles: ['admin'] } : null;
    }
    return LOOPBACK.test(request.ip) ? { id: 'operator', roles: ['admin'] } : null;
  };
}
