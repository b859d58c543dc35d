// People: creation, lookup, roles, local passwords. Plain functions over the database handle.
import { and, desc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { users, type User } from '../db/schema.js';
import { fail } from '../errors.js';
import { USERNAME_PATTERN, checkPassword } from '../accounts/accounts.js';
import { hashPassword } from './passwords.js';
import { isPersonRole, type PersonRole } from './roles.js';

/** Letters of any script, combining marks, spaces, apostrophes, dots and hyphens: every French name, and no markup. */
export const NAME_PATTERN = "^[\\p{L}\\p{M}][\\p{L}\\p{M}' .\\u2019-]{0,79}$";
export const EMAIL_PATTERN = '^[^\\s@<>"]{1,64}@[A-Za-z0-9.-]{1,190}\\.[A-Za-z]{2,24}$';
const NAME_RE = new RegExp(NAME_PATTERN, 'u');
const EMAIL_RE = new RegExp(EMAIL_PATTERN);
const LOGIN_RE = new RegExp(USERNAME_PATTERN);

export const isName = (s: string) => NAME_RE.test(s);
export const isEmail = (s: string) => EMAIL_RE.test(s);

export function checkName(name: string): void {
  if (!isName(name)) throw fail('CATTERY_ERR_VALIDATION', 'name: letters, spaces, apostrophes and hyphens only, up to 80');
}
export function checkEmail(email: string): void {
  if (!isEmail(email)) throw fail('CATTERY_ERR_VALIDATION', 'email: not an address');
}
/** The same rule as the services' (accounts.ts checkPassword): cattery's password is theirs too, so a password
 * every service would refuse (a control character) is refused here first, not left half-synchronised. */
export const checkNewPassword = (p: string): void => checkPassword(p);
function checkRoles(roles: string[]): asserts roles is PersonRole[] {
  const bad = roles.find((r) => !isPersonRole(r));
  if (bad !== undefined) throw fail('CATTERY_ERR_VALIDATION', `roles: unknown role "${bad}"`);
}

export const findUser = (db: Db, id: number): User | undefined => db.select().from(users).where(eq(users.id, id)).get();
export const findByLogin = (db: Db, login: string): User | undefined => db.select().from(users).where(eq(users.login, login)).get();
export const findByOidc = (db: Db, issuer: string, subject: string): User | undefined =>
  db.select().from(users).where(and(eq(users.oidcIssuer, issuer), eq(users.oidcSubject, subject))).get();

/** Logins a sign-up never gets, because they are also mail addresses at the association's domain with a meaning
 * of their own: RFC 2142's role mailboxes (abuse@ and postmaster@ receive reports and bounces), the addresses a
 * certificate authority may write to for domain validation (CA/Browser Forum Baseline Requirements 3.2.2.4.4:
 * admin, administrator, webmaster, hostmaster, postmaster), and system accounts. An administrator may still give
 * one to a person on purpose through the API. */
export const RESERVED_LOGINS: ReadonlySet<string> = new Set([
  'abuse', 'postmaster', 'hostmaster', 'webmaster', 'admin', 'administrator', 'administrateur', 'security', 'noc', 'info', 'support',
  'marketing', 'sales', 'usenet', 'news', 'www', 'uucp', 'ftp', 'root', 'mailer-daemon', 'daemon', 'nobody', 'noreply', 'no-reply',
  'ssl-admin', 'sysadmin', 'system', 'cattery', 'mail', 'dmarc', 'dkim', 'contact', 'bureau', 'president', 'tresorier', 'secretaire',
]);
/** Reserved as it stands, or once its digits, dots, dashes and underscores are set aside ("post.master", "admin2"). */
export const isReservedLogin = (login: string): boolean =>
  RESERVED_LOGINS.has(login) || RESERVED_LOGINS.has(login.replace(/[0-9._-]+/g, '')) || /^(admin|postmaster|hostmaster|webmaster|abuse)/.test(login);

/** A login from a person's name: "Marie-Hélène Dupré" → "marie-helene.dupre", then .2, .3… until free. */
export function loginFromName(db: Db, name: string, taken: (login: string) => boolean = () => false): string {
  const ascii = name.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase()
    .replace(/[’']/g, '').replace(/[^a-z0-9 .-]/g, '').trim().split(/\s+/).join('.').replace(/\.{2,}/g, '.');
  let base = ascii.replace(/^[^a-z]+/, '').replace(/[^a-z0-9]+$/, '').slice(0, 28) || 'habitant';
  if (base.length < 2) base = `${base}x`;
  // "Postmaster" the person becomes "habitant.postmaster": still recognisable, never the role's address.
  if (isReservedLogin(base)) base = `habitant.${base}`.slice(0, 28);
  for (let i = 1; ; i++) {
    const candidate = i === 1 ? base : `${base}${i}`;
    if (LOGIN_RE.test(candidate) && !isReservedLogin(candidate) && !findByLogin(db, candidate) && !taken(candidate)) return candidate;
  }
}

export interface NewUser {
  login: string; name: string; email?: string | null; roles: string[]; password?: string | null;
  status?: User['status']; mustChangePassword?: boolean; syncServicePassword?: boolean;
  oidcIssuer?: string; oidcSubject?: string; lang?: string;
}

export async function createUser(db: Db, input: NewUser): Promise<User> {
  if (!LOGIN_RE.test(input.login)) throw fail('CATTERY_ERR_VALIDATION', 'login: 2 to 32 lowercase letters, digits, dots, dashes or underscores');
  checkName(input.name);
  if (input.email) checkEmail(input.email);
  checkRoles(input.roles);
  if (input.password) checkNewPassword(input.password);
  const passwordHash = input.password ? await hashPassword(input.password) : null;
  if (findByLogin(db, input.login)) throw fail('CATTERY_ERR_CONFLICT', `login "${input.login}" is taken`);
  return db.insert(users).values({
    login: input.login, name: input.name, email: input.email || null, roles: input.roles, passwordHash,
    status: input.status ?? 'active', mustChangePassword: input.mustChangePassword ?? false,
    syncServicePassword: input.syncServicePassword ?? false,
    oidcIssuer: input.oidcIssuer ?? null, oidcSubject: input.oidcSubject ?? null, lang: input.lang ?? 'fr',
  }).returning().get();
}

export async function setUserPassword(db: Db, userId: number, password: string): Promise<void> {
  checkNewPassword(password);
  const passwordHash = await hashPassword(password);
  db.update(users).set({ passwordHash, mustChangePassword: false }).where(eq(users.id, userId)).run();
}

/** Whether the next sign-in should give the service accounts the password typed then (until every service has it). */
export function markServicePasswordSynced(db: Db, userId: number, synced: boolean): void {
  db.update(users).set({ syncServicePassword: !synced }).where(eq(users.id, userId)).run();
}

export function listUsers(db: Db): User[] {
  return db.select().from(users).orderBy(desc(users.id)).all();
}

/** Whether a person holds the admin role: an exact element of the roles array (json_each), never a substring, so
 * a role named "sysadmin-helper" or "admins" does not count. */
export function hasAdmin(db: Db): boolean {
  return !!db.select({ id: users.id }).from(users)
    .where(sql`exists (select 1 from json_each(${users.roles}) where json_each.value = 'admin')`).limit(1).get();
}

export function setUserRoles(db: Db, userId: number, roles: string[]): void {
  checkRoles(roles);
  db.update(users).set({ roles }).where(eq(users.id, userId)).run();
}

// A person's status is set by person-status.ts (disable, enable: sessions, tokens and service accounts follow) and
// by the sign-up's approval or rejection (signup.ts), never by a bare update.

export function publicUser(u: User) {
  return {
    id: u.id, login: u.login, name: u.name, email: u.email, roles: u.roles, status: u.status,
    via: u.oidcSubject ? 'oidc' : 'password', mustChangePassword: u.mustChangePassword, createdAt: u.createdAt, lastLoginAt: u.lastLoginAt,
  };
}
