// Sign-up: a resident asks for accounts in the services the catalog marks open, alone or with a mediator. The
// request and the consent (who, when, which terms version, which mediator) are written first, in one transaction;
// the accounts are then created through the account operations, outside it. A failure leaves the request `failed`
// with its error, and approving it again finishes the work (account creation is idempotent).
import { and, desc, eq } from 'drizzle-orm';
import { assignAccount, createAccount, usernameTaken, type AccountDeps } from '../accounts/accounts.js';
import { openServices } from '../catalog/offer.js';
import { serviceSettingsMap } from '../governance/settings.js';
import { sessions, signups, users, type Signup, type User } from '../db/schema.js';
import { fail } from '../errors.js';
import { instanceForNewResidents } from '../orchestrator/instances.js';
import { firstPassword, hashPassword, randomToken } from './passwords.js';
import { removeAccountsOf } from './person-accounts.js';
import { checkEmail, checkName, checkNewPassword, loginFromName } from './users.js';
import type { Principal } from './roles.js';

export interface SignupDeps extends AccountDeps {
  approval: 'admin' | 'auto';
  termsVersion: string;
  defaultQuotaMb: number;
}

export interface SignupInput {
  name: string;
  email?: string | undefined;
  services: string[];
  /** The terms version the person saw and accepted: it must be the current one. */
  termsVersion: string;
  /** The resident's own password (self sign-up). A mediator's sign-up gets a printed first password instead. */
  password?: string | undefined;
  lang?: string | undefined;
}

function checkInput(deps: SignupDeps, input: SignupInput): void {
  checkName(input.name);
  if (input.email) checkEmail(input.email);
  if (input.termsVersion !== deps.termsVersion) throw fail('CATTERY_ERR_VALIDATION', `terms: version ${deps.termsVersion} must be accepted`);
  const open = new Set(openServices(deps.catalog, serviceSettingsMap(deps.db)).map((m) => m.id));
  if (input.services.length === 0) throw fail('CATTERY_ERR_VALIDATION', 'services: choose at least one');
  const closed = input.services.find((s) => !open.has(s));
  if (closed !== undefined) throw fail('CATTERY_ERR_VALIDATION', `services: "${closed}" is not open for sign-up`);
  if (input.password !== undefined) checkNewPassword(input.password);
}

/** A login free among people and among accounts an admin made by hand in any instance. */
function freeLogin(deps: SignupDeps, name: string): string {
  return loginFromName(deps.db, name, (l) => usernameTaken(deps.db, l));
}

export interface SignupResult { signup: Signup; user: User; firstPassword?: string }

/** A resident signs up alone: their password is theirs from the start. */
export async function submitSignup(deps: SignupDeps, input: SignupInput): Promise<SignupResult> {
  if (!input.password) throw fail('CATTERY_ERR_VALIDATION', 'password: required');
  checkInput(deps, input);
  const passwordHash = await hashPassword(input.password);
  const { signup, user } = record(deps, input, passwordHash, { channel: 'self' });
  if (deps.approval !== 'auto') return { signup, user };
  try {
    return await approveSignup(deps, signup.id, 'system:auto-approval', input.password);
  } catch (err) {
    // Recorded as failed with its error: an administrator sees it and approves again once the service is back.
    deps.log.warn({ err, signup: signup.id }, 'automatic approval failed; left to an administrator');
    return { signup: deps.db.select().from(signups).where(eq(signups.id, signup.id)).get()!, user };
  }
}

/** A mediator signs a resident up: consent recorded with the mediator's name, approved at once, and a first password
 * for the printed sheet, to be changed at the first sign-in. */
export async function mediatorSignup(deps: SignupDeps, mediator: Principal, input: SignupInput): Promise<SignupResult> {
  checkInput(deps, { ...input, password: undefined });
  const password = firstPassword();
  const { signup } = record(deps, input, await hashPassword(password), { channel: 'mediator', mediator: mediator.id });
  const approved = await approveSignup(deps, signup.id, mediator.id, password);
  return { ...approved, firstPassword: password };
}

function record(deps: SignupDeps, input: SignupInput, passwordHash: string, how: { channel: 'self' | 'mediator'; mediator?: string }) {
  const login = freeLogin(deps, input.name);
  const at = new Date().toISOString();
  return deps.db.transaction((tx) => {
    const user = tx.insert(users).values({
      login, name: input.name.trim(), email: input.email || null, roles: ['resident'], passwordHash, status: 'pending',
      mustChangePassword: how.channel === 'mediator', lang: input.lang === 'en' ? 'en' : 'fr',
    }).returning().get();
    const signup = tx.insert(signups).values({
      userId: user.id, services: input.services, termsVersion: input.termsVersion, channel: how.channel,
      mediatorLogin: how.mediator ?? null, consentAt: at, createdAt: at,
    }).returning().get();
    return { user, signup };
  });
}

/** Create the accounts of a sign-up. With the resident's password at hand (auto-approval, mediator) the accounts get
 * it; otherwise (an admin approving later) they get a random one, and the resident's next sign-in sets theirs. */
export async function approveSignup(deps: SignupDeps, id: number, actor: string, password?: string): Promise<SignupResult> {
  const signup = deps.db.select().from(signups).where(eq(signups.id, id)).get();
  if (!signup) throw fail('CATTERY_ERR_NOT_FOUND', `no sign-up ${id}`);
  if (signup.status === 'approved' || signup.status === 'rejected') throw fail('CATTERY_ERR_CONFLICT', `sign-up ${id} is already ${signup.status}`);
  const user = deps.db.select().from(users).where(eq(users.id, signup.userId)).get()!;
  if (user.status === 'disabled') throw fail('CATTERY_ERR_CONFLICT', `the person of sign-up ${id} is disabled`);
  const servicePassword = password ?? randomToken(24);
  try {
    for (const service of signup.services) {
      const inst = instanceForNewResidents(deps.db, service);
      if (!inst) throw fail('CATTERY_ERR_CONFLICT', `no instance of "${service}" takes new residents yet`);
      const { account } = await createAccount(deps, inst.slug, { username: user.login, password: servicePassword, quotaMb: serviceSettingsMap(deps.db).get(service)?.defaultQuotaMb ?? deps.defaultQuotaMb }, actor);
      assignAccount(deps.db, account.id, user.id);
    }
  } catch (err) {
    deps.db.update(signups).set({ status: 'failed', lastError: (err as Error).message, decidedBy: actor }).where(eq(signups.id, id)).run();
    throw err;
  }
  const at = new Date().toISOString();
  // Rejected (or the person disabled) while the accounts were being made: the rejection stands, the accounts go.
  const stands = deps.db.transaction((tx) => {
    const now = tx.select({ status: signups.status }).from(signups).where(eq(signups.id, id)).get();
    const person = tx.select({ status: users.status }).from(users).where(eq(users.id, user.id)).get();
    if (now?.status === 'rejected' || person?.status === 'disabled') return false;
    tx.update(signups).set({ status: 'approved', decidedBy: actor, decidedAt: at, lastError: null }).where(eq(signups.id, id)).run();
    tx.update(users).set({ status: 'active', syncServicePassword: password === undefined }).where(eq(users.id, user.id)).run();
    return true;
  });
  if (!stands) {
    await removeAccountsOf(deps, user.id, actor);
    throw fail('CATTERY_ERR_CONFLICT', `sign-up ${id} was rejected meanwhile`);
  }
  return { signup: deps.db.select().from(signups).where(eq(signups.id, id)).get()!, user: deps.db.select().from(users).where(eq(users.id, user.id)).get()! };
}

/** Reject a sign-up that is not approved: the person is disabled (their sessions end), and the accounts an earlier,
 * partly failed approval created are removed from the services (deleteAccount; when a service cannot do it now the
 * account stays `deleting` and the accounts timer finishes it). */
export async function rejectSignup(deps: AccountDeps, id: number, actor: string): Promise<Signup> {
  const signup = deps.db.select().from(signups).where(eq(signups.id, id)).get();
  if (!signup) throw fail('CATTERY_ERR_NOT_FOUND', `no sign-up ${id}`);
  if (signup.status === 'approved') throw fail('CATTERY_ERR_CONFLICT', `sign-up ${id} is already approved: delete the accounts instead`);
  const at = new Date().toISOString();
  const rejected = deps.db.transaction((tx) => {
    tx.update(users).set({ status: 'disabled' }).where(and(eq(users.id, signup.userId), eq(users.status, 'pending'))).run();
    tx.delete(sessions).where(eq(sessions.userId, signup.userId)).run();
    return tx.update(signups).set({ status: 'rejected', decidedBy: actor, decidedAt: at }).where(eq(signups.id, id)).returning().get();
  });
  await removeAccountsOf(deps, signup.userId, actor);
  return rejected;
}

export function listSignups(deps: Pick<SignupDeps, 'db'>, filter: { status?: Signup['status']; id?: number } = {}) {
  const q = deps.db.select().from(signups).innerJoin(users, eq(users.id, signups.userId));
  const where = filter.id !== undefined ? eq(signups.id, filter.id) : filter.status ? eq(signups.status, filter.status) : undefined;
  return (where ? q.where(where) : q).orderBy(desc(signups.id)).all()
    .map((r) => ({ ...r.signups, login: r.users.login, name: r.users.name, email: r.users.email }));
}
