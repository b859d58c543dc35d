// The names of cattery's cookies. Served over HTTPS (behind the front door), every one carries the `__Host-` prefix:
// a browser then takes it only when it is Secure, has Path=/ and no Domain, set by this very host (RFC 6265bis
// §4.1.3.2). Without it, any instance on a sibling name (pads.asso.example) could set a `Domain=asso.example` cookie
// that cattery.asso.example reads: plant its own session in a resident's browser, or a language. Over plain HTTP
// (a trial on localhost) the prefix cannot be used, and the plain names are kept.
export interface CookieNames { session: string; csrf: string; oidc: string; lang: string; secure: boolean }

const BASE: CookieNames = { session: 'cattery_session', csrf: 'cattery_csrf', oidc: 'cattery_oidc', lang: 'lang', secure: false };

export function cookieNames(secure: boolean): CookieNames {
  if (!secure) return BASE;
  return { session: `__Host-${BASE.session}`, csrf: `__Host-${BASE.csrf}`, oidc: `__Host-${BASE.oidc}`, lang: `__Host-${BASE.lang}`, secure: true };
}

/** The attributes every cattery cookie has; `__Host-` requires exactly these (Secure, Path=/, no Domain). */
export function cookieOptions(secure: boolean) {
  return { path: '/', httpOnly: true, sameSite: 'lax' as const, secure };
}

declare module 'fastify' {
  // Decorated once in app.ts, so that every reader and writer of a cookie takes its name from one place.
  interface FastifyInstance { cookieNames: CookieNames }
}
