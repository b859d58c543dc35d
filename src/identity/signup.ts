// Sign-up: a resident asks for accounts in the services the catalog marks open, alone or with a mediator. The
// request and the consent (who, when, which terms version, which mediator) are written first, in one transaction;
// the accounts are then created through the account operations, outside it. A failure leaves the request `failed`
// with its error, and approving it again finishes the work (account creation is idempotent).
import { and, asc, desc, eq } from 'drizzle-orm';
import { createAccount, changeAccount, deleteAccount, type AccountDeps, replaceQueuedPassword } from '../accounts/accounts.js';
import type { Catalog } from '../catalog/load.js';
import { accounts, instances, sessions, signups, users, type Account, type Instance, type Signup, type User } from '../db/schema.js';
import { fail } from '../errors.js';
import { firstPassword, hashPassword, randomToken } from './passwords.js';
import { checkEmail, checkName, checkNewPassword, loginFromName, setUserPassword } from './users.js';
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

export function openServices(catalog: Catalog) {
  return [...catalog.services.values()].filter((s) => s.manifest.openForSignup).map((s) => s.manifest);
}

/** The open services as a form lists them, in one language. */
export function openServiceChoices(catalog: Catalog, lang: 'fr' | 'en') {
  return openServices(catalog).map((m) => ({ id: m.id, name: m.name[lang], description: m.description[lang] }));
}

/** The instance that takes new residents for a service: the oldest one meant to run. */
export function signupInstance(deps: Pick<AccountDeps, 'db'>, service: string): Instance | undefined {
  return deps.db.select().from(instances).where(and(eq(instances.service, service), eq(instances.desired, 'running'))).orderBy(asc(instances.id)).get();
}

function checkInput(deps: SignupDeps, input: SignupInput): void {
  checkName(input.name);
  if (input.email) checkEmail(input.email);
  if (input.termsVersion !== deps.termsVersion) throw fail('CATTERY_ERR_VALIDATION', `terms: version ${deps.termsVersion} must be accepted`);
  const open = new Set(openServices(deps.catalog).map((m) => m.id));
  if (input.services.length === 0) throw fail('CATTERY_ERR_VALIDATION', 'services: choose at least one');
  const closed = input.services.find((s) => !open.has(s));
  if (closed !== undefined) throw fail('CATTERY_ERR_VALIDATION', `services: "${closed}" is not open for sign-up`);
  if (input.password !== undefined) checkNewPassword(input.password);
}

/** A login free among people and among accounts an admin made by hand in any instance. */
function freeLogin(deps: SignupDeps, name: string): string {
  return loginFromName(deps.db, name, (l) => !!deps.db.select({ id: accounts.id }).from(accounts).where(eq(accounts.username, l)).get());
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
      const inst = signupInstance(deps, service);
      if (!inst) throw fail('CATTERY_ERR_CONFLICT', `no instance of "${service}" takes new residents yet`);
      const { account } = await createAccount(deps, inst.slug, { username: user.login, password: servicePassword, quotaMb: deps.defaultQuotaMb }, actor);
      deps.db.update(accounts).set({ userId: user.id }).where(eq(accounts.id, account.id)).run();
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

async function removeAccountsOf(deps: AccountDeps, userId: number, actor: string): Promise<void> {
  for (const { account, instance } of accountsOfUser(deps, userId)) {
    try {
      await deleteAccount(deps, instance.slug, account.username, actor);
    } catch (err) {
      deps.log.warn({ err, slug: instance.slug, username: account.username }, 'an account of a rejected sign-up was not removed');
    }
  }
}

export function listSignups(deps: Pick<SignupDeps, 'db'>, filter: { status?: Signup['status']; id?: number } = {}) {
  const q = deps.db.select().from(signups).innerJoin(users, eq(users.id, signups.userId));
  const where = filter.id !== undefined ? eq(signups.id, filter.id) : filter.status ? eq(signups.status, filter.status) : undefined;
  return (where ? q.where(where) : q).orderBy(desc(signups.id)).all()
    .map((r) => ({ ...r.signups, login: r.users.login, name: r.users.name, email: r.users.email }));
}

/** A person's accounts with the instance each lives in. */
export function accountsOfUser(deps: Pick<AccountDeps, 'db'>, userId: number): { account: Account; instance: Instance }[] {
  return deps.db.select().from(accounts).innerJoin(instances, eq(instances.id, accounts.instanceId))
    .where(eq(accounts.userId, userId)).orderBy(asc(instances.service)).all().map((r) => ({ account: r.accounts, instance: r.instances }));
}

/** One password for cattery and every service account of the person: what a resident expects of "my password". */
export async function setPasswordEverywhere(deps: AccountDeps, user: User, password: string, actor: string): Promise<{ failed: string[] }> {
  checkNewPassword(password);
  const failed: string[] = [];
  for (const { account, instance } of accountsOfUser(deps, user.id)) {
    // Queued while its instance comes up: the create will use this password.
    if (account.state === 'pending' && account.pending?.create) {
      if (!replaceQueuedPassword(deps, instance.slug, account.username, password)) failed.push(instance.service);
      continue;
    }
    if (account.state !== 'active' && account.state !== 'suspended') continue;
    try {
      await changeAccount(deps, instance.slug, account.username, { password }, actor);
    } catch (err) {
      deps.log.warn({ err, slug: instance.slug }, 'password not applied to a service account');
      failed.push(instance.service);
    }
  }
  await setUserPassword(deps.db, user.id, password);
  // Until every service has it, the next sign-in tries again with the password typed then.
  deps.db.update(users).set({ syncServicePassword: failed.length > 0 }).where(eq(users.id, user.id)).run();
  return { failed };
}

/** A resident deletes one of their accounts (its data goes with it, as the service's delete operation does). */
export async function deleteOwnAccount(deps: AccountDeps, user: User, accountId: number): Promise<void> {
  const mine = accountsOfUser(deps, user.id).find((a) => a.account.id === accountId);
  if (!mine) throw fail('CATTERY_ERR_NOT_FOUND', 'no such account of yours');
  await deleteAccount(deps, mine.instance.slug, mine.account.username, `user:${user.login}`);
}

/** The access text of a service for one account, with its placeholders filled in (catalog `access`). */
export function accessText(catalog: Catalog, instance: Instance, login: string, host: string, lang: 'fr' | 'en'): string {
  const m = catalog.services.get(instance.service)?.manifest;
  const template = m?.access?.[lang];
  if (!template) return '';
  const env = Object.fromEntries(Object.entries(m.environment ?? {}).map(([k, v]) => [k, instance.config.env[k] ?? (v as { value?: string }).value ?? '']));
  return template.replace(/\{(login|host|port\.[a-z0-9_-]+|env\.[A-Z0-9_]+)\}/g, (_all, key: string) => {
    if (key === 'login') return login;
    if (key === 'host') return host;
    if (key.startsWith('port.')) return String(instance.config.ports[key.slice(5)] ?? '');
    return env[key.slice(4)] ?? '';
  });
}
