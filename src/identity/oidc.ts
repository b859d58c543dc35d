// OpenID Connect sign-in with openid-client v6: discovery, authorization code with PKCE (S256), state and nonce.
// The flow's secrets stay in SQLite (login_flows), keyed by the state; the browser carries the state in a cookie as
// well, so a callback only completes in the browser that started it, and only once.
import * as client from 'openid-client';
import { eq, lt } from 'drizzle-orm';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { loginFlows, users, type User } from '../db/schema.js';
import { fail, isCatteryError } from '../errors.js';
import type { Logger } from '../log.js';
import { createUser, findByOidc, isEmail, isName, loginFromName } from './users.js';
import { isPersonRole, type PersonRole } from './roles.js';

export type OidcSettings = NonNullable<Config['oidc']>;
const FLOW_TTL_MS = 10 * 60_000;
const LOOPBACK_HOST = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

export interface Oidc {
  label: string;
  /** Where to send the browser, and the state to keep in its cookie. `fresh` asks the provider to authenticate the
   * person again whatever session it holds (max_age=0, prompt=login; reauth.ts checks the auth_time it answers). */
  start(db: Db, returnTo: string, opts?: { fresh?: boolean }): Promise<{ url: string; state: string }>;
  /** Complete the sign-in from the callback URL; returns the person (created on first sign-in) and the ID token. */
  finish(db: Db, callbackUrl: URL, cookieState: string | undefined): Promise<{ user: User; idToken: string | undefined; returnTo: string }>;
  /** RP-initiated logout URL, when the provider offers one. */
  logoutUrl(idToken: string | null, postLogoutRedirect: string): Promise<string | undefined>;
}

/** Provider groups → cattery roles, through the explicit map only: a group is a name the provider's administrators
 * chose, and one that happens to be spelled like a role ("admin") must not grant it. Names match exactly (no case
 * folding, no normalisation: "Admin" or a look-alike is another group). A map entry naming no person role (a typo,
 * "peer", "public") grants nothing. Nobody mapped: a resident. */
export function rolesFromClaims(settings: Pick<OidcSettings, 'rolesClaim' | 'roleMap'>, claims: Record<string, unknown>): PersonRole[] {
  const raw = Object.hasOwn(claims, settings.rolesClaim) ? claims[settings.rolesClaim] : undefined;
  const listed = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(/[\s,]+/) : [];
  // An empty name is no group (a map entry "=admin" would otherwise match the gap before a leading space).
  const groups = listed.filter((g): g is string => typeof g === 'string' && g !== '');
  const roles = new Set<PersonRole>();
  for (const g of groups) {
    // Own entries only: a group named "constructor" or "__proto__" must not read the object's prototype.
    const mapped = Object.hasOwn(settings.roleMap, g) ? settings.roleMap[g] : undefined;
    if (mapped !== undefined && isPersonRole(mapped)) roles.add(mapped);
  }
  if (roles.size === 0) roles.add('resident');
  return [...roles].sort();
}

export function createOidc(settings: OidcSettings, log: Logger): Oidc {
  const unusable = Object.entries(settings.roleMap).filter(([, r]) => !isPersonRole(r));
  if (unusable.length) log.warn({ entries: unusable.map(([g, r]) => `${g}=${r}`) }, 'CATTERY_OIDC_ROLE_MAP entries that name no person role grant nothing');
  let config: client.Configuration | undefined;
  async function discovered(): Promise<client.Configuration> {
    if (config) return config;
    const issuer = new URL(settings.issuer);
    // Plain HTTP only for a provider on this machine (tests, a provider behind the same reverse proxy).
    const insecure = issuer.protocol === 'http:' && LOOPBACK_HOST.test(issuer.hostname);
    try {
      config = await client.discovery(issuer, settings.clientId, settings.clientSecret, undefined,
        insecure ? { execute: [client.allowInsecureRequests] } : undefined);
    } catch (err) {
      throw fail('CATTERY_ERR_OIDC_UNAVAILABLE', `${settings.issuer} (${(err as Error).message})`, err);
    }
    return config;
  }

  return {
    label: settings.label,
    async start(db, returnTo, opts = {}) {
      const c = await discovered();
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      db.delete(loginFlows).where(lt(loginFlows.createdAt, new Date(Date.now() - FLOW_TTL_MS).toISOString())).run();
      db.insert(loginFlows).values({ state, verifier, nonce, returnTo, createdAt: new Date().toISOString() }).run();
      const url = client.buildAuthorizationUrl(c, {
        redirect_uri: settings.redirectUrl, scope: settings.scopes, state, nonce,
        code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
        ...(opts.fresh ? { max_age: '0', prompt: 'login' } : {}),
      });
      return { url: url.href, state };
    },

    async finish(db, callbackUrl, cookieState) {
      const state = callbackUrl.searchParams.get('state') ?? '';
      if (!cookieState || cookieState !== state) throw fail('CATTERY_ERR_OIDC', 'this sign-in was not started in this browser (state mismatch)');
      // Consumed whatever happens next: a replayed callback finds nothing.
      const flow = db.delete(loginFlows).where(eq(loginFlows.state, state)).returning().get();
      if (!flow || Date.now() - Date.parse(flow.createdAt) > FLOW_TTL_MS) throw fail('CATTERY_ERR_OIDC', 'unknown or expired sign-in; start again');
      const error = callbackUrl.searchParams.get('error');
      if (error) throw fail('CATTERY_ERR_OIDC', `the provider answered "${error.slice(0, 100)}"`);
      const c = await discovered();
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
      try {
        tokens = await client.authorizationCodeGrant(c, new URL(callbackUrl.search, settings.redirectUrl), {
          pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce, idTokenExpected: true,
        });
      } catch (err) {
        if (isCatteryError(err)) throw err;
        log.warn({ err }, 'OpenID code exchange refused');
        throw fail('CATTERY_ERR_OIDC', (err as Error).message.slice(0, 200), err);
      }
      const idClaims = tokens.claims() as Record<string, unknown> | undefined;
      if (!idClaims?.sub) throw fail('CATTERY_ERR_OIDC', 'no ID token');
      // Providers differ in where they put groups (Keycloak in the ID token, others only in userinfo): read both.
      let claims: Record<string, unknown> = { ...idClaims };
      if (c.serverMetadata().userinfo_endpoint) {
        try {
          claims = { ...(await client.fetchUserInfo(c, tokens.access_token, String(idClaims.sub))), ...idClaims };
        } catch (err) { log.warn({ err }, 'userinfo unavailable; using the ID token claims only'); }
      }
      const user = await upsertOidcUser(db, settings, String(c.serverMetadata().issuer), claims);
      return { user, idToken: tokens.id_token, returnTo: flow.returnTo };
    },

    async logoutUrl(idToken, postLogoutRedirect) {
      const c = await discovered();
      if (!c.serverMetadata().end_session_endpoint) return undefined;
      return client.buildEndSessionUrl(c, {
        post_logout_redirect_uri: postLogoutRedirect, client_id: settings.clientId, ...(idToken ? { id_token_hint: idToken } : {}),
      }).href;
    },
  };
}

/** The provider is the authority on who someone is and which groups they are in: roles are refreshed at each sign-in. */
async function upsertOidcUser(db: Db, settings: OidcSettings, issuer: string, claims: Record<string, unknown>): Promise<User> {
  const subject = String(claims.sub);
  const roles = rolesFromClaims(settings, claims);
  const known = findByOidc(db, issuer, subject);
  if (known) {
    if (known.status === 'disabled') throw fail('CATTERY_ERR_FORBIDDEN', 'this person is disabled');
    return db.update(users).set({ roles }).where(eq(users.id, known.id)).returning().get();
  }
  const rawName = String(claims.name ?? claims.preferred_username ?? claims.email ?? 'Habitant');
  // What the provider calls a name may hold anything; keep the characters a name may have here (NAME_PATTERN).
  const cleaned = rawName.replace(/[^\p{L}\p{M}' .\u2019-]/gu, ' ').replace(/\s+/g, ' ').trim().slice(0, 80);
  const name = isName(cleaned) ? cleaned : 'Habitant';
  const preferred = typeof claims.preferred_username === 'string' ? claims.preferred_username : name;
  const email = typeof claims.email === 'string' && claims.email_verified !== false ? claims.email : null;
  return createUser(db, {
    login: loginFromName(db, preferred), name, email: email && isEmail(email) ? email : null,
    roles, oidcIssuer: issuer, oidcSubject: subject,
  });
}
