// What the page and identity plugins are handed (built once in app.ts).
import type { AccountDeps } from '../../accounts/accounts.js';
import type { Catalog } from '../../catalog/load.js';
import type { Config } from '../../config.js';
import type { Db } from '../../db/connection.js';
import type { Instance } from '../../db/schema.js';
import type { Oidc } from '../../identity/oidc.js';
import type { SignInDeps } from '../../identity/sign-in.js';
import type { SignupDeps } from '../../identity/signup.js';
import type { SignInThrottle } from '../../identity/throttle.js';

/** Templates stay in src/ and are read from there by the built code too (dist/http/pages → ../../../src/http/views). */
export const VIEWS_DIR = new URL('../../../src/http/views/', import.meta.url).pathname;

export function sessionPolicy(config: Config) {
  return { idleMinutes: config.sessionIdleMinutes, mediatorIdleMinutes: config.mediatorIdleMinutes, maxHours: config.sessionMaxHours };
}

export interface PageDeps {
  config: Config;
  db: Db;
  catalog: Catalog;
  oidc: Oidc | undefined;
  throttle: SignInThrottle;
  secureCookies: boolean;
  accounts: AccountDeps;
  signIn: SignInDeps;
  /** An instance's address through the front door, when it has one (ingress/web-address.ts). */
  webAddress?: (instance: Instance) => string | undefined;
}

export function signupDeps(d: PageDeps): SignupDeps {
  return { ...d.accounts, approval: d.config.signupApproval, termsVersion: d.config.termsVersion, defaultQuotaMb: d.config.defaultQuotaMb };
}

/** Only a path on this site: `/me`, never `//evil.example` or `https://…` (open redirect). */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[\x21-\x7e]{0,200}$/.test(next) ? next : '/me';
}
