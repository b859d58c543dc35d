// Disabling a person reaches past cattery: their sessions end, their API tokens stop (tokens.ts), and every service
// account of theirs is suspended; enabling them resumes exactly the accounts the disabling suspended, not one an
// administrator (or a decision) had suspended for another reason. Which accounts those are is kept in the journal
// (operations, kind person.disable / person.enable per account), so no table changes. The suspension goes through
// accounts' changeAccount, which records the intent and, when the service cannot do it now, retries on its timer.
import { eq } from 'drizzle-orm';
import { accountsOfUser, changeAccount, type AccountDeps } from '../accounts/accounts.js';
import { sessions, users, type Account, type Instance, type User } from '../db/schema.js';
import { journal, lastEntryWith } from '../orchestrator/journal.js';

export interface AccountOutcome { instance: string; username: string; applied: boolean; error?: string }

const wantsSuspended = (a: Account) => a.pending?.suspended ?? a.state === 'suspended';

function mark(deps: AccountDeps, kind: 'person.disable' | 'person.enable', actor: string, user: User, inst: Instance, a: Account) {
  journal(deps.db, { slug: inst.slug, kind, actor, status: 'done', detail: { username: a.username, userId: user.id, login: user.login } });
}

/** The last person.* journal entry for this account of this person. */
function lastMark(deps: AccountDeps, user: User, inst: Instance, a: Account): string | undefined {
  return lastEntryWith(deps.db, inst.slug, ['person.disable', 'person.enable'], { username: a.username, userId: user.id });
}

async function apply(deps: AccountDeps, inst: Instance, a: Account, suspended: boolean, actor: string): Promise<AccountOutcome> {
  try {
    const { applied } = await changeAccount(deps, inst.slug, a.username, { suspended }, actor);
    return { instance: inst.slug, username: a.username, applied };
  } catch (err) {
    deps.log.warn({ err, slug: inst.slug, username: a.username, suspended }, 'a disabled person\'s account could not be changed');
    return { instance: inst.slug, username: a.username, applied: false, error: (err as Error).message };
  }
}

/** Disable: sessions end at once (in the same transaction as the status), then each account still open is suspended.
 * Calling it again retries what an earlier call could not do. */
export async function disablePerson(deps: AccountDeps, user: User, actor: string): Promise<AccountOutcome[]> {
  deps.db.transaction((tx) => {
    tx.update(users).set({ status: 'disabled' }).where(eq(users.id, user.id)).run();
    tx.delete(sessions).where(eq(sessions.userId, user.id)).run();
  });
  const out: AccountOutcome[] = [];
  for (const { account, instance } of accountsOfUser(deps.db, user.id)) {
    // Accounts being created, failed or being deleted have nothing to suspend (a failed sign-up's are removed by
    // rejecting it); one already suspended for another reason stays so after re-enabling.
    if (account.state !== 'active' && account.state !== 'suspended') continue;
    if (wantsSuspended(account)) {
      if (lastMark(deps, user, instance, account) === 'person.disable') out.push(await apply(deps, instance, account, true, actor));
      continue;
    }
    mark(deps, 'person.disable', actor, user, instance, account);
    out.push(await apply(deps, instance, account, true, actor));
  }
  return out;
}

/** Enable: the person signs in again and the accounts the disabling suspended are resumed. */
export async function enablePerson(deps: AccountDeps, user: User, actor: string): Promise<AccountOutcome[]> {
  deps.db.update(users).set({ status: 'active' }).where(eq(users.id, user.id)).run();
  const out: AccountOutcome[] = [];
  for (const { account, instance } of accountsOfUser(deps.db, user.id)) {
    if (account.state !== 'active' && account.state !== 'suspended') continue;
    if (lastMark(deps, user, instance, account) !== 'person.disable') continue;
    mark(deps, 'person.enable', actor, user, instance, account);
    out.push(await apply(deps, instance, account, false, actor));
  }
  return out;
}
