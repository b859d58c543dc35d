// Page forms against a hostile same-site page. Cookies do not keep to an origin: a page on another port of this host
// (a service instance) or on a sibling name can set cookies that cattery reads ("cookie tossing", RFC 6265 §8.5-8.6),
// so a double-submit token alone is beaten by a cookie and token pair the attacker minted for itself. Two defences:
// - the token is bound to the session it was issued to (an HMAC over the session id, keyed by cattery's own secret:
//   @fastify/csrf's userInfo), so a pair minted in another session, or before sign-in, is refused once signed in;
// - a browser's POST says where it comes from (Origin, and Sec-Fetch-Site on current browsers): a form sent from any
//   other origin, same-site or not, is refused before its token is even read. Clients that send neither (scripts,
//   very old browsers) still need the bound token.
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { fail } from '../errors.js';

/** What a page's CSRF token is bound to: the session, or "no session" on the public forms. */
export const csrfBinding = (req: FastifyRequest): string =>
  (req.principal?.sessionId ? `session:${req.principal.sessionId}` : 'anonymous');

/** The key of the tokens' HMAC, derived from cattery's secret so that it is not the cookie-signing key itself. */
export const csrfHmacKey = (secret: string): Buffer =>
  crypto.createHmac('sha256', secret).update('cattery csrf token binding').digest();

/** preValidation on every page POST, before the token check. */
export function checkFormOrigin(publicOrigin: string) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw fail('CATTERY_ERR_CSRF', `a form sent from another site (${String(site).slice(0, 20)})`);
    }
    const origin = req.headers.origin;
    if (origin === undefined) return;
    // The address the browser used: the public URL, or this request's own (a test or an admin on loopback).
    if (origin === publicOrigin || origin === `${req.protocol}://${req.host}`) return;
    throw fail('CATTERY_ERR_CSRF', 'a form sent from another origin');
  };
}

/** preValidation on every WebSocket a page opens with the session cookie (a page route with `websocket`). A browser
 * sends the cookie on a WebSocket opened by any page of the same site, and a WebSocket is not bound by the same-origin
 * policy (cross-site WebSocket hijacking): the handshake's Origin is the only thing that says whose page opened it.
 * Browsers always send it on a WebSocket, so a handshake without one is refused too. */
export function checkSocketOrigin(publicOrigin: string) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const origin = req.headers.origin;
    if (origin !== undefined && (origin === publicOrigin || origin === `${req.protocol}://${req.host}`)) return;
    throw fail('CATTERY_ERR_CSRF', origin === undefined ? 'a WebSocket without an Origin' : 'a WebSocket opened from another origin');
  };
}

/** preValidation on a page GET that does something (config `acts`: an export staged in the container, say). A GET
 * carries the session cookie from a same-site page too (an <img> on a sibling instance's name; SameSite=Lax lets
 * it through), and has no CSRF token: a browser that says where the request comes from must say it is cattery's own
 * page, or the address bar (`none`). Clients that do not say (scripts, old browsers) go on, as for forms. */
export async function checkOwnSite(req: FastifyRequest, _reply: FastifyReply): Promise<void> {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw fail('CATTERY_ERR_CSRF', `a request from another site (${String(site).slice(0, 20)}) may not do this`);
  }
}
