// A person's service accounts, seen from the person: one password for all, deleting one of one's own, removing
// those of a rejected sign-up, and the administrators' list with each account's owner. The account operations
// themselves are the accounts domain's (accounts/accounts.ts); this file only chooses which to call.
import { eq } from 'drizzle-orm';
import { accountsOfUser, changeAccount, deleteAccount, type AccountDeps, replaceQueuedPassword } from '../accounts/accounts.js';
import type { Db } from '../db/connection.js';
import { accounts, instances, users, type User } from '../db/schema.js';
import { fail } from '../errors.js';
import { checkNewPassword, markServicePasswordSynced, setUserPassword } from './users.js';

/** One password for cattery and every service account of the person: what a resident expects of "my password". */
export async function setPasswordEverywhere(deps: AccountDeps, user: User, password: string, actor: string): Promise<{ failed: string[] }> {
  checkNewPassword(password);
  const failed: string[] = [];
  for (const { account, instance } of accountsOfUser(deps.db, user.id)) {
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
  markServicePasswordSynced(deps.db, user.id, failed.length === 0);
  return { failed };
}

/** A resident deletes one of their accounts (its data goes with it, as the service's delete operation does). */
export async function deleteOwnAccount(deps: AccountDeps, user: User, accountId: number): Promise<void> {
  const mine = accountsOfUser(deps.db, user.id).find((a) => a.account.id === accountId);
  if (!mine) throw fail('CATTERY_ERR_NOT_FOUND', 'no such account of yours');
  await deleteAccount(deps, mine.instance.slug, mine.account.username, `user:${user.login}`);
}

/** The accounts of a person whose sign-up is rejected go from the services; one a service cannot remove now stays
 * `deleting` and the accounts timer finishes it. */
export async function removeAccountsOf(deps: AccountDeps, userId: number, actor: string): Promise<void> {
  for (const { account, instance } of accountsOfUser(deps.db, userId)) {
    try {
      await deleteAccount(deps, instance.slug, account.username, actor);
    } catch (err) {
      deps.log.warn({ err, slug: instance.slug, username: account.username }, 'an account of a rejected sign-up was not removed');
    }
  }
}

/** Every account of every instance with its owner's login and name (none for an account an admin made by hand).
 * A read across the accounts and identity tables, for the administrators' page. */
export function accountsWithOwners(db: Db) {
  return db.select({ a: accounts, slug: instances.slug, service: instances.service, login: users.login, name: users.name })
    .from(accounts).innerJoin(instances, eq(instances.id, accounts.instanceId)).leftJoin(users, eq(users.id, accounts.userId))
    .orderBy(instances.slug, accounts.username).all();
}
