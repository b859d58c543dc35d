// API tokens for scripts: `ct_<id>_<secret>`. Only the secret's SHA-256 is stored (the secret is 256 random bits, so
// a fast hash is enough: there is nothing to brute-force). Roles are fixed at creation: an administrator may give
// any person's role (the city's dashboard token, say), anyone else only roles they hold. A revoked or expired token
// stops at once, and so does a token made by a person since disabled, or by a token of theirs.
import crypto from 'node:crypto';
import { desc, eq } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { apiTokens, users, type ApiToken } from '../db/schema.js';
import { fail } from '../errors.js';
import { randomToken, sha256 } from './passwords.js';
import { isPersonRole, type Principal, type Role } from './roles.js';

const TOKEN_RE = /^ct_(\d{1,10})_([A-Za-z0-9_-]{43})$/;

export function createApiToken(db: Db, creator: Principal, input: { name: string; roles: string[]; expiresAt?: string | undefined }): { token: string; row: ApiToken } {
  const bad = input.roles.find((r) => !isPersonRole(r) || !(creator.roles.includes('admin') || creator.roles.includes(r)));
  if (bad !== undefined) throw fail('CATTERY_ERR_FORBIDDEN', `a token cannot carry the role "${bad}"`);
  if (input.expiresAt !== undefined && !(Date.parse(input.expiresAt) > Date.now())) throw fail('CATTERY_ERR_VALIDATION', 'expiresAt: must be a future date');
  const secret = randomToken();
  const row = db.insert(apiTokens).values({
    name: input.name, roles: input.roles, hash: sha256(secret), createdBy: creator.id, expiresAt: input.expiresAt ?? null,
  }).returning().get();
  return { token: `ct_${row.id}_${secret}`, row };
}

/** Does the chain of creators (`token:<id>` made by … made by `user:<login>`) end at a person who is disabled? The
 * chain is short (a token makes another now and then); the bound only guards against a loop in hand-edited rows. */
function madeByDisabledPerson(db: Db, createdBy: string): boolean {
  let by = createdBy;
  for (let depth = 0; depth < 16; depth++) {
    const user = /^user:(.+)$/.exec(by);
    if (user) return db.select({ status: users.status }).from(users).where(eq(users.login, user[1]!)).get()?.status !== 'active';
    const parent = /^token:(\d+)$/.exec(by);
    if (!parent) return false;
    const row = db.select({ createdBy: apiTokens.createdBy }).from(apiTokens).where(eq(apiTokens.id, Number(parent[1]))).get();
    if (!row) return false;
    by = row.createdBy;
  }
  return true;
}

export function verifyApiToken(db: Db, token: string): Principal | undefined {
  const m = TOKEN_RE.exec(token);
  if (!m) return undefined;
  const row = db.select().from(apiTokens).where(eq(apiTokens.id, Number(m[1]))).get();
  if (!row || row.revokedAt || (row.expiresAt && Date.parse(row.expiresAt) <= Date.now())) return undefined;
  if (!crypto.timingSafeEqual(Buffer.from(sha256(m[2]!)), Buffer.from(row.hash))) return undefined;
  if (madeByDisabledPerson(db, row.createdBy)) return undefined;
  const now = new Date().toISOString();
  // Last use to the minute is enough to spot a forgotten token; fewer writes.
  if (!row.lastUsedAt || now.slice(0, 16) !== row.lastUsedAt.slice(0, 16)) db.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, row.id)).run();
  return { id: `token:${row.id}`, roles: row.roles as Role[] };
}

export function revokeApiToken(db: Db, id: number): boolean {
  const row = db.select().from(apiTokens).where(eq(apiTokens.id, id)).get();
  if (!row) throw fail('CATTERY_ERR_NOT_FOUND', `no token ${id}`);
  if (row.revokedAt) return false;
  db.update(apiTokens).set({ revokedAt: new Date().toISOString() }).where(eq(apiTokens.id, id)).run();
  return true;
}

export const listApiTokens = (db: Db) => db.select().from(apiTokens).orderBy(desc(apiTokens.id)).all();

export function publicToken(t: ApiToken) {
  return { id: t.id, name: t.name, roles: t.roles, createdBy: t.createdBy, createdAt: t.createdAt, expiresAt: t.expiresAt, revokedAt: t.revokedAt, lastUsedAt: t.lastUsedAt };
}
