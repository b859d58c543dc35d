// A resident arriving from a peer (we are the destination; docs/migration-format.md). We pull, never take a push:
// the manifest first, signed by the key we pinned for the source, refused whole if it is larger than we accept; then
// each part, resumed from what is on disk after an interruption, its SHA-256 checked against the manifest; only when
// every part checks are the accounts created with our own account operations and filled by `import`; then a signed
// receipt of the checksums goes back. A retry with the same source and code picks up where the last attempt stopped.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { eq, inArray } from 'drizzle-orm';
import { assignAccount, checkPassword, createAccount, getAccount, importAccount, importLimitBytes, usernameTaken } from '../accounts/accounts.js';
import { accounts, signups, users, type Account, type User } from '../db/schema.js';
import { serviceSettingsMap } from '../governance/settings.js';
import { fail } from '../errors.js';
import { addressOf } from '../catalog/offer.js';
import { hashPassword } from '../identity/passwords.js';
import { setPasswordEverywhere } from '../identity/person-accounts.js';
import { findByLogin, isName, isReservedLogin, loginFromName } from '../identity/users.js';
import { getInstance, instanceForNewResidents } from '../orchestrator/instances.js';
import { serviceOffer } from '../publication/chatonsinfos.js';
import { hasRoom } from './directory.js';
import { peerOrigin } from './fetch.js';
import { downloadPart, getText, postJson } from './move-client.js';
import { checkManifest, codeTokenHash, manifestDeadline, normalizeCode, signMoveRequest, MOVE_FORMAT_VERSION, type Manifest, type Receipt } from './move-protocol.js';
import type { MoveDeps } from './moves-source.js';
import { verifyDocument } from './jws.js';
import { fedMovesIn, fedPeers, type FedMoveIn, type MovePart } from './schema.js';

export const MOVES_API = '/api/federation/moves';
const nowIso = () => new Date().toISOString();
const inDir = (d: Pick<MoveDeps, 'dir'>, id: number) => path.join(d.dir, `in-${id}`);

async function sha256Of(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface ArrivalResult { move: FedMoveIn; accounts: { service: string; slug: string; username: string }[] }

/** Pull, verify, import and acknowledge a move. `password` is the one the resident chose here for the new accounts. */
export async function arrive(d: MoveDeps, input: { source: string; code: string; password: string }): Promise<ArrivalResult> {
  const code = normalizeCode(input.code);
  if (!code) throw fail('CATTERY_ERR_VALIDATION', 'the transfer code is 32 letters and digits (groups of four)');
  // The password goes to every account made here: one the services would refuse is refused before a byte is pulled.
  checkPassword(input.password);
  // Each arrival also clears what arrivals that can no longer finish left on disk (their code expired at the source).
  try { sweepExpiredArrivals(d); } catch (err) { d.log.warn({ err }, 'sweeping expired arrivals failed'); }
  const key = codeTokenHash(code);
  if (d.arriving.has(key)) throw fail('CATTERY_ERR_BUSY', 'this move is already being pulled: wait for it to finish');
  d.arriving.add(key);
  try { return await pull(d, input, code); } finally { d.arriving.delete(key); }
}

async function pull(d: MoveDeps, input: { source: string; password: string }, code: string): Promise<ArrivalResult> {
  const source = peerOrigin(input.source);
  const peer = d.db.select().from(fedPeers).where(eq(fedPeers.url, source)).get();
  if (!peer || peer.state !== 'active' || !peer.pinnedJwk) throw fail('CATTERY_ERR_MOVE_REFUSED', `${source} is not a hoster this one has confirmed (or it is suspended): ask an administrator to federate with it first`);
  const cth = codeTokenHash(code);
  const me = await d.keys.current();
  const header = () => signMoveRequest(me, { iss: d.ownUrl, aud: source, cth });

  let row = d.db.select().from(fedMovesIn).where(eq(fedMovesIn.cth, cth)).get();
  if (row && row.sourceUrl !== source) throw fail('CATTERY_ERR_MOVE_REFUSED', 'this code belongs to a move from another hoster');
  if (row?.state === 'done') throw fail('CATTERY_ERR_CONFLICT', 'this move is already finished here');
  if (!row) {
    const jws = (await getText(d.fetch, `${source}${MOVES_API}/manifest`, await header(), 512 * 1024)).trim();
    const v = await verifyDocument(jws, 'moveManifest', peer.pinnedJwk).catch((err: Error) => { throw fail('CATTERY_ERR_MOVE_REFUSED', `the manifest: ${err.message}`); });
    const m = checkManifest(v.payload, source, d.ownUrl);
    const parts = plan(d, m);
    row = d.db.insert(fedMovesIn).values({ peerId: peer.id, sourceUrl: source, moveId: m.move, cth, manifestJws: jws, parts }).returning().get();
    d.log.info({ source, move: m.move, parts: parts.length }, 'move accepted, pulling');
  }
  const dir = inDir(d, row.id);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });

  if (row.state === 'pulling' || row.state === 'failed') {
    // Checked again at every attempt: between two, the names may have been given here (a sign-up, a mediator, an
    // administrator), and an account this move did not make is never filled nor handed over.
    for (const p of row.parts) namesFree(d, p, madeBy(row.parts));
    refuseClosed(d, row.parts);
    for (const p of row.parts) {
      const file = path.join(dir, `part-${p.index}.tar`);
      try {
        await downloadPart(d.fetch, `${source}${MOVES_API}/parts/${p.index}`, await header(), file, p.bytes);
      } catch (err) {
        d.db.update(fedMovesIn).set({ lastError: (err as Error).message.slice(0, 400), updatedAt: nowIso() }).where(eq(fedMovesIn.id, row.id)).run();
        throw err;
      }
      const sum = await sha256Of(file);
      if (sum !== p.sha256 || fs.statSync(file).size !== p.bytes) {
        // A part that does not check is no part: it is fetched again whole at the next attempt, and nothing is imported.
        fs.rmSync(file, { force: true });
        const why = `part ${p.index} (${p.service}) does not match the manifest's SHA-256: nothing was imported`;
        d.db.update(fedMovesIn).set({ state: 'failed', lastError: why, updatedAt: nowIso() }).where(eq(fedMovesIn.id, row.id)).run();
        throw fail('CATTERY_ERR_MOVE_REFUSED', why);
      }
    }
    // Every part checks: the accounts are made here with our own operations, then filled.
    for (const p of row.parts) {
      // The check and the call are one synchronous step up to createAccount's insert: no one takes the name between.
      namesFree(d, p, madeBy(row.parts));
      const made = await createAccount(d.accounts, p.slug, { username: p.username, password: input.password, quotaMb: p.quotaMb }, `move:${source}`);
      // Recorded at once: the accounts this move made are the only ones a retry, the import and personFor touch.
      row = recordMade(d, row.id, p.index, made.account.id);
      if (made.queued) throw fail('CATTERY_ERR_CONFLICT', `${p.slug} is still starting: try again in a minute`);
      await importAccount(d.accounts, p.slug, p.username, path.join(dir, `part-${p.index}.tar`), `move:${source}`);
    }
    row = d.db.update(fedMovesIn).set({ state: 'imported', lastError: '', updatedAt: nowIso() }).where(eq(fedMovesIn.id, row.id)).returning().get()!;
  }
  if (row.state === 'imported') {
    const receipt: Receipt = {
      v: MOVE_FORMAT_VERSION, iss: d.ownUrl, aud: source, move: row.moveId, iat: Math.floor(Date.now() / 1000),
      parts: row.parts.map((p) => {
        // The new address, for a service with addresses (mail): the source forwards the old one to it.
        const address = addressOf(d.accounts.catalog, getInstance(d.db, p.slug), p.username);
        return { index: p.index, service: p.service, username: p.username, sha256: p.sha256, ...(address ? { address } : {}) };
      }),
    };
    await postJson(d.fetch, `${source}${MOVES_API}/receipt`, await header(), { receipt: await d.keys.sign('moveReceipt', receipt) });
    row = d.db.update(fedMovesIn).set({ state: 'done', updatedAt: nowIso() }).where(eq(fedMovesIn.id, row.id)).returning().get()!;
    fs.rmSync(dir, { recursive: true, force: true });
    d.log.info({ source, move: row.moveId }, 'move finished, receipt accepted by the source');
  }
  return { move: row, accounts: row.parts.map((p) => ({ service: p.service, slug: p.slug, username: p.username })) };
}

/** The accounts of this arrival, by the ids recorded when this move made them (none before). */
export type ArrivalPart = MovePart & { accountId?: number };

function recordMade(d: MoveDeps, id: number, index: number, accountId: number): FedMoveIn {
  return d.db.transaction((tx) => {
    const row = tx.select().from(fedMovesIn).where(eq(fedMovesIn.id, id)).get()!;
    const parts = row.parts.map((p: ArrivalPart) => (p.index === index ? { ...p, accountId } : p));
    return tx.update(fedMovesIn).set({ parts, updatedAt: nowIso() }).where(eq(fedMovesIn.id, id)).returning().get()!;
  });
}

/** The accounts this move made here (one name may be its accounts' in several services). */
const madeBy = (parts: ArrivalPart[]): Set<number> => new Set(parts.flatMap((p) => (p.accountId === undefined ? [] : [p.accountId])));

/** A part's name free here for this move: no account of that name in any instance except those this move made, no
 * person of that login, not a role's address. A sign-up, a mediator or an administrator may take a name while an
 * arrival waits to be retried: the retry is then refused, never put into their account. */
function namesFree(d: MoveDeps, p: Pick<ArrivalPart, 'username'>, ours: Set<number> = new Set()): void {
  const taken = () => fail('CATTERY_ERR_CONFLICT', `the name ${p.username} is taken here`);
  if (isReservedLogin(p.username)) throw fail('CATTERY_ERR_MOVE_REFUSED', `${p.username} is an address this hoster keeps for its own roles`);
  const others = d.db.select({ id: accounts.id }).from(accounts).where(eq(accounts.username, p.username)).all().filter((a) => !ours.has(a.id));
  if (others.length) throw taken();
  // The arrival makes a person of that login here (arriveAsPerson) once every part is in: none exists before.
  if (findByLogin(d.db, p.username)) throw taken();
}

/** A service a newcomer can get here now, as a sign-up would: open (not closed by a decision, not for members only)
 * and not FULL by capacity (publication/chatonsinfos.ts's serviceOffer, the reading the sign-up page and our hoster
 * document use), with the account operations a move needs. And sign-ups approved by an administrator take no
 * arrival: an approval comes after the code expired at the source (docs/migration-format.md). */
function refuseClosed(d: MoveDeps, parts: Pick<MovePart, 'service'>[]): void {
  if (d.newcomers.approval !== 'auto') {
    throw fail('CATTERY_ERR_MOVE_REFUSED', 'this hoster approves each newcomer by hand and takes no arrival: sign up here instead, then move your data yourself');
  }
  for (const p of parts) {
    const spec = d.accounts.catalog.services.get(p.service)?.manifest;
    if (!spec?.accounts?.operations.import || !spec.accounts.operations.create) throw fail('CATTERY_ERR_MOVE_REFUSED', `this hoster does not take ${p.service} accounts in`);
    if (!hasRoom(serviceOffer({ db: d.db, catalog: d.accounts.catalog, config: d.newcomers.config }, p.service))) {
      throw fail('CATTERY_ERR_MOVE_REFUSED', `this hoster does not take ${p.service} accounts in: it is closed to newcomers or full`);
    }
  }
}

/** The quota a newcomer gets here for a service (the association's setting, else CATTERY_DEFAULT_QUOTA_MB): what an
 * arrival gets too, whatever the source gave. The manifest's quota is the source's, bounded by checkManifest. */
const quotaHere = (d: MoveDeps, service: string): number => serviceSettingsMap(d.db).get(service)?.defaultQuotaMb ?? d.newcomers.defaultQuotaMb;

/** Where each part goes here, decided before a byte of any part is fetched: a service open to newcomers here, a name
 * free here, the quota a newcomer gets here, and sizes we accept (the whole bundle, and each part as our own import
 * into that quota would take it). */
function plan(d: MoveDeps, m: Manifest): MovePart[] {
  const total = m.parts.reduce((n, p) => n + p.bytes, 0);
  if (total > d.maxBundleBytes) throw fail('CATTERY_ERR_TOO_LARGE', `the bundle (${total} bytes) is larger than this hoster accepts (${d.maxBundleBytes} bytes)`);
  refuseClosed(d, m.parts);
  return m.parts.map((p) => {
    const inst = instanceForNewResidents(d.db, p.service);
    if (!inst) throw fail('CATTERY_ERR_MOVE_REFUSED', `this hoster does not take ${p.service} accounts in`);
    const quotaMb = quotaHere(d, p.service);
    if (p.bytes > importLimitBytes(d.accounts, quotaMb)) throw fail('CATTERY_ERR_TOO_LARGE', `part ${p.index} (${p.service}) is larger than the quota a newcomer gets here (${quotaMb} MB) allows`);
    namesFree(d, p);
    return { ...p, quotaMb, slug: inst.slug };
  });
}

/** The manifest's payload as we verified it when the move was accepted (kept on the row: our proof of what we were
 * given). Read again only for what it says, never trusted anew. */
function manifestOf(row: FedMoveIn): Partial<Manifest> {
  try { return JSON.parse(Buffer.from(row.manifestJws.split('.')[1] ?? '', 'base64url').toString()) as Partial<Manifest>; } catch { return {}; }
}

export interface Newcomer { termsVersion: string; lang: 'fr' | 'en' }

/** The destination's sign-up page: the move pulled, checked and imported (`arrive`), then the person made here, given
 * the accounts and the password they chose (for the site and every account), with the terms version they accepted
 * recorded as a sign-up of their own. A move finished here whose person was not made (a crash between the two) is
 * finished by the same code again; one whose accounts already have their person gives that person. */
export async function arriveAsPerson(d: MoveDeps, input: { source: string; code: string; password: string }, who: Newcomer): Promise<{ arrival: ArrivalResult; user: User }> {
  const code = normalizeCode(input.code);
  const earlier = code ? d.db.select().from(fedMovesIn).where(eq(fedMovesIn.cth, codeTokenHash(code))).get() : undefined;
  // Accounts an earlier attempt made (an import or the receipt failed after them) kept the password given then.
  const madeBefore = !!earlier && earlier.parts.some((p: ArrivalPart) => p.accountId !== undefined);
  let arrival: ArrivalResult;
  if (earlier?.state === 'done' && earlier.sourceUrl === peerOrigin(input.source) && unclaimed(d, earlier)) {
    arrival = { move: earlier, accounts: earlier.parts.map((p) => ({ service: p.service, slug: p.slug, username: p.username })) };
  } else {
    arrival = await arrive(d, input);
  }
  const user = await personFor(d, arrival, input.password, who);
  // The password chosen now is the person's everywhere, as after a change on "my services".
  if (madeBefore) {
    const { failed } = await setPasswordEverywhere(d.accounts, user, input.password, `move:${arrival.move.sourceUrl}`);
    if (failed.length) d.log.warn({ login: user.login, failed }, 'moved resident: the password chosen at the retry did not reach every account');
  }
  return { arrival, user };
}

/** The accounts this move made here, by the ids it recorded: never an account found by its name. */
function accountRows(d: MoveDeps, row: FedMoveIn): Account[] {
  return row.parts.map((p: ArrivalPart) => {
    const a = p.accountId === undefined ? undefined : d.db.select().from(accounts).where(eq(accounts.id, p.accountId)).get();
    // Gone, or no longer the name the move made (a row reused): not ours to give anyone.
    if (!a || a.username !== p.username || a.id !== getAccount(d.db, p.slug, p.username).id) throw fail('CATTERY_ERR_CONFLICT', `the account ${p.username} this move made here is gone`);
    return a;
  });
}
const unclaimed = (d: MoveDeps, row: FedMoveIn) => { try { return accountRows(d, row).every((a) => a.userId === null); } catch { return false; } };

async function personFor(d: MoveDeps, r: ArrivalResult, password: string, who: Newcomer): Promise<User> {
  const rows = accountRows(d, r.move);
  // Accounts this move made, all with one person already: that person is this move's (made by an earlier attempt
  // whose page did not come back). Anything else is refused, never handed over.
  const owners = new Set(rows.map((a) => a.userId));
  if (owners.size === 1 && !owners.has(null)) {
    const u = d.db.select().from(users).where(eq(users.id, [...owners][0]!)).get();
    if (u) return u;
  }
  if (!owners.has(null) || owners.size > 1) throw fail('CATTERY_ERR_CONFLICT', 'the accounts this move made here already belong to someone');
  const m = manifestOf(r.move);
  const given = typeof m.resident?.name === 'string' ? m.resident.name.trim() : '';
  const first = r.accounts[0]?.username ?? '';
  // The person's login is their accounts' name when it is free as a login here (plan() checked it on the first
  // attempt); otherwise one made from their name, as a sign-up would.
  const login = first && !findByLogin(d.db, first) && !isReservedLogin(first) ? first : loginFromName(d.db, given || first, (l) => usernameTaken(d.db, l));
  const name = isName(given) ? given : login;
  const passwordHash = await hashPassword(password);
  const at = new Date().toISOString();
  const user = d.db.transaction((tx) => {
    const u = tx.insert(users).values({ login, name, roles: ['resident'], passwordHash, status: 'active', lang: who.lang }).returning().get();
    tx.insert(signups).values({
      userId: u.id, services: [...new Set(r.accounts.map((a) => a.service))], termsVersion: who.termsVersion, channel: 'self',
      consentAt: at, createdAt: at, status: 'approved', decidedBy: `move:${r.move.sourceUrl}`, decidedAt: at,
    }).run();
    return u;
  });
  for (const a of rows) assignAccount(d.db, a.id, user.id);
  d.log.info({ source: r.move.sourceUrl, move: r.move.moveId, login }, 'moved resident made a person here');
  return user;
}

const SWEPT = 'the code expired at the source: downloads removed';
const UNOWNED = 'imported, but the source took no receipt: the accounts made here are kept, owned by no one, for an administrator to remove';

/** When no code can open this arrival at its source any more: the manifest's `exp`, but never later than its code's
 * lifetime from its signature (a peer does not decide how long we keep its downloads). */
function deadlineOf(row: FedMoveIn): number | undefined {
  const m = manifestOf(row);
  if (typeof m.exp !== 'number') return undefined;
  return typeof m.iat === 'number' ? manifestDeadline({ iat: m.iat, exp: m.exp }) : m.exp;
}

/** Arrivals that can no longer finish: not done, and their code expired at the source, so the source serves nothing
 * more for them and takes no receipt. Their downloads go (up to the whole bundle on disk each); the row stays, failed,
 * with why: our record of what we were offered. An arrival that was imported but whose receipt the source refused
 * (cancelled there, or expired during a long pull) had its accounts made here: they are not deleted by a timer (the
 * source still has the data, a retry by hand is possible) but the row says so and the log warns, for an administrator. */
export function sweepExpiredArrivals(d: Pick<MoveDeps, 'db' | 'dir' | 'log' | 'arriving'>, now = new Date()): number {
  const stale = d.db.select().from(fedMovesIn).where(inArray(fedMovesIn.state, ['pulling', 'failed', 'imported'])).all()
    // One being pulled right now is left to finish or fail on its own.
    .filter((row) => !d.arriving.has(row.cth) && !row.lastError.includes(SWEPT))
    .filter((row) => { const end = deadlineOf(row); return end !== undefined && end * 1000 < now.getTime(); });
  for (const row of stale) {
    fs.rmSync(inDir(d, row.id), { recursive: true, force: true });
    const why = row.state === 'imported' ? `${SWEPT}; ${UNOWNED}` : SWEPT;
    if (row.state === 'imported') d.log.warn({ source: row.sourceUrl, move: row.moveId, accounts: row.parts.map((p) => `${p.slug}/${p.username}`) }, UNOWNED);
    // The reason goes first so that a long earlier one cannot push it out of the column's bound.
    d.db.update(fedMovesIn).set({ state: 'failed', lastError: `${why}${row.lastError ? `; before: ${row.lastError}` : ''}`.slice(0, 400), updatedAt: nowIso() })
      .where(eq(fedMovesIn.id, row.id)).run();
  }
  if (stale.length) d.log.info({ arrivals: stale.length }, 'expired arrivals swept: downloads removed');
  return stale.length;
}
