// A fresh sign-in at the provider, for the one change that outlives the provider's say: a local password. A person
// linked to OpenID sets one only from a session the provider opened minutes ago with a real authentication (the ID
// token's own auth_time, signed by the provider and verified by openid-client at the callback), not from any
// session that happens to be open: a session left open at a public internet point must not become a password that
// survives the provider disabling the person.
import type { Session, User } from '../db/schema.js';

/** Long enough to come back from the provider and type a password twice; short enough that an abandoned session
 * cannot use it. */
export const REAUTH_MINUTES = 5;

/** The payload of a JWT the callback already verified; undefined for anything malformed. */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch { return undefined; }
}

/** Did this session come from the provider, for this person, with an authentication at most REAUTH_MINUTES old? */
export function freshProviderSignIn(session: Pick<Session, 'via' | 'idToken' | 'userId'> | undefined,
  user: Pick<User, 'id' | 'oidcIssuer' | 'oidcSubject'>, now = Date.now()): boolean {
  if (!session || session.via !== 'oidc' || !session.idToken || session.userId !== user.id || !user.oidcSubject) return false;
  const c = jwtClaims(session.idToken);
  if (!c || c.sub !== user.oidcSubject || (user.oidcIssuer && c.iss !== user.oidcIssuer)) return false;
  const authTime = c.auth_time;
  if (typeof authTime !== 'number' || !Number.isFinite(authTime)) return false;
  const age = now - authTime * 1000;
  // A little clock skew forward is tolerated (the provider's clock), none backward beyond the window.
  return age >= -60_000 && age <= REAUTH_MINUTES * 60_000;
}
