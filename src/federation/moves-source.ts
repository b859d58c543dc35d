// A resident leaving for a peer (we are the source; docs/migration-format.md). Starting a move stages every account's
// export in a 0600 file and signs a manifest of them; the destination then pulls them with requests signed by the
// key we pinned for it and the code's hash; its signed receipt says it verified them; only then, and once the
// resident confirms, are the accounts deleted here. Nothing here deletes anything before that.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { and, eq, lt } from 'drizzle-orm';
import { FORWARD_TO, accountsOfUser, deleteAccount, exportToFile, forwardAccount, type AccountDeps } from '../accounts/accounts.js';
import { addressOf } from '../catalog/offer.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { accounts, instances, users } from '../db/schema.js';
import { fail } from '../errors.js';
import { getSettings } from '../governance/settings.js';
import type { Logger } from '../log.js';
import type { FetchOptions } from './fetch.js';
import { verifyDocument } from './jws.js';
import type { KeyStore } from './keys.js';
import {
  CODE_TTL_MS, MOVE_FORMAT_VERSION, REQUEST_WINDOW_S, checkMoveRequest, claimedIssuer, codeTokenHash, newTransferCode, storedCodeHash,
  type Manifest, type Receipt,
} from './move-protocol.js';
import { getPeer } from './peers.js';
import { fedMoveJtis, fedMovesOut, fedPeers, type FedMoveOut, type FedPeer, type MovePart } from './schema.js';

export interface MoveDeps {
  db: Db; accounts: AccountDeps; keys: KeyStore; log: Logger;
  /** Our origin (CATTERY_PUBLIC_URL): the `aud` of requests to us, the `iss` of what we sign. */
  ownUrl: string;
  /** `<data>/moves`: staged parts (out-<id>) and downloads (in-<id>), 0700. */
  dir: string;
  fetch: FetchOptions;
  /** The largest bundle this hoster takes in (CATTERY_MOVE_MAX_MB). */
  maxBundleBytes: number;
  /** Arrivals under way, by code hash: a second attempt with the same code waits for none, it is refused (two
   * downloads into one file would corrupt it). */
  arriving: Set<string>;
  /** What a newcomer gets here, an arrival as a sign-up (CATTERY_SIGNUP_APPROVAL, CATTERY_DEFAULT_QUOTA_MB; the
   * config for the services' registration and load). */
  newcomers: { approval: Config['signupApproval']; defaultQuotaMb: number; config: Config };
}

const refuse = (why: string): never => { throw fail('CATTERY_ERR_MOVE_REFUSED', why); };
/** The longest a start's exports may take before its placeholder counts as abandoned (a crash mid-start): each export
 * is bounded by ten minutes (accounts.ts exportLimits), a person has a few accounts. */
const PREPARING_MS = 3600_000;
const nowIso = () => new Date().toISOString();

export const outDir = (d: Pick<MoveDeps, 'dir'>, id: string) => path.join(d.dir, `out-${id}`);
const partFile = (d: Pick<MoveDeps, 'dir'>, id: string, index: number) => path.join(outDir(d, id), `part-${index}.tar`);

async function sha256Of(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Start moving a person's accounts to an active peer: each account's export staged, the manifest signed, the code
 * returned (once: only its hash is kept). `consent` is what a mediator recorded of the resident's agreement. */
export async function startMove(d: MoveDeps, input: { userId: number; peerId: number; actor: string; consent?: string }): Promise<{ move: FedMoveOut; code: string }> {
  const peer = getPeer(d.db, input.peerId);
  if (peer.state !== 'active') throw fail('CATTERY_ERR_CONFLICT', 'a move goes to an active peer only (its fingerprint confirmed, not suspended)');
  const user = d.db.select().from(users).where(eq(users.id, input.userId)).get();
  if (!user) throw fail('CATTERY_ERR_NOT_FOUND', `No person ${input.userId}`);
  const movable = accountsOfUser(d.db, input.userId)
    .filter(({ account, instance }) => (account.state === 'active' || account.state === 'suspended')
      && d.accounts.catalog.services.get(instance.service)?.manifest.accounts?.operations.export);
  if (!movable.length) throw fail('CATTERY_ERR_CONFLICT', 'this person has no account that can be moved');
  const id = crypto.randomBytes(16).toString('base64url');
  // The move is claimed before the exports (minutes of awaits), in one synchronous step with the check: a second
  // start meanwhile finds it under way. The placeholder's code hash is random (no code opens it), its expiry the
  // longest the exports may take, so a crash leaves it for sweepExpiredMoves; it is removed if an export fails.
  const claimed = d.db.transaction((tx) => {
    const busy = tx.select().from(fedMovesOut).where(eq(fedMovesOut.userId, input.userId)).all()
      .find((m) => (m.state === 'open' || m.state === 'transferring' || m.state === 'received') && m.expiresAt > nowIso());
    if (busy) return false;
    tx.insert(fedMovesOut).values({
      id, userId: input.userId, peerId: peer.id, peerUrl: peer.url, codeHash: crypto.randomBytes(32).toString('hex'),
      expiresAt: new Date(Date.now() + PREPARING_MS).toISOString(), startedBy: input.actor, consent: input.consent ?? '', parts: [], manifestJws: '',
    }).run();
    return true;
  });
  if (!claimed) throw fail('CATTERY_ERR_CONFLICT', 'a move of these accounts is already under way: finish or cancel it first');
  const parts: MovePart[] = [];
  try {
    fs.mkdirSync(d.dir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(outDir(d, id), { mode: 0o700 });
    for (const [index, { account, instance }] of movable.entries()) {
      const file = partFile(d, id, index);
      // Docker is called here, outside any transaction; the row is filled once every part is staged.
      await exportToFile(d.accounts, instance, account.username, account.quotaMb, file);
      parts.push({ index, service: instance.service, slug: instance.slug, username: account.username, quotaMb: account.quotaMb,
        bytes: fs.statSync(file).size, sha256: await sha256Of(file) });
    }
    return await finishStart(d, { id, peer, user, parts, actor: input.actor });
  } catch (err) {
    fs.rmSync(outDir(d, id), { recursive: true, force: true });
    d.db.delete(fedMovesOut).where(and(eq(fedMovesOut.id, id), eq(fedMovesOut.manifestJws, ''))).run();
    throw err;
  }
}

/** Every part staged: the code made, the manifest signed, the placeholder row filled. */
async function finishStart(d: MoveDeps, s: { id: string; peer: FedPeer; user: { name: string }; parts: MovePart[]; actor: string }): Promise<{ move: FedMoveOut; code: string }> {
  const { id, peer, user, parts } = s;
  const code = newTransferCode();
  const expiresAt = new Date(Date.now() + CODE_TTL_MS);
  const manifest: Manifest = {
    v: MOVE_FORMAT_VERSION, iss: d.ownUrl, aud: peer.url, iat: Math.floor(Date.now() / 1000), exp: Math.floor(expiresAt.getTime() / 1000),
    move: id, resident: { name: user.name }, parts: parts.map(({ slug: _, ...p }) => p),
  };
  const manifestJws = await d.keys.sign('moveManifest', manifest);
  const move = d.db.update(fedMovesOut).set({ codeHash: storedCodeHash(codeTokenHash(code)), expiresAt: expiresAt.toISOString(), parts, manifestJws, updatedAt: nowIso() })
    .where(and(eq(fedMovesOut.id, id), eq(fedMovesOut.state, 'open'))).returning().get();
  // Cancelled or swept while the exports ran: nothing to give a code for.
  if (!move || move.state !== 'open') throw fail('CATTERY_ERR_CONFLICT', 'the move was cancelled while it was being prepared');
  d.log.info({ move: id, peer: peer.url, parts: parts.length, actor: s.actor }, 'move started');
  return { move, code };
}

/** A destination's request, checked whole: the peer it says it is must be one we pinned and that is active, the
 * signature that pinned key's, the audience us, the time now, the jti never seen, the code one of an open move bound
 * to that same peer and not expired. The first good request claims the move for the transfer. */
export async function authenticateMoveRequest(d: MoveDeps, header: string | undefined, o: { receipt?: boolean } = {}): Promise<{ peer: FedPeer; move: FedMoveOut }> {
  if (!header) refuse('a signed move request is required');
  const iss = claimedIssuer(header!);
  const peer = d.db.select().from(fedPeers).where(eq(fedPeers.url, iss)).get();
  if (!peer || !peer.pinnedJwk) refuse('the request comes from a hoster whose key is not pinned here');
  if (peer!.state !== 'active') refuse('the request comes from a peer that is suspended here');
  const req = await checkMoveRequest(header!, peer!.pinnedJwk!, peer!.url, d.ownUrl);
  const move = d.db.select().from(fedMovesOut).where(eq(fedMovesOut.codeHash, storedCodeHash(req.cth))).get();
  // The jti is recorded (one statement: the primary key refuses a second insert) before anything is served.
  const now = new Date();
  d.db.delete(fedMoveJtis).where(lt(fedMoveJtis.expiresAt, now.toISOString())).run();
  const fresh = d.db.insert(fedMoveJtis).values({ jti: req.jti, expiresAt: new Date(now.getTime() + 2 * REQUEST_WINDOW_S * 1000).toISOString() })
    .onConflictDoNothing().returning().get();
  if (!fresh) refuse('this request was already used (replay)');
  if (!move) refuse('no move has this code');
  if (move!.peerId !== peer!.id) refuse('this code was given for another hoster');
  // A receipt sent again (the destination crashed before it recorded ours as accepted) is the one thing a received
  // move still takes; it opens no part or manifest.
  const usable = move!.state === 'open' || move!.state === 'transferring' || (o.receipt === true && move!.state === 'received');
  if (!usable) refuse(`this code was already used (the move is ${move!.state})`);
  // A receipt sent again for a move already received is taken after the code's expiry too: the destination imported
  // in time and only our answer was lost; refused, its arrival would hang with accounts made for nothing.
  if (move!.expiresAt <= now.toISOString() && !(o.receipt === true && move!.state === 'received')) refuse('this code has expired');
  if (move!.state === 'open') d.db.update(fedMovesOut).set({ state: 'transferring', updatedAt: nowIso() }).where(and(eq(fedMovesOut.id, move!.id), eq(fedMovesOut.state, 'open'))).run();
  return { peer: peer!, move: move! };
}

/** A staged part: its file and size, for the route to serve with Range. */
export function stagedPart(d: MoveDeps, move: FedMoveOut, index: number): { file: string; bytes: number } {
  const p = move.parts[index];
  if (!p) throw fail('CATTERY_ERR_NOT_FOUND', `No part ${index} in this move`);
  return { file: partFile(d, move.id, index), bytes: p.bytes };
}

/** The destination's receipt: signed by the peer's pinned key, about this move, listing exactly our parts' checksums.
 * From then on the code opens nothing, and the resident may confirm. */
export async function acceptReceipt(d: MoveDeps, peer: FedPeer, move: FedMoveOut, receiptJws: string): Promise<FedMoveOut> {
  const v = await verifyDocument(receiptJws, 'moveReceipt', peer.pinnedJwk!).catch((err: Error) => refuse(`the receipt: ${err.message}`));
  const r = v.payload as Partial<Receipt>;
  if (r.iss !== peer.url || r.aud !== d.ownUrl || r.move !== move.id) refuse('the receipt is about another move');
  const want = move.parts.map((p) => `${p.index}:${p.service}:${p.username}:${p.sha256}`).join(',');
  const got = Array.isArray(r.parts) ? r.parts.map((p) => `${p.index}:${p.service}:${p.username}:${p.sha256}`).join(',') : '';
  if (got !== want) refuse('the receipt does not list the checksums of the parts we sent');
  if (move.state === 'received') return move;
  // The new addresses the destination vouches for (mail), kept with our parts for the forward at the confirmation.
  // One that is not a plain address is left out: that account is then deleted, never forwarded to it.
  const parts: OutPart[] = move.parts.map((p, i) => {
    const a = r.parts![i]!.address;
    return typeof a === 'string' && FORWARD_TO.test(a) ? { ...p, newAddress: a } : p;
  });
  const saved = d.db.update(fedMovesOut).set({ state: 'received', receiptJws, parts, updatedAt: nowIso() })
    .where(and(eq(fedMovesOut.id, move.id), eq(fedMovesOut.state, 'transferring'))).returning().get();
  if (!saved) refuse(`the move is ${getMove(d.db, move.id).state}`);
  d.log.info({ move: move.id, peer: peer.url }, 'move received by the destination');
  return saved!;
}

export function getMove(db: Db, id: string): FedMoveOut {
  const m = db.select().from(fedMovesOut).where(eq(fedMovesOut.id, id)).get();
  if (!m) throw fail('CATTERY_ERR_NOT_FOUND', `No move ${id}`);
  return m;
}

export function movesOf(db: Db, userId: number): FedMoveOut[] {
  return db.select().from(fedMovesOut).where(eq(fedMovesOut.userId, userId)).all();
}

/** A part of one of our moves as we keep it: `newAddress` from the destination's receipt (mail), `forwardUntil` once
 * the confirmation decided to forward the old address there, `forwardEnded` once that forward is over (the account
 * deleted). The same JSON column as the staged parts. */
export type OutPart = MovePart & { newAddress?: string; forwardUntil?: string; forwardEnded?: boolean };
const outParts = (m: FedMoveOut) => m.parts as OutPart[];

/** What the sender of a message to the old address reads once (the Sieve vacation's body): French, then English. */
export function forwardMessage(oldAddress: string, newAddress: string, until: Date): string {
  const day = until.toISOString().slice(0, 10);
  // One address per line, each line short (FORWARD_LINE_MAX octets at most: an address may have 254).
  return [
    `${oldAddress} a déménagé chez un autre hébergeur. Nouvelle adresse :`,
    newAddress,
    `Votre message y a été transmis ; ce renvoi cesse le ${day}. Merci d'écrire désormais à la nouvelle adresse.`,
    '',
    `${oldAddress} has moved to another host. New address:`,
    newAddress,
    `Your message was forwarded there; this forward ends on ${day}. Please write to the new address from now on.`,
  ].join('\n');
}

/** Forward one part's old address to its new one until `until` (the part says both). */
async function forwardPart(d: MoveDeps, p: OutPart, actor: string): Promise<void> {
  const inst = d.db.select().from(instances).where(eq(instances.slug, p.slug)).get();
  const old = inst ? addressOf(d.accounts.catalog, inst, p.username) : undefined;
  const until = new Date(p.forwardUntil!);
  await forwardAccount(d.accounts, p.slug, p.username, { to: p.newAddress!, until, message: forwardMessage(old ?? p.username, p.newAddress!, until) }, actor);
}

/** The resident confirms, after the receipt. A mail account whose new address the receipt gave is forwarded there
 * for the association's period (governance `forwardDays`; its sign-in and data go at once, as delete removes them),
 * then deleted by `sweepForwards`; every other account is deleted now (its own delete operation). Then the staged
 * parts go. Before the receipt nothing is deleted, whoever asks. */
export async function confirmMove(d: MoveDeps, id: string, userId: number, actor: string): Promise<FedMoveOut> {
  const m = getMove(d.db, id);
  if (m.userId !== userId) throw fail('CATTERY_ERR_NOT_FOUND', `No move ${id}`);
  if (m.state !== 'received') throw fail('CATTERY_ERR_CONFLICT', m.state === 'done' ? 'this move is already finished' : 'the destination has not sent its receipt yet: nothing is deleted before it');
  const days = getSettings(d.db).forwardDays;
  const until = new Date(Date.now() + days * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const forwards = (p: OutPart) => days > 0 && p.newAddress !== undefined
    && d.accounts.catalog.services.get(p.service)?.manifest.accounts?.operations.forward !== undefined;
  // The decision is written first (which parts forward, until when), the services are called after: a forward the
  // service cannot do now is tried again by sweepForwards, from this record.
  const parts = outParts(m).map((p) => (forwards(p) ? { ...p, forwardUntil: until } : p));
  const done = d.db.update(fedMovesOut).set({ state: 'done', parts, updatedAt: nowIso() })
    .where(and(eq(fedMovesOut.id, id), eq(fedMovesOut.state, 'received'))).returning().get();
  if (!done) throw fail('CATTERY_ERR_CONFLICT', 'this move is already finished');
  for (const p of parts) {
    const who = `${actor} (move ${id})`;
    if (p.forwardUntil) {
      await forwardPart(d, p, who).catch((err: unknown) => d.log.warn({ err, move: id, slug: p.slug }, 'forward not done now: tried again on the federation timer'));
    } else {
      // A delete the service cannot do now is left `deleting` and finished by the retry timer (accounts.ts).
      await deleteAccount(d.accounts, p.slug, p.username, who);
    }
  }
  fs.rmSync(outDir(d, id), { recursive: true, force: true });
  d.log.info({ move: id, forwarded: parts.filter((p) => p.forwardUntil).length }, 'move confirmed, accounts deleted or forwarded here');
  return done;
}

/** Forwards of finished moves, on the federation's timer: one whose period is over is ended (the account deleted
 * for good, journaled as its delete, with this move named); one the service could not do at the confirmation is
 * tried again. Level-triggered: each pass reads what is recorded and does what is still owed. */
export async function sweepForwards(d: MoveDeps, now = new Date()): Promise<number> {
  const moves = d.db.select().from(fedMovesOut).where(eq(fedMovesOut.state, 'done')).all()
    .filter((m) => outParts(m).some((p) => p.forwardUntil && !p.forwardEnded));
  let ended = 0;
  for (const m of moves) {
    for (const p of outParts(m).filter((x) => x.forwardUntil && !x.forwardEnded)) {
      const acc = d.db.select({ state: accounts.state }).from(accounts).innerJoin(instances, eq(instances.id, accounts.instanceId))
        .where(and(eq(instances.slug, p.slug), eq(accounts.username, p.username))).get();
      let over = !acc;
      try {
        if (acc && p.forwardUntil! <= now.toISOString()) {
          over = await deleteAccount(d.accounts, p.slug, p.username, `move ${m.id}: forward period over`);
          if (over) d.log.info({ move: m.id, slug: p.slug }, 'forward period over: the old address is gone');
        } else if (acc && (acc.state === 'active' || acc.state === 'suspended')) {
          await forwardPart(d, p, `move ${m.id}: forward retried`);
        }
      } catch (err) {
        d.log.warn({ err, move: m.id, slug: p.slug }, 'forward sweep: not done now, tried again at the next pass');
      }
      if (!over) continue;
      ended++;
      // Read again and written in one synchronous step: only this part's flag changes.
      const cur = outParts(getMove(d.db, m.id)).map((x) => (x.index === p.index ? { ...x, forwardEnded: true } : x));
      d.db.update(fedMovesOut).set({ parts: cur, updatedAt: nowIso() }).where(eq(fedMovesOut.id, m.id)).run();
    }
  }
  return ended;
}

/** Cancelled by the resident before the receipt: the code opens nothing, the staged parts go, the accounts stay. */
export function cancelMove(d: MoveDeps, id: string, userId: number): FedMoveOut {
  const m = getMove(d.db, id);
  if (m.userId !== userId) throw fail('CATTERY_ERR_NOT_FOUND', `No move ${id}`);
  if (m.state !== 'open' && m.state !== 'transferring') throw fail('CATTERY_ERR_CONFLICT', `the move is ${m.state}`);
  fs.rmSync(outDir(d, id), { recursive: true, force: true });
  return d.db.update(fedMovesOut).set({ state: 'cancelled', updatedAt: nowIso() }).where(eq(fedMovesOut.id, id)).returning().get()!;
}

/** Moves whose code expired before a receipt came: cancelled, their staged parts removed (the accounts stay, nothing
 * was deleted). Run on the federation's timer; a receipt-less move holds up to twice its accounts' quota on disk. */
export function sweepExpiredMoves(d: MoveDeps, now = new Date()): number {
  const expired = d.db.select().from(fedMovesOut).where(lt(fedMovesOut.expiresAt, now.toISOString())).all()
    .filter((m) => m.state === 'open' || m.state === 'transferring');
  for (const m of expired) {
    fs.rmSync(outDir(d, m.id), { recursive: true, force: true });
    d.db.update(fedMovesOut).set({ state: 'cancelled', updatedAt: nowIso() }).where(and(eq(fedMovesOut.id, m.id), eq(fedMovesOut.state, m.state))).run();
    d.log.info({ move: m.id }, 'move expired without a receipt: cancelled, staged parts removed');
  }
  return expired.length;
}
