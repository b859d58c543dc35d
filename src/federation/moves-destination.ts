// A resident arriving from a peer (we are the destination; docs/migration-format.md). We pull, never take a push:
// the manifest first, signed by the key we pinned for the source, refused whole if it is larger than we accept; then
// each part, resumed from what is on disk after an interruption, its SHA-256 checked against the manifest; only when
// every part checks are the accounts created with our own account operations and filled by `import`; then a signed
// receipt of the checksums goes back. A retry with the same source and code picks up where the last attempt stopped.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { eq, inArray } from 'drizzle-orm';
import { assignAccount, createAccount, getAccount, importAccount, importLimitBytes, usernameTaken } from '../accounts/accounts.js';
import { signups, users, type User } from '../db/schema.js';
import { fail } from '../errors.js';
import { addressOf } from '../catalog/offer.js';
import { hashPassword } from '../identity/passwords.js';
import { setPasswordEverywhere } from '../identity/person-accounts.js';
import { findByLogin, isName, isReservedLogin, loginFromName } from '../identity/users.js';
import { getInstance, instanceForNewResidents } from '../orchestrator/instances.js';
import { peerOrigin } from './fetch.js';
import { downloadPart, getText, postJson } from './move-client.js';
import { checkManifest, codeTokenHash, normalizeCode, signMoveRequest, MOVE_FORMAT_VERSION, type Manifest, type Receipt } from './move-protocol.js';
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
      const made = await createAccount(d.accounts, p.slug, { username: p.username, password: input.password, quotaMb: p.quotaMb }, `move:${source}`);
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

/** Where each part goes here, decided before a byte of any part is fetched: a service we run for newcomers, a name
 * free here, and sizes we accept (the whole bundle, and each part as our own import would take it). */
function plan(d: MoveDeps, m: Manifest): MovePart[] {
  const total = m.parts.reduce((n, p) => n + p.bytes, 0);
  if (total > d.maxBundleBytes) throw fail('CATTERY_ERR_TOO_LARGE', `the bundle (${total} bytes) is larger than this hoster accepts (${d.maxBundleBytes} bytes)`);
  return m.parts.map((p) => {
    const inst = instanceForNewResidents(d.db, p.service);
    if (!inst || !d.accounts.catalog.services.get(p.service)?.manifest.accounts?.operations.import) {
      throw fail('CATTERY_ERR_MOVE_REFUSED', `this hoster does not take ${p.service} accounts in`);
    }
    if (p.bytes > importLimitBytes(d.accounts, p.quotaMb)) throw fail('CATTERY_ERR_TOO_LARGE', `part ${p.index} (${p.service}) is larger than its quota allows here`);
    // Checked on the first attempt only (a retry finds the row and its own accounts): the name is someone else's.
    // A person's login is taken too: the arrival makes a person of that name here (arriveAsPerson).
    if (usernameTaken(d.db, p.username) || findByLogin(d.db, p.username)) throw fail('CATTERY_ERR_CONFLICT', `the name ${p.username} is taken here`);
    return { ...p, slug: inst.slug };
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
  const madeBefore = !!earlier && earlier.parts.some((p) => { try { getAccount(d.db, p.slug, p.username); return true; } catch { return false; } });
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

const accountRows = (d: MoveDeps, r: Pick<ArrivalResult, 'accounts'> | FedMoveIn) =>
  ('accounts' in r ? r.accounts : r.parts).map((a) => getAccount(d.db, a.slug, a.username));
const unclaimed = (d: MoveDeps, row: FedMoveIn) => { try { return accountRows(d, row).every((a) => a.userId === null); } catch { return false; } };

async function personFor(d: MoveDeps, r: ArrivalResult, password: string, who: Newcomer): Promise<User> {
  const rows = accountRows(d, r);
  const owner = rows.find((a) => a.userId !== null)?.userId;
  if (owner) {
    const u = d.db.select().from(users).where(eq(users.id, owner)).get();
    if (u) return u;
  }
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

/** Arrivals that can no longer finish: not done, and their code expired at the source (the manifest's `exp`), so the
 * source serves nothing more for them. Their downloads go (up to the whole bundle on disk each); the row stays, failed,
 * with why: our record of what we were offered. */
export function sweepExpiredArrivals(d: Pick<MoveDeps, 'db' | 'dir' | 'log' | 'arriving'>, now = new Date()): number {
  const stale = d.db.select().from(fedMovesIn).where(inArray(fedMovesIn.state, ['pulling', 'failed'])).all()
    // One being pulled right now is left to finish or fail on its own.
    .filter((row) => !d.arriving.has(row.cth) && !row.lastError.includes(SWEPT))
    .filter((row) => { const exp = manifestOf(row).exp; return typeof exp === 'number' && exp * 1000 < now.getTime(); });
  for (const row of stale) {
    fs.rmSync(inDir(d, row.id), { recursive: true, force: true });
    // The reason goes first so that a long earlier one cannot push it out of the column's bound.
    d.db.update(fedMovesIn).set({ state: 'failed', lastError: `${SWEPT}${row.lastError ? `; before: ${row.lastError}` : ''}`.slice(0, 400), updatedAt: nowIso() })
      .where(eq(fedMovesIn.id, row.id)).run();
  }
  if (stale.length) d.log.info({ arrivals: stale.length }, 'expired arrivals swept: downloads removed');
  return stale.length;
}
