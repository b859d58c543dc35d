// Residents' accounts inside instances. The row is written first (intent), the service's own operation runs outside
// the transaction, the outcome is recorded. Operations are idempotent: creating an existing account or deleting a
// deleted one succeeds. Every value reaching a service has been checked against a strict pattern here first.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { and, asc, eq, isNotNull, isNull, lt, or } from 'drizzle-orm';
import type { Readable } from 'node:stream';
import type { Catalog } from '../catalog/load.js';
import type { ACCOUNT_OPERATIONS } from '../catalog/manifest.js';
import type { Db } from '../db/connection.js';
import { accounts, instances, type Account, type AccountState, type Instance, type Server } from '../db/schema.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import { DEFAULT_LIMITS, execFromFile, execToFile, execWithInput, type Engine, type ExecLimits } from '../orchestrator/docker/index.js';
import { execTarget } from '../orchestrator/exec-target.js';
import { getInstance } from '../orchestrator/instances.js';
import { journal as journalEntry } from '../orchestrator/journal.js';
import { seal, unseal } from './sealed.js';

export const USERNAME_PATTERN = '^[a-z][a-z0-9._-]{0,30}[a-z0-9]$';
const USERNAME = new RegExp(USERNAME_PATTERN);
export const PASSWORD_MIN = 10;
export const PASSWORD_MAX = 128;
export const QUOTA_MAX_MB = 1024 * 1024;

type Op = (typeof ACCOUNT_OPERATIONS)[number];

export interface AccountDeps {
  db: Db;
  catalog: Catalog;
  hosterId: string;
  engineFor: (server: Server) => Engine;
  log: Logger;
  /** Deadline and output cap of one operation (exec.ts DEFAULT_LIMITS otherwise). */
  limits?: ExecLimits;
  /** Where exports are staged before they are sent (a folder of the data dir; the system's tmp otherwise). */
  stagingDir?: string;
  /** Seals a first password queued while its instance starts (sealed.ts); without it nothing is queued. */
  sealKey?: Buffer;
  /** Where a restore keeps what an account held before (data/backups/accounts, a folder per account id): removed
   * with the account. */
  keptDir?: string;
}

/** The folder of the copies a restore kept of one account: named by the account's id, never by a name another
 * account could share a prefix with. */
export const keptDirOf = (root: string, accountId: number) => path.join(root, String(accountId));

/** An export may be as large as the account's data: its quota twice over (a service's own overhead, a quota lowered
 * after the fact) plus 64 MB, and ten minutes, whichever comes first. */
const exportLimits = (deps: AccountDeps, quotaMb: number): ExecLimits => ({
  timeoutMs: Math.max(10 * (deps.limits ?? DEFAULT_LIMITS).timeoutMs, 600_000), maxBytes: (quotaMb * 2 + 64) * 1024 * 1024,
});

/** The largest archive an import into an account of this quota accepts: what its export may weigh. */
export const importLimitBytes = (deps: AccountDeps, quotaMb: number): number => exportLimits(deps, quotaMb).maxBytes;

export function checkUsername(u: string): void {
  if (!USERNAME.test(u) || u.includes('..')) throw fail('CATTERY_ERR_VALIDATION', 'username: 2 to 32 lowercase letters, digits, dots, dashes or underscores, starting with a letter');
}
export function checkPassword(p: string): void {
  // eslint-disable-next-line no-control-regex
  if (p.length < PASSWORD_MIN || p.length > PASSWORD_MAX || /[\u0000-\u001f\u007f]/.test(p)) {
    throw fail('CATTERY_ERR_VALIDATION', `password: ${PASSWORD_MIN} to ${PASSWORD_MAX} characters, no control characters`);
  }
}
export function checkQuota(q: number): void {
  if (!Number.isInteger(q) || q < 1 || q > QUOTA_MAX_MB) throw fail('CATTERY_ERR_VALIDATION', `quotaMb: a whole number from 1 to ${QUOTA_MAX_MB}`);
}

export function getAccount(db: Db, slug: string, username: string): Account {
  const inst = getInstance(db, slug);
  const row = db.select().from(accounts).where(and(eq(accounts.instanceId, inst.id), eq(accounts.username, username))).get();
  if (!row) throw fail('CATTERY_ERR_NOT_FOUND', `No account "${username}" in "${slug}"`);
  return row;
}

export function listAccounts(db: Db, slug: string): Account[] {
  const inst = getInstance(db, slug);
  return db.select().from(accounts).where(eq(accounts.instanceId, inst.id)).orderBy(asc(accounts.username)).all();
}

function journal(
  db: Db, slug: string, kind: string, actor: string, detail: Record<string, unknown>, status: 'done' | 'failed', error?: string,
) {
  journalEntry(db, { slug, kind: `account.${kind}`, actor, status, detail, error });
}

/** An instance past its start whose container runs: its account operations are tried. */
const canOperate = (inst: Instance) => inst.observed === 'healthy' || inst.observed === 'running' || inst.observed === 'unhealthy';

/** The engine and container an exec into the instance goes to (on Swarm, its task's node: exec-target.ts). */
async function targetOf(deps: AccountDeps, inst: Pick<Instance, 'slug' | 'serverId'>): Promise<[Engine, string]> {
  const t = await execTarget(deps, inst);
  return [t.engine, t.container];
}

/** Run one operation of the manifest's adapter inside the instance's container. */
async function runOp(deps: AccountDeps, inst: Instance, op: Op, input: Record<string, unknown>): Promise<Record<string, unknown>> {
  const m = deps.catalog.services.get(inst.service)?.manifest;
  const spec = m?.accounts?.operations[op];
  if (!spec) throw fail('CATTERY_ERR_ACCOUNT_UNSUPPORTED', `The ${inst.service} service has no "${op}" account operation`);
  // `unhealthy` is a running container whose check fails or is late (a loaded machine, a broken link): the operation
  // is tried, since a suspension must not wait for a health check; a service that cannot do it answers an error.
  if (!canOperate(inst)) throw fail('CATTERY_ERR_CONFLICT', `Instance "${inst.slug}" is not running (${inst.observed})`);
  const r = await execWithInput(...await targetOf(deps, inst), spec.exec,
    JSON.stringify(input), deps.limits ?? DEFAULT_LIMITS, `${op} of ${inst.slug}`);
  const { out, refusal } = answerOf(r, op, 200);
  if (refusal) {
    deps.log.warn({ slug: inst.slug, op, exitCode: r.exitCode, stderr: r.stderr }, 'account operation failed');
    throw fail('CATTERY_ERR_ACCOUNT_OPERATION', refusal);
  }
  return out;
}

/** An operation's answer: its line of JSON, and why it failed when it did not exit 0 with `ok: true` (its own
 * words when it gave some, else its exit code). */
function answerOf(r: { exitCode: number; stdout: Buffer }, op: string, maxWords: number): { out: Record<string, unknown>; refusal: string | null } {
  let out: Record<string, unknown> = {};
  try { out = JSON.parse(r.stdout.toString() || '{}'); } catch { /* reported below */ }
  if (r.exitCode === 0 && out.ok === true) return { out, refusal: null };
  return { out, refusal: typeof out.error === 'string' ? out.error.slice(0, maxWords) : `${op} exited with ${r.exitCode}` };
}

function setState(db: Db, id: number, state: AccountState, extra: Partial<Account> = {}) {
  db.update(accounts).set({ state, updatedAt: new Date().toISOString(), ...extra }).where(eq(accounts.id, id)).run();
}

/** An instance asked to run that has not come up yet: account operations wait for it rather than fail. */
// `stopped` with `running` desired: a start asked for and not yet seen by the reconciler.
const isComingUp = (inst: Instance) => inst.desired === 'running' &&
  (inst.observed === 'pending' || inst.observed === 'creating' || inst.observed === 'starting' || inst.observed === 'stopped');

export async function createAccount(deps: AccountDeps, slug: string, input: { username: string; password: string; quotaMb: number }, actor: string): Promise<{ account: Account; created: boolean; queued?: boolean }> {
  checkUsername(input.username);
  checkPassword(input.password);
  checkQuota(input.quotaMb);
  const inst = getInstance(deps.db, slug);
  const existing = deps.db.select().from(accounts).where(and(eq(accounts.instanceId, inst.id), eq(accounts.username, input.username))).get();
  if (existing && existing.state !== 'failed' && existing.state !== 'pending') return { account: existing, created: false };
  if (deps.catalog.services.get(inst.service)?.manifest.accounts?.operations.create === undefined) {
    throw fail('CATTERY_ERR_ACCOUNT_UNSUPPORTED', `The ${inst.service} service has no "create" account operation`);
  }
  const row = existing ?? deps.db.insert(accounts).values({ instanceId: inst.id, username: input.username, quotaMb: input.quotaMb }).returning().get();
  if (isComingUp(inst)) {
    if (!deps.sealKey) throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" is still starting (${inst.observed}): try again once it is up`);
    // Queued like the other deferred changes: the upkeep timer creates it once the instance is up.
    deps.db.update(accounts).set({ state: 'pending', quotaMb: input.quotaMb, lastError: `waiting for ${slug} to be up (${inst.observed})`,
      pending: { ...(existing?.pending ?? {}), create: { sealed: seal(deps.sealKey, input.password) } }, updatedAt: new Date().toISOString() }).where(eq(accounts.id, row.id)).run();
    journal(deps.db, slug, 'create', actor, { username: input.username, queued: true }, 'done');
    return { account: getAccount(deps.db, slug, input.username), created: false, queued: true };
  }
  try {
    await runOp(deps, inst, 'create', input);
  } catch (err) {
    setState(deps.db, row.id, 'failed', { lastError: (err as Error).message });
    journal(deps.db, slug, 'create', actor, { username: input.username }, 'failed', (err as Error).message);
    throw err;
  }
  setState(deps.db, row.id, 'active', { lastError: null, quotaMb: input.quotaMb, pending: withoutCreate(existing?.pending) });
  journal(deps.db, slug, 'create', actor, { username: input.username, quotaMb: input.quotaMb }, 'done');
  return { account: getAccount(deps.db, slug, input.username), created: true };
}

/** A create still queued takes the person's newest password (changed, or typed at a sign-in, before the instance
 * came up), so the account is made with the password its owner knows. False when nothing is queued. */
export function replaceQueuedPassword(deps: AccountDeps, slug: string, username: string, password: string): boolean {
  checkPassword(password);
  const acc = getAccount(deps.db, slug, username);
  if (acc.state !== 'pending' || !acc.pending?.create || !deps.sealKey) return false;
  deps.db.update(accounts).set({ pending: { ...acc.pending, create: { sealed: seal(deps.sealKey, password) } }, updatedAt: new Date().toISOString() })
    .where(eq(accounts.id, acc.id)).run();
  return true;
}

function withoutCreate(p: Account['pending'] | undefined): Account['pending'] {
  if (!p) return null;
  const { create: _, ...rest } = p;
  return Object.keys(rest).length ? rest : null;
}

/** A create queued while the instance was coming up. Returns false while it still cannot be done; a service that
 * refuses it marks the account failed (and forgets the password). */
async function applyQueuedCreate(deps: AccountDeps, slug: string, username: string, actor: string): Promise<boolean> {
  const inst = getInstance(deps.db, slug);
  const acc = getAccount(deps.db, slug, username);
  const queued = acc.pending?.create;
  if (!queued) return true;
  const password = queued.sealed !== undefined ? (deps.sealKey ? unseal(deps.sealKey, queued.sealed) : null) : queued.password ?? null;
  if (password === null) {
    // Sealed under a secret that is not this one any more: nobody can read it, so the account cannot be made.
    setState(deps.db, acc.id, 'failed', { lastError: 'the queued first password cannot be read (cattery\'s secret changed); create the account again', pending: withoutCreate(acc.pending) });
    journal(deps.db, slug, 'create', actor, { username }, 'failed', 'queued password unreadable');
    return true;
  }
  if (inst.observed !== 'healthy' && inst.observed !== 'running') {
    // Unhealthy (a check late on a loaded machine, or a start slower than the bound) may still come good: the
    // queued first password waits for it rather than be forgotten by a create the service is not ready for.
    if (isComingUp(inst) || (inst.observed === 'unhealthy' && inst.desired === 'running')) return false;
    setState(deps.db, acc.id, 'failed', { lastError: `${slug} did not come up (${inst.observed}${inst.lastError ? `: ${inst.lastError}` : ''}); create the account again`, pending: withoutCreate(acc.pending) });
    journal(deps.db, slug, 'create', actor, { username }, 'failed', `instance ${inst.observed}`);
    return true;
  }
  try {
    await runOp(deps, inst, 'create', { username, password, quotaMb: acc.quotaMb });
  } catch (err) {
    setState(deps.db, acc.id, 'failed', { lastError: (err as Error).message, pending: withoutCreate(acc.pending) });
    journal(deps.db, slug, 'create', actor, { username }, 'failed', (err as Error).message);
    return true;
  }
  setState(deps.db, acc.id, 'active', { lastError: null, pending: withoutCreate(acc.pending) });
  journal(deps.db, slug, 'create', actor, { username, quotaMb: acc.quotaMb }, 'done');
  return true;
}

/** Apply what an account's `pending` asks for (suspend, resume, quota). Returns false when the service could not
 * do it now: the change stays pending, with the reason as last error, and the timer tries again. */
async function applyPending(deps: AccountDeps, slug: string, username: string, actor: string): Promise<boolean> {
  const inst = getInstance(deps.db, slug);
  let acc = getAccount(deps.db, slug, username);
  const pending = { ...(acc.pending ?? {}) };
  const steps: [Op, Record<string, unknown>, () => Partial<Account>][] = [];
  if (pending.quotaMb !== undefined) {
    const q = pending.quotaMb;
    steps.push(['setQuota', { username, quotaMb: q }, () => { delete pending.quotaMb; return { quotaMb: q }; }]);
  }
  if (pending.suspended !== undefined) {
    const want = pending.suspended;
    if (want !== (acc.state === 'suspended')) {
      steps.push([want ? 'suspend' : 'resume', { username }, () => { delete pending.suspended; return { state: want ? 'suspended' : 'active' }; }]);
    } else delete pending.suspended;
  }
  for (const [op, input, done] of steps) {
    try {
      await runOp(deps, inst, op, input);
    } catch (err) {
      deps.db.update(accounts).set({ lastError: (err as Error).message, pending }).where(eq(accounts.id, acc.id)).run();
      journal(deps.db, slug, op, actor, { username }, 'failed', (err as Error).message);
      return false;
    }
    const applied = done();
    deps.db.update(accounts).set({ ...applied, lastError: null, pending: Object.keys(pending).length ? pending : null, updatedAt: new Date().toISOString() })
      .where(eq(accounts.id, acc.id)).run();
    journal(deps.db, slug, op, actor, { username, ...(op === 'setQuota' ? input : {}) }, 'done');
    acc = getAccount(deps.db, slug, username);
  }
  if (!steps.length && acc.pending) deps.db.update(accounts).set({ pending: acc.pending.create ? { create: acc.pending.create } : null }).where(eq(accounts.id, acc.id)).run();
  return true;
}

/** Change password, quota or suspension. A new password is applied at once or refused (cattery never keeps it to
 * try again). Quota and suspension are recorded first, then applied; when the service cannot do it now the reply
 * says so (`applied: false`) and the timer finishes it. */
export async function changeAccount(deps: AccountDeps, slug: string, username: string,
  change: { password?: string; suspended?: boolean; quotaMb?: number }, actor: string): Promise<{ account: Account; applied: boolean }> {
  checkUsername(username);
  if (change.password !== undefined) checkPassword(change.password);
  if (change.quotaMb !== undefined) checkQuota(change.quotaMb);
  const acc = getAccount(deps.db, slug, username);
  if (acc.state === 'deleting' || acc.state === 'pending' || acc.state === 'failed' || acc.state === 'forwarding') throw fail('CATTERY_ERR_CONFLICT', `Account "${username}" is ${acc.state}`);
  const inst = getInstance(deps.db, slug);
  const ops = deps.catalog.services.get(inst.service)?.manifest.accounts?.operations ?? {};
  const needed: Op[] = [];
  if (change.quotaMb !== undefined) needed.push('setQuota');
  if (change.suspended !== undefined) needed.push('suspend', 'resume');
  const missing = needed.find((op) => !ops[op]);
  if (missing) throw fail('CATTERY_ERR_ACCOUNT_UNSUPPORTED', `The ${inst.service} service has no "${missing}" account operation`);
  if (change.password !== undefined) {
    try {
      await runOp(deps, inst, 'setPassword', { username, password: change.password });
    } catch (err) {
      journal(deps.db, slug, 'setPassword', actor, { username }, 'failed', (err as Error).message);
      throw err;
    }
    journal(deps.db, slug, 'setPassword', actor, { username }, 'done');
  }
  if (change.quotaMb === undefined && change.suspended === undefined) return { account: getAccount(deps.db, slug, username), applied: true };
  const pending = { ...(acc.pending ?? {}) };
  if (change.quotaMb !== undefined) pending.quotaMb = change.quotaMb;
  if (change.suspended !== undefined) pending.suspended = change.suspended;
  deps.db.update(accounts).set({ pending }).where(eq(accounts.id, acc.id)).run();
  const applied = await applyPending(deps, slug, username, actor);
  return { account: getAccount(deps.db, slug, username), applied };
}

/** A service's figure is its own word, and a compromised one may lie: usage feeds each resident's share of the
 * energy (metering), so only a whole number from 0 to 2^53 is kept; anything else is "unknown" (null). */
export const plausibleCount = (v: unknown): number | null =>
  (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null);

export async function refreshUsage(deps: AccountDeps, slug: string, username: string): Promise<Account> {
  const acc = getAccount(deps.db, slug, username);
  const out = await runOp(deps, getInstance(deps.db, slug), 'usage', { username });
  deps.db.update(accounts).set({ usageBytes: plausibleCount(out.bytes), usageItems: plausibleCount(out.items), usageAt: new Date().toISOString() })
    .where(eq(accounts.id, acc.id)).run();
  return getAccount(deps.db, slug, username);
}

/** Keep every account's usage (bytes, items) no older than `maxAgeMs`, a few accounts per call: metering's
 * per-account key reads it (metering/energy-model.ts). Instances not running are left for a later call. */
export async function refreshStaleUsage(deps: AccountDeps, maxAgeMs: number, batch = 20): Promise<number> {
  const cutoff = new Date(Date.now() - maxAgeMs).toISOString();
  const rows = deps.db.select({ username: accounts.username, slug: instances.slug, service: instances.service }).from(accounts)
    .innerJoin(instances, eq(accounts.instanceId, instances.id))
    .where(and(or(eq(accounts.state, 'active'), eq(accounts.state, 'suspended')), or(isNull(accounts.usageAt), lt(accounts.usageAt, cutoff)),
      or(eq(instances.observed, 'healthy'), eq(instances.observed, 'running'))))
    .orderBy(asc(accounts.usageAt)).limit(batch).all()
    .filter((r) => deps.catalog.services.get(r.service)?.manifest.accounts?.operations.usage);
  let done = 0;
  for (const r of rows) {
    try { await refreshUsage(deps, r.slug, r.username); done++; } catch (err) { deps.log.warn({ err, slug: r.slug }, 'usage not refreshed'); }
  }
  return done;
}

/** At most this many exports are staged at once, whoever asks (a resident: one): each can be twice its quota. */
export const EXPORTS_AT_ONCE = 4;
/** Staging never leaves less than this free on the file system that holds cattery.db (which must keep writing). */
export const STAGING_RESERVE_BYTES = 1024 ** 3;

/** The staging folder of one export. Its name is the account's, so a second export of the same account while one is
 * staged or being sent is refused (mkdir is the lock, and it goes with the folder); at most EXPORTS_AT_ONCE run at
 * once, one per resident; and its worst case, plus what the exports under way may still write, must fit on the disk
 * with the reserve left. A resident's parallel or never-read downloads thus cannot fill the disk that holds
 * cattery.db, nor take every slot. */
export function claimExportStaging(
  root: string, account: { slug: string; username: string }, actor: string, worstBytes: number,
  freeBytes: (dir: string) => number = (dir) => { const st = fs.statfsSync(dir); return st.bavail * st.bsize; },
): string {
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const busy = (why: string) => fail('CATTERY_ERR_BUSY', why);
  const name = `export-${crypto.createHash('sha256').update(`${account.slug}/${account.username}`).digest('hex').slice(0, 32)}`;
  const claims = fs.readdirSync(root).filter((n) => n.startsWith('export-')).map((n) => ({ name: n, ...readClaim(path.join(root, n)) }));
  if (claims.some((c) => c.name === name)) throw busy(`an export of ${account.username} is already under way: wait for it to finish`);
  if (claims.length >= EXPORTS_AT_ONCE) throw busy('too many exports are under way: try again in a few minutes');
  // A resident holds one at a time, whatever number of accounts they have: the slots are everyone's.
  if (actor.startsWith('user:') && claims.some((c) => c.actor === actor)) throw busy('one of your exports is already under way: wait for it to finish');
  // What the exports under way may still write counts as used: each was let in on the free space it saw.
  const owed = claims.reduce((sum, c) => sum + Math.max(0, c.worst - c.written), 0);
  if (freeBytes(root) - owed - worstBytes < STAGING_RESERVE_BYTES) {
    throw fail('CATTERY_ERR_INSUFFICIENT_STORAGE', 'not enough free disk space to prepare this export now: try again later');
  }
  const dir = path.join(root, name);
  try { fs.mkdirSync(dir, { mode: 0o700 }); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw busy(`an export of ${account.username} is already under way: wait for it to finish`);
    throw err;
  }
  fs.writeFileSync(path.join(dir, 'claim.json'), JSON.stringify({ actor, worst: worstBytes }), { mode: 0o600 });
  return dir;
}

/** Who holds a staging folder, the most it may write, and what it has written so far. */
function readClaim(dir: string): { actor: string; worst: number; written: number } {
  let claim = { actor: '', worst: 0 };
  try { claim = JSON.parse(fs.readFileSync(path.join(dir, 'claim.json'), 'utf8')) as typeof claim; } catch { /* being made, or a crash's */ }
  let written = 0;
  try { written = fs.statSync(path.join(dir, 'export.tar')).size; } catch { /* not started */ }
  return { actor: String(claim.actor ?? ''), worst: Number(claim.worst) || 0, written };
}

/** Staging folders left by a crash (an export's, an import's upload, a resident's restore) hold no lock anyone
 * waits for: they go at start. */
export function sweepExportStaging(root: string): void {
  if (!fs.existsSync(root)) return;
  for (const n of fs.readdirSync(root).filter((x) => /^(export|import|restore)-/.test(x))) fs.rmSync(path.join(root, n), { recursive: true, force: true });
}

/** The account's data as the service's export gives it (a tar stream), staged whole in a 0600 file first and sent
 * only once the operation has exited 0: a failed export is a clear error, never a 200 with a truncated tar. The
 * staged file is removed once read (or at once on failure). */
export async function exportAccount(deps: AccountDeps, slug: string, username: string, actor: string): Promise<Readable & { size?: number }> {
  const acc = getAccount(deps.db, slug, username);
  const inst = getInstance(deps.db, slug);
  const spec = deps.catalog.services.get(inst.service)?.manifest.accounts?.operations.export;
  if (!spec) throw fail('CATTERY_ERR_ACCOUNT_UNSUPPORTED', `The ${inst.service} service has no export`);
  if (!canOperate(inst)) throw fail('CATTERY_ERR_CONFLICT', `Instance "${inst.slug}" is not running (${inst.observed})`);
  const limits = exportLimits(deps, acc.quotaMb);
  const dir = claimExportStaging(deps.stagingDir ?? os.tmpdir(), { slug, username }, actor, limits.maxBytes);
  const file = path.join(dir, 'export.tar');
  const drop = () => fs.rmSync(dir, { recursive: true, force: true });
  let code: number;
  try {
    code = await execToFile(...await targetOf(deps, inst), spec.exec,
      JSON.stringify({ username }), file, limits);
  } catch (err) {
    drop();
    journal(deps.db, slug, 'export', actor, { username }, 'failed', (err as Error).message);
    throw err;
  }
  if (code !== 0) {
    drop();
    journal(deps.db, slug, 'export', actor, { username }, 'failed', `exit ${code}`);
    throw fail('CATTERY_ERR_ACCOUNT_OPERATION', `the export of ${username} failed (exit ${code}); nothing was sent, try again later`);
  }
  journal(deps.db, slug, 'export', actor, { username }, 'done');
  const stream = fs.createReadStream(file) as Readable & { size?: number };
  stream.size = fs.statSync(file).size;
  stream.once('close', drop);
  return stream;
}

/** What the service's export of `username` writes, to `file` (created 0600), from any container of the service:
 * an instance's, or one cattery made beside it from a snapshot (which has no account rows of its own). */
export async function exportToFile(deps: AccountDeps, inst: Pick<Instance, 'slug' | 'service' | 'serverId'>, username: string, quotaMb: number, file: string): Promise<void> {
  checkUsername(username);
  const spec = deps.catalog.services.get(inst.service)?.manifest.accounts?.operations.export;
  if (!spec) throw fail('CATTERY_ERR_ACCOUNT_UNSUPPORTED', `The ${inst.service} service has no export`);
  let code: number;
  try {
    code = await execToFile(...await targetOf(deps, inst), spec.exec,
      JSON.stringify({ username }), file, exportLimits(deps, quotaMb));
  } catch (err) {
    // What a cut export wrote is no copy of anything: it does not stay to be taken for one.
    fs.rmSync(file, { force: true });
    throw err;
  }
  if (code !== 0) {
    fs.rmSync(file, { force: true });
    throw fail('CATTERY_ERR_ACCOUNT_OPERATION', `the export of ${username} from ${inst.slug} failed (exit ${code})`);
  }
}

/** Whether an archive may be imported into the account now (it exists, active or suspended, its instance runs):
 * checked before a restore makes anything, and again by the import itself. */
export function checkImportable(deps: AccountDeps, slug: string, username: string): Account {
  checkUsername(username);
  const acc = getAccount(deps.db, slug, username);
  const inst = getInstance(deps.db, slug);
  if (!deps.catalog.services.get(inst.service)?.manifest.accounts?.operations.import) throw fail('CATTERY_ERR_ACCOUNT_UNSUPPORTED', `The ${inst.service} service has no "import" account operation`);
  if (acc.state !== 'active' && acc.state !== 'suspended') throw fail('CATTERY_ERR_CONFLICT', `The account "${username}" is ${acc.state}: nothing can be imported into it now`);
  if (!canOperate(inst)) throw fail('CATTERY_ERR_CONFLICT', `Instance "${inst.slug}" is not running (${inst.observed})`);
  return acc;
}

/** The account's data replaced, whole, by an archive its service's export wrote (a snapshot's copy of it, or a
 * resident moving here): the service's import reads a line of JSON then the tar, checks every member, and swaps the
 * account's data only once all of it is in. A refused archive changes nothing; the account keeps its state. */
export async function importAccount(deps: AccountDeps, slug: string, username: string, file: string, actor: string): Promise<Account> {
  const acc = checkImportable(deps, slug, username);
  const inst = getInstance(deps.db, slug);
  const spec = deps.catalog.services.get(inst.service)!.manifest.accounts!.operations.import!;
  const limits = exportLimits(deps, acc.quotaMb);
  const size = fs.statSync(file).size;
  // What an export of this account may weigh is what an import may: refused before a byte is sent.
  if (size > limits.maxBytes) throw fail('CATTERY_ERR_TOO_LARGE', `the archive (${size} bytes) is larger than ${username}'s quota allows (${limits.maxBytes} bytes at most)`);
  const detail = { username, bytes: size };
  let r;
  try {
    r = await execFromFile(...await targetOf(deps, inst), spec.exec,
      `${JSON.stringify({ username, quotaMb: acc.quotaMb })}\n`, file, { timeoutMs: limits.timeoutMs, maxBytes: (deps.limits ?? DEFAULT_LIMITS).maxBytes }, `import of ${username} into ${slug}`);
  } catch (err) {
    journal(deps.db, slug, 'import', actor, detail, 'failed', (err as Error).message);
    // Docker has no call to stop an exec: an import cut at its deadline may still finish inside the service. Said
    // as it is, not as "nothing changed".
    if (/did not finish within/.test((err as Error).message)) {
      throw fail('CATTERY_ERR_ACCOUNT_OPERATION', `the import into ${username} did not finish in time; it may still complete inside the service: look at the account before trying again (${(err as Error).message})`);
    }
    throw err;
  }
  const why = answerOf(r, 'import', 300).refusal;
  if (why) {
    deps.log.warn({ slug, username, exitCode: r.exitCode, stderr: r.stderr }, 'account import refused');
    journal(deps.db, slug, 'import', actor, detail, 'failed', why);
    throw fail('CATTERY_ERR_ACCOUNT_OPERATION', `the import into ${username} was refused, and nothing of the account changed: ${why}`);
  }
  journal(deps.db, slug, 'import', actor, detail, 'done');
  // The usage the account had is no longer true: the next usage pass reads it again.
  deps.db.update(accounts).set({ usageAt: null, updatedAt: new Date().toISOString() }).where(eq(accounts.id, acc.id)).run();
  return getAccount(deps.db, slug, username);
}

/** Purge the account's data from the service, then forget it. Deleting an unknown account succeeds. The intent is
 * recorded first: when the service cannot do it now (instance stopped, engine away), the account stays `deleting`
 * and `retryPendingAccounts` finishes the work later. Returns false when deferred. */
export async function deleteAccount(deps: AccountDeps, slug: string, username: string, actor: string): Promise<boolean> {
  checkUsername(username);
  const inst = getInstance(deps.db, slug);
  const acc = deps.db.select().from(accounts).where(and(eq(accounts.instanceId, inst.id), eq(accounts.username, username))).get();
  if (!acc) return true;
  const spec = deps.catalog.services.get(inst.service)?.manifest.accounts?.operations.delete;
  if (!spec) throw fail('CATTERY_ERR_ACCOUNT_UNSUPPORTED', `The ${inst.service} service has no "delete" account operation`);
  setState(deps.db, acc.id, 'deleting');
  try {
    await runOp(deps, inst, 'delete', { username });
  } catch (err) {
    deps.db.update(accounts).set({ lastError: (err as Error).message }).where(eq(accounts.id, acc.id)).run();
    journal(deps.db, slug, 'delete', actor, { username }, 'failed', (err as Error).message);
    return false;
  }
  deps.db.transaction((tx) => {
    tx.delete(accounts).where(eq(accounts.id, acc.id)).run();
    journal(tx as unknown as Db, slug, 'delete', actor, { username }, 'done');
  });
  // The copies a restore kept of this account's data go with it.
  if (deps.keptDir) fs.rmSync(keptDirOf(deps.keptDir, acc.id), { recursive: true, force: true });
  return true;
}

// The forward of a resident who moved away (catalog `forward`): the same bounds the mail service checks again.
/** An address as a forward's target: ASCII letters, digits and . _ + - before the @, a lowercase domain name after
 * it, 254 octets at most (RFC 5321 section 4.5.3.1). Deliberately narrower than RFC 5322: it reaches a Sieve script. */
export const FORWARD_TO = /^(?=.{3,254}$)(?!\.)(?!.*\.\.)[A-Za-z0-9._+-]{1,64}(?<!\.)@(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const FORWARD_MESSAGE_MAX = 2000;
/** Octets (UTF-8) per line: within SMTP's 998 per line (RFC 5322 section 2.1.1) with room for the transport. */
export const FORWARD_LINE_MAX = 900;
export const FORWARD_LINES_MAX = 60;
/** A forward ends within a year and a day (the governance setting is bounded below it). */
export const FORWARD_MAX_DAYS = 366;
// Line feeds and printable characters only: no other control character (C0, DEL, C1), no line or paragraph
// separator, no invisible direction or format mark that could hide part of the text, no byte-order mark or
// replacement/special character, no lone surrogate.
// eslint-disable-next-line no-control-regex
const NOT_PLAIN = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\uffff]/;

const LONE_SURROGATE = /\p{Cs}/u;

export interface ForwardTerms { to: string; until: Date; message: string }

export function checkForward(f: ForwardTerms, now = new Date()): void {
  if (typeof f.to !== 'string' || !FORWARD_TO.test(f.to)) throw fail('CATTERY_ERR_VALIDATION', 'to: a plain e-mail address (letters, digits and . _ + - before the @, a lowercase domain name after it)');
  const t = f.until instanceof Date ? f.until.getTime() : NaN;
  if (!Number.isFinite(t) || t <= now.getTime() || t > now.getTime() + FORWARD_MAX_DAYS * 86_400_000) {
    throw fail('CATTERY_ERR_VALIDATION', `until: a date in the next ${FORWARD_MAX_DAYS} days`);
  }
  const m = f.message;
  if (typeof m !== 'string' || !/[^ \n]/.test(m) || [...m].length > FORWARD_MESSAGE_MAX || LONE_SURROGATE.test(m) || NOT_PLAIN.test(m)
    || m.split('\n').length > FORWARD_LINES_MAX || m.split('\n').some((l) => Buffer.byteLength(l) > FORWARD_LINE_MAX)) {
    throw fail('CATTERY_ERR_VALIDATION', `message: 1 to ${FORWARD_MESSAGE_MAX} characters of plain text, at most ${FORWARD_LINES_MAX} lines of ${FORWARD_LINE_MAX} octets`);
  }
}

/** The account's sign-in and data go (as delete removes them) and its address forwards to `to` until `until`, each
 * sender told once where the person went (`message`). The row stays, `forwarding`, so that the name is not given to
 * anyone else meanwhile; deleteAccount ends it. A service that refuses changes nothing: the account keeps its state. */
export async function forwardAccount(deps: AccountDeps, slug: string, username: string, terms: ForwardTerms, actor: string): Promise<Account> {
  checkUsername(username);
  checkForward(terms);
  const acc = getAccount(deps.db, slug, username);
  if (acc.state !== 'active' && acc.state !== 'suspended' && acc.state !== 'forwarding') throw fail('CATTERY_ERR_CONFLICT', `Account "${username}" is ${acc.state}`);
  const until = terms.until.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const detail = { username, to: terms.to, until };
  try {
    await runOp(deps, getInstance(deps.db, slug), 'forward', { username, to: terms.to, until, message: terms.message });
  } catch (err) {
    deps.db.update(accounts).set({ lastError: (err as Error).message }).where(eq(accounts.id, acc.id)).run();
    journal(deps.db, slug, 'forward', actor, detail, 'failed', (err as Error).message);
    throw err;
  }
  deps.db.transaction((tx) => {
    tx.update(accounts).set({ state: 'forwarding', lastError: null, pending: null, usageBytes: 0, usageItems: 0, usageAt: new Date().toISOString(), updatedAt: new Date().toISOString() })
      .where(eq(accounts.id, acc.id)).run();
    journal(tx as unknown as Db, slug, 'forward', actor, detail, 'done');
  });
  return getAccount(deps.db, slug, username);
}

/** The instance is gone with its volumes (archived or purged): its accounts' rows go too. Called by the
 * reconciler inside its own transaction, so `db` may be that transaction. */
export function forgetInstanceAccounts(db: Db, instanceId: number): void {
  db.delete(accounts).where(eq(accounts.instanceId, instanceId)).run();
}

/** A person's accounts with the instance each lives in. */
export function accountsOfUser(db: Db, userId: number): { account: Account; instance: Instance }[] {
  return db.select().from(accounts).innerJoin(instances, eq(instances.id, accounts.instanceId))
    .where(eq(accounts.userId, userId)).orderBy(asc(instances.service)).all().map((r) => ({ account: r.accounts, instance: r.instances }));
}

/** Whether any instance has an account of this name (made by hand or by a sign-up). */
export function usernameTaken(db: Db, username: string): boolean {
  return !!db.select({ id: accounts.id }).from(accounts).where(eq(accounts.username, username)).get();
}

/** The account belongs to this person (a sign-up made it for them). */
export function assignAccount(db: Db, accountId: number, userId: number): void {
  db.update(accounts).set({ userId }).where(eq(accounts.id, accountId)).run();
}

/** Finish what could not be done at once: deletions, suspensions, resumptions and quota changes. Called on the
 * reconciler's timer. */
export async function retryPendingAccounts(deps: AccountDeps): Promise<void> {
  const rows = deps.db.select({ username: accounts.username, slug: instances.slug, state: accounts.state }).from(accounts)
    .innerJoin(instances, eq(accounts.instanceId, instances.id))
    .where(or(eq(accounts.state, 'deleting'), isNotNull(accounts.pending))).all();
  for (const r of rows) {
    // Each operation is bounded (exec.ts), so one hung service delays this loop by its deadline, never for good.
    const retry = r.state === 'deleting' ? deleteAccount(deps, r.slug, r.username, 'retry')
      : r.state === 'pending' ? applyQueuedCreate(deps, r.slug, r.username, 'retry')
      : applyPending(deps, r.slug, r.username, 'retry');
    await retry.catch((err: unknown) => deps.log.warn({ err, slug: r.slug, username: r.username }, 'account retry failed'));
  }
}

function publicPending(p: Account['pending']) {
  if (!p) return null;
  const out: { suspended?: boolean; quotaMb?: number; create?: boolean } = {};
  if (p.suspended !== undefined) out.suspended = p.suspended;
  if (p.quotaMb !== undefined) out.quotaMb = p.quotaMb;
  if (p.create) out.create = true;
  return out;
}

export function publicAccount(a: Account) {
  return {
    username: a.username, state: a.state, quotaMb: a.quotaMb, usageBytes: a.usageBytes, usageItems: a.usageItems, usageAt: a.usageAt,
    // Never the queued first password: only what a reader may see of a pending change.
    lastError: a.lastError, pending: publicPending(a.pending), createdAt: a.createdAt, updatedAt: a.updatedAt,
  };
}
