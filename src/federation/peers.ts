// Peers: other catteries an administrator added by URL. Trust on first use, checked out of band: adding fetches the
// peer's document and shows its key's fingerprint; the key is pinned only when the administrator confirms that
// fingerprint (read to them by the peer's administrator, say). A refresh then accepts a document signed by the pinned
// key, or by a new key the pinned one vouched for through the peer's rotation statements; anything else is refused,
// kept out, and recorded as an alarm. Suspended peers are refused everywhere until resumed.
import { and, desc, eq, isNull } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { fail, isCatteryError } from '../errors.js';
import type { Logger } from '../log.js';
import { previousMonth } from '../publication/figures.js';
import { DOCUMENT_PATH, REPORTS_PATH, checkDocument, type HosterDocument } from './document.js';
import { fetchSigned, peerOrigin, type FetchOptions } from './fetch.js';
import { fingerprintOf, namedKid, normalizeFingerprint, verifyDocument, type PublicJwk } from './jws.js';
import { followRotations } from './keys.js';
import { checkReport } from './reports.js';
import { fedAlarms, fedPeers, fedReports, type AlarmKind, type FedAlarm, type FedPeer } from './schema.js';

export interface PeerDeps { db: Db; log: Logger; fetch: FetchOptions; ownUrl: string }

export interface PeerView {
  id: number; url: string; name: string; state: FedPeer['state'];
  /** The fingerprint to compare out of band: the pinned key's, or (pending) the key seen on first contact. */
  fingerprint: string;
  fetchedAt: string; lastError: string; document: HosterDocument;
  alarms: FedAlarm[];
}

const nowIso = () => new Date().toISOString();

export function viewOf(db: Db, p: FedPeer): PeerView {
  const alarms = db.select().from(fedAlarms).where(and(eq(fedAlarms.peerId, p.id), isNull(fedAlarms.clearedAt))).orderBy(desc(fedAlarms.id)).all();
  return {
    id: p.id, url: p.url, name: p.name, state: p.state, fingerprint: fingerprintOf(p.pinnedKid ?? p.seenKid),
    fetchedAt: p.fetchedAt, lastError: p.lastError, document: p.document, alarms,
  };
}

export function listPeers(db: Db): FedPeer[] {
  return db.select().from(fedPeers).orderBy(fedPeers.id).all();
}

export function getPeer(db: Db, id: number): FedPeer {
  const p = db.select().from(fedPeers).where(eq(fedPeers.id, id)).get();
  if (!p) throw fail('CATTERY_ERR_NOT_FOUND', `No peer ${id}`);
  return p;
}

/** The peer's document, fetched and verified with the key it names (first contact) or with `pinned`. */
async function fetchDocument(d: PeerDeps, origin: string, pinned?: PublicJwk) {
  const { body } = await fetchSigned(`${origin}${DOCUMENT_PATH}`, d.fetch);
  const jws = body.trim();
  const v = await verifyDocument(jws, 'hoster', pinned);
  return { jws, kid: v.kid, jwk: v.jwk, document: checkDocument(v.payload, origin) };
}

/** Add a peer by its address: fetched and verified, stored as pending with the key it presented. Nothing about it is
 * trusted until confirmPeer. Adding a pending peer again fetches it again (its key may have been the wrong one). */
export async function addPeer(d: PeerDeps, url: string): Promise<PeerView> {
  const origin = peerOrigin(url);
  if (origin === d.ownUrl) throw fail('CATTERY_ERR_VALIDATION', 'this is our own address');
  const existing = d.db.select().from(fedPeers).where(eq(fedPeers.url, origin)).get();
  if (existing && existing.state !== 'pending') throw fail('CATTERY_ERR_CONFLICT', `${origin} is already a peer`);
  const got = await fetchDocument(d, origin);
  const row = { url: origin, name: got.document.name, seenKid: got.kid, seenJwk: got.jwk, document: got.document, documentJws: got.jws, fetchedAt: nowIso(), lastError: '' };
  const saved = existing
    ? d.db.update(fedPeers).set(row).where(eq(fedPeers.id, existing.id)).returning().get()
    : d.db.insert(fedPeers).values({ ...row, state: 'pending' }).returning().get();
  d.log.info({ peer: origin, kid: got.kid }, 'peer added, waiting for its fingerprint to be confirmed');
  return viewOf(d.db, saved);
}

/** Pin the key seen on first contact, once the administrator says the fingerprint they compared is this one. The
 * fingerprint is sent back with the confirmation so that a key that changed since the page was shown is not pinned. */
export function confirmPeer(d: PeerDeps, id: number, fingerprint: string): PeerView {
  const p = getPeer(d.db, id);
  if (p.state !== 'pending') throw fail('CATTERY_ERR_CONFLICT', 'this peer\'s key is already pinned');
  if (normalizeFingerprint(fingerprint) !== fingerprintOf(p.seenKid)) throw fail('CATTERY_ERR_CONFLICT', 'the fingerprint confirmed is not the one of the key this peer presented');
  const saved = d.db.update(fedPeers).set({ state: 'active', pinnedKid: p.seenKid, pinnedJwk: p.seenJwk }).where(eq(fedPeers.id, id)).returning().get();
  d.log.info({ peer: p.url, kid: p.seenKid }, 'peer key pinned');
  return viewOf(d.db, saved);
}

export function setPeerState(d: PeerDeps, id: number, state: 'active' | 'suspended'): PeerView {
  const p = getPeer(d.db, id);
  if (p.state === 'pending') throw fail('CATTERY_ERR_CONFLICT', 'confirm this peer\'s fingerprint first');
  const saved = d.db.update(fedPeers).set({ state }).where(eq(fedPeers.id, id)).returning().get();
  d.log.info({ peer: p.url, state }, 'peer state changed');
  return viewOf(d.db, saved);
}

export function removePeer(d: PeerDeps, id: number): void {
  const p = getPeer(d.db, id);
  d.db.delete(fedPeers).where(eq(fedPeers.id, id)).run();
  d.log.info({ peer: p.url }, 'peer removed');
}

/** An open alarm of the same kind and detail is not written twice: a refresh an hour repeats the same refusal. */
function alarm(d: PeerDeps, p: FedPeer, kind: AlarmKind, detail: string): void {
  const open = d.db.select().from(fedAlarms).where(and(eq(fedAlarms.peerId, p.id), eq(fedAlarms.kind, kind), eq(fedAlarms.detail, detail), isNull(fedAlarms.clearedAt))).get();
  if (!open) d.db.insert(fedAlarms).values({ peerId: p.id, kind, detail }).run();
  d.log.warn({ peer: p.url, kind, detail }, 'federation alarm');
}

export function openAlarms(db: Db): (FedAlarm & { url: string; name: string })[] {
  return db.select({ a: fedAlarms, url: fedPeers.url, name: fedPeers.name }).from(fedAlarms).innerJoin(fedPeers, eq(fedPeers.id, fedAlarms.peerId))
    .where(isNull(fedAlarms.clearedAt)).orderBy(desc(fedAlarms.id)).all().map((r) => ({ ...r.a, url: r.url, name: r.name }));
}

/** The keys a peer's reports may be signed with: the pinned one, and those its (verified) rotation chain passed
 * through on the way there from an older key, as far as its document's statements say. */
export function peerKeys(p: FedPeer): PublicJwk[] {
  return p.pinnedJwk ? [p.pinnedJwk, ...(p.previousKeys ?? [])] : [];
}

export type RefreshOutcome = 'updated' | 'rotated' | 'refused' | 'unreachable' | 'skipped';

/** Fetch an active peer's document again, then its last month's report. */
export async function refreshPeer(d: PeerDeps, id: number, now = new Date()): Promise<RefreshOutcome> {
  const p = getPeer(d.db, id);
  if (p.state !== 'active' || !p.pinnedJwk || !p.pinnedKid) return 'skipped';
  let body: string;
  try {
    body = (await fetchSigned(`${p.url}${DOCUMENT_PATH}`, d.fetch)).body.trim();
  } catch (err) {
    d.db.update(fedPeers).set({ lastError: (err as Error).message.slice(0, 400) }).where(eq(fedPeers.id, id)).run();
    return 'unreachable';
  }
  let outcome: RefreshOutcome = 'updated';
  let accepted: { document: HosterDocument; kid: string; jwk: PublicJwk; previous: PublicJwk[] } | undefined;
  try {
    const named = namedKid(body);
    if (named === p.pinnedKid) {
      const v = await verifyDocument(body, 'hoster', p.pinnedJwk);
      accepted = { document: checkDocument(v.payload, p.url), kid: v.kid, jwk: v.jwk, previous: p.previousKeys ?? [] };
    } else {
      // Another key: verified with the key it names, then accepted only if the pinned key vouched for it.
      const v = await verifyDocument(body, 'hoster');
      const document = checkDocument(v.payload, p.url);
      const chain = await followRotations(p.pinnedJwk, document.rotations, v.kid, p.url);
      if (!chain) {
        alarm(d, p, 'key-changed', `the document is signed by key ${fingerprintOf(v.kid)}, which the pinned key ${fingerprintOf(p.pinnedKid)} did not sign a rotation to`);
        d.db.update(fedPeers).set({ lastError: 'key changed without a rotation signed by the pinned key: refused' }).where(eq(fedPeers.id, id)).run();
        return 'refused';
      }
      accepted = { document, kid: v.kid, jwk: v.jwk, previous: [...chain.slice(0, -1).reverse(), ...(p.previousKeys ?? [])].slice(0, 64) };
      outcome = 'rotated';
    }
  } catch (err) {
    if (!isCatteryError(err)) throw err;
    alarm(d, p, 'document-refused', err.message.slice(0, 400));
    d.db.update(fedPeers).set({ lastError: err.message.slice(0, 400) }).where(eq(fedPeers.id, id)).run();
    return 'refused';
  }
  // A good document: what was wrong with the earlier ones is over.
  d.db.transaction((tx) => {
    tx.update(fedPeers).set({
      name: accepted.document.name, document: accepted.document, documentJws: body, fetchedAt: nowIso(), lastError: '',
      pinnedKid: accepted.kid, pinnedJwk: accepted.jwk, previousKeys: accepted.previous,
    }).where(eq(fedPeers.id, id)).run();
    tx.update(fedAlarms).set({ clearedAt: nowIso() }).where(and(eq(fedAlarms.peerId, id), isNull(fedAlarms.clearedAt))).run();
  });
  if (outcome === 'rotated') {
    // For the record only (written closed): the chain was signed by the pinned key, nothing is wrong.
    const detail = `key rotated to ${fingerprintOf(accepted.kid)}, signed by the pinned key ${fingerprintOf(p.pinnedKid)}`;
    d.db.insert(fedAlarms).values({ peerId: id, kind: 'key-rotated', detail, clearedAt: nowIso() }).run();
    d.log.info({ peer: p.url, kid: accepted.kid }, 'peer key rotated');
  }
  await fetchReport(d, getPeer(d.db, id), previousMonth(now));
  return outcome;
}

/** A peer's report for a month, fetched and checked: a refused one is an alarm, and is kept only when there is no
 * good one for that month (so that the reports page shows it as refused rather than nothing), never over a good one. */
export async function fetchReport(d: PeerDeps, p: FedPeer, month: string): Promise<boolean> {
  let body: string;
  try {
    body = (await fetchSigned(`${p.url}${REPORTS_PATH}/${month}`, d.fetch)).body.trim();
  } catch (err) {
    d.log.info({ peer: p.url, month, err: (err as Error).message }, 'no report fetched');
    return false;
  }
  const checked = await checkReport(body, peerKeys(p), p.url, month);
  if (!checked.ok) {
    alarm(d, p, 'report-refused', `${month}: ${checked.why}`.slice(0, 400));
    d.db.insert(fedReports).values({ peerId: p.id, month, jws: body, fetchedAt: nowIso() }).onConflictDoNothing().run();
    return false;
  }
  d.db.insert(fedReports).values({ peerId: p.id, month, jws: body, fetchedAt: nowIso() })
    .onConflictDoUpdate({ target: [fedReports.peerId, fedReports.month], set: { jws: body, fetchedAt: nowIso() } }).run();
  return true;
}

/** Every active peer, one after the other (a handful of small documents; no need to hurry a peer). */
export async function refreshAll(d: PeerDeps, now = new Date()): Promise<Map<number, RefreshOutcome>> {
  const out = new Map<number, RefreshOutcome>();
  for (const p of listPeers(d.db)) {
    if (p.state !== 'active') continue;
    try { out.set(p.id, await refreshPeer(d, p.id, now)); } catch (err) {
      d.log.warn({ err, peer: p.url }, 'peer refresh failed');
    }
  }
  return out;
}

export function reportsOf(db: Db, month: string): { peer: FedPeer; jws: string }[] {
  return db.select().from(fedReports).innerJoin(fedPeers, eq(fedPeers.id, fedReports.peerId))
    .where(and(eq(fedReports.month, month), eq(fedPeers.state, 'active'))).all().map((r) => ({ peer: r.fed_peers, jws: r.fed_reports.jws }));
}
