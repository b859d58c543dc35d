// A resident arriving from a peer (we are the destination; docs/migration-format.md). We pull, never take a push:
// the manifest first, signed by the key we pinned for the source, refused whole if it is larger than we accept; then
// each part, resumed from what is on disk after an interruption, its SHA-256 checked against the manifest; only when
// every part checks are the accounts created with our own account operations and filled by `import`; then a signed
// receipt of the checksums goes back. A retry with the same source and code picks up where the last attempt stopped.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { createAccount, importAccount, importLimitBytes, usernameTaken } from '../accounts/accounts.js';
import { fail } from '../errors.js';
import { addressOf } from '../catalog/offer.js';
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
    if (usernameTaken(d.db, p.username)) throw fail('CATTERY_ERR_CONFLICT', `the name ${p.username} is taken here`);
    return { ...p, slug: inst.slug };
  });
}
