// Local sign-in: login and password, throttled per login (throttle.ts); the same error for an unknown login and a
// wrong password, so the form does not tell who has an account.
import type { Db } from '../db/connection.js';
import type { User } from '../db/schema.js';
import { fail } from '../errors.js';
import { verifyPassword } from './passwords.js';
import type { Throttle } from './throttle.js';
import { findByLogin } from './users.js';

export interface SignInDeps {
  db: Db;
  /** Give the person's service accounts this password (person-accounts.ts setPasswordEverywhere, wired in app.ts):
   * sign-in itself needs no engine. */
  syncServicePasswords: (user: User, password: string) => Promise<unknown>;
}

export async function passwordSignIn(deps: SignInDeps, throttle: Throttle, login: string, password: string): Promise<User> {
  const key = login.trim().toLowerCase();
  const wait = throttle.retryAfter(key);
  if (wait > 0) throw fail('CATTERY_ERR_THROTTLED', String(wait));
  // Counted as a failure before the hash is checked: guesses sent at once all count (each check takes ~100 ms of
  // scrypt, time enough for a burst to pass a throttle that counted afterwards). A right password clears the
  // address's count; on the per-login ceiling it stays one attempt, which the owner's known addresses never meet.
  throttle.failed(key);
  const user = findByLogin(deps.db, key);
  const ok = await verifyPassword(password, user?.passwordHash ?? null);
  if (!user || !ok || user.status === 'disabled') throw fail('CATTERY_ERR_LOGIN_FAILED');
  throttle.succeeded(key);
  // Accounts created while the resident waited for approval got a random password: they get this one now, the
  // only moment cattery holds it in clear.
  if (user.syncServicePassword && user.status === 'active' && !user.mustChangePassword) {
    await deps.syncServicePasswords(user, password);
  }
  return findByLogin(deps.db, key)!;
}
