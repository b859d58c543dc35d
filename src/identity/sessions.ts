// Browser sessions in SQLite. The cookie carries a random token; the table keys the session by the token's SHA-256.
// A session ends at its idle timeout, at its maximum age, at logout, or when the person is disabled.
// Roles a person holds from the OpenID provider hold only in a session the provider opened: a local-password session
// of a person linked to OpenID is a resident's, so a local password never keeps a role the provider has since
// taken away (their next OpenID sign-in refreshes the roles, oidc.ts).
import { and, eq, lt } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { sessions, users, type User } from '../db/schema.js';
import { randomToken, sha256 } from './passwords.js';

export interface SessionPolicy {
  idleMinutes: number; maxHours: number;
  /** For a person with the mediator role, whatever else they are: their sessions are opened on shared computers. */
  mediatorIdleMinutes?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function createSession(db: Db, policy: SessionPolicy, userId: number, via: 'password' | 'oidc', idToken?: string): string {
  const token = randomToken();
  const now = Date.now();
  db.transaction((tx) => {
    tx.insert(sessions).values({
      id: sha256(token), userId, via, idToken: idToken ?? null,
      createdAt: iso(now), lastSeenAt: iso(now), expiresAt: iso(now + policy.maxHours * 3_600_000),
    }).run();
    tx.update(users).set({ lastLoginAt: iso(now) }).where(eq(users.id, userId)).run();
  });
  return token;
}

/** The session's person, or undefined when the token is unknown, expired, idle too long, or its person disabled. */
export function readSession(db: Db, policy: SessionPolicy, token: string): { sessionId: string; user: User; idToken: string | null } | undefined {
  const id = sha256(token);
  const row = db.select().from(sessions).innerJoin(users, eq(users.id, sessions.userId)).where(eq(sessions.id, id)).get();
  if (!row) return undefined;
  const now = Date.now();
  const mediator = (row.users.roles as string[]).includes('mediator');
  const idle = mediator ? Math.min(policy.idleMinutes, policy.mediatorIdleMinutes ?? policy.idleMinutes) : policy.idleMinutes;
  const idleLimit = Date.parse(row.sessions.lastSeenAt) + idle * 60_000;
  if (now > Date.parse(row.sessions.expiresAt) || now > idleLimit || row.users.status === 'disabled') {
    db.delete(sessions).where(eq(sessions.id, id)).run();
    return undefined;
  }
  // Touch at most once a minute: a page load should not be a write each time.
  if (now - Date.parse(row.sessions.lastSeenAt) > 60_000) db.update(sessions).set({ lastSeenAt: iso(now) }).where(eq(sessions.id, id)).run();
  const user = row.sessions.via === 'password' && row.users.oidcSubject ? { ...row.users, roles: ['resident'] } : row.users;
  return { sessionId: id, user, idToken: row.sessions.idToken };
}

export function endSession(db: Db, sessionId: string): void {
  db.delete(sessions).where(eq(sessions.id, sessionId)).run();
}

/** Every session of a person but (optionally) the current one: after a password change, other devices sign in again. */
export function endOtherSessions(db: Db, userId: number, keep?: string): void {
  for (const s of db.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, userId)).all()) {
    if (s.id !== keep) db.delete(sessions).where(eq(sessions.id, s.id)).run();
  }
}

export function purgeExpiredSessions(db: Db): number {
  return db.delete(sessions).where(lt(sessions.expiresAt, iso(Date.now()))).run().changes;
}

export const sessionsOf = (db: Db, userId: number) => db.select().from(sessions).where(and(eq(sessions.userId, userId))).all();

export const sessionById = (db: Db, id: string) => db.select().from(sessions).where(eq(sessions.id, id)).get();
