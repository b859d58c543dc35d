// The freshness rule for setting a local password (reauth.ts), over generated sessions and ID tokens: fresh only
// for an OpenID session of this very person whose provider authentication is at most REAUTH_MINUTES old.
import t from 'tap';
import fc from 'fast-check';
import { REAUTH_MINUTES, freshProviderSignIn } from '../../src/identity/reauth.js';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const jwt = (claims: Record<string, unknown>) => `${b64({ alg: 'RS256' })}.${b64(claims)}.c2lnbmF0dXJl`;
const NOW = Date.parse('2026-11-05T10:00:00Z');
const user = { id: 7, oidcIssuer: 'https://id.mairie.example', oidcSubject: 'sub-alice' };

t.test('fresh exactly when via oidc, same person, same issuer, and auth_time within the window', async (t) => {
  fc.assert(fc.property(
    fc.constantFrom('oidc', 'password'), fc.constantFrom(7, 8), fc.constantFrom('sub-alice', 'sub-bruno', 'Sub-alice'),
    fc.constantFrom('https://id.mairie.example', 'https://evil.example'),
    fc.integer({ min: -3600, max: 3600 }), fc.constantFrom('number', 'string', 'absent'),
    (via, userId, sub, iss, ageSeconds, kind) => {
      const authTime = Math.floor(NOW / 1000) - ageSeconds;
      const claims: Record<string, unknown> = { sub, iss, ...(kind === 'absent' ? {} : { auth_time: kind === 'number' ? authTime : String(authTime) }) };
      const got = freshProviderSignIn({ via, userId, idToken: jwt(claims) }, user, NOW);
      const want = via === 'oidc' && userId === 7 && sub === 'sub-alice' && iss === user.oidcIssuer && kind === 'number'
        && ageSeconds >= -60 && ageSeconds <= REAUTH_MINUTES * 60;
      return got === want;
    }), { numRuns: 3000 });
});

t.test('no session, no token, a malformed token, or a person not linked to OpenID: never fresh', async (t) => {
  const ok = jwt({ sub: 'sub-alice', iss: user.oidcIssuer, auth_time: Math.floor(NOW / 1000) });
  t.ok(freshProviderSignIn({ via: 'oidc', userId: 7, idToken: ok }, user, NOW), 'the control case');
  t.notOk(freshProviderSignIn(undefined, user, NOW));
  t.notOk(freshProviderSignIn({ via: 'oidc', userId: 7, idToken: null }, user, NOW));
  t.notOk(freshProviderSignIn({ via: 'oidc', userId: 7, idToken: ok }, { ...user, oidcSubject: null }, NOW));
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (junk) => !freshProviderSignIn({ via: 'oidc', userId: 7, idToken: junk }, user, NOW)));
  t.notOk(freshProviderSignIn({ via: 'oidc', userId: 7, idToken: `x.${b64([1, 2])}.y` }, user, NOW), 'a payload that is no object');
});
