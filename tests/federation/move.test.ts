// A resident's move between two real catteries on loopback HTTPS (issue 14, second half; docs/migration-format.md).
// Each cattery has its own data folder, hoster id and engine labels, a real `files` instance in Docker, and its own
// HTTPS server with a certificate from a test CA; they pinned each other's key. A third cattery (no Docker) plays the
// wrong peer. The parts are written by the real `export` of A's files instance and read by the real `import` of B's.
// What it proves, on one move of generated files:
// - refused before any part is read, with nothing imported at B and nothing deleted at A: a code that names no move,
//   a request from a hoster A has not pinned, from a pinned peer the code was not given for, from a suspended peer,
//   a replayed request (same jti), an expired code, a manifest changed in transit, and a bundle larger than B takes
//   (refused on the manifest's sizes, before a part is requested);
// - a part changed in transit is caught by its SHA-256: nothing imported at B, the part discarded;
// - a transfer cut half-way resumes with a Range request from what B had on disk: the files arrive whole (WebDAV at B
//   gives back every byte), and A deleted nothing;
// - A deletes only after B's signed receipt and the confirmation; the code then opens nothing.
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import fc from 'fast-check';
import { eq } from 'drizzle-orm';
import { assignAccount, getAccount } from '../../src/accounts/accounts.js';
import { createUser } from '../../src/identity/users.js';
import { verifyDocument } from '../../src/federation/jws.js';
import { codeTokenHash, newTransferCode, signMoveRequest, REQUEST_HEADER } from '../../src/federation/move-protocol.js';
import { postJson } from '../../src/federation/move-client.js';
import { sweepExpiredMoves } from '../../src/federation/moves-source.js';
import { fedMovesIn, fedMovesOut } from '../../src/federation/schema.js';
import { testCa } from '../services/test-ca.js';
import { HEALTHY_WITHIN_MS, waitFor } from '../helpers.js';
import { api, cattery, pin, type Cattery } from './move-catteries.js';

t.test('a resident moves from A to B', async (t) => {
  const ca = testCa(t);
  const caDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-move-ca-'));
  t.teardown(() => fs.rmSync(caDir, { recursive: true, force: true }));
  const caFile = path.join(caDir, 'ca.pem');
  fs.writeFileSync(caFile, ca.pem);
  const [a, b, c] = await Promise.all([
    cattery(t, 'Chatons de Aville', ca, caFile, 0), cattery(t, 'Chatons de Béville', ca, caFile, 1), cattery(t, 'Chatons de Céville', ca, caFile, 2),
  ]);
  const started = Date.now();
  const ports: Record<string, number> = {};
  for (const x of [a, b]) {
    const r = await api(x, 'POST', '/api/instances', { service: 'files', slug: 'fichiers' });
    t.equal(r.status, 202, JSON.stringify(r.body));
    ports[x.url] = r.body.ports.http;
  }
  await Promise.all([a, b].map((x) => waitFor(`files healthy at ${x.url}`, async () => (await api(x, 'GET', '/api/instances/fichiers')).body.observed === 'healthy', HEALTHY_WITHIN_MS, 500)));
  t.comment(`two files instances healthy in ${Date.now() - started} ms`);
  const bAtA = await pin(t, a, b);
  await pin(t, b, a);
  await pin(t, c, a);

  // Alice at A, with generated files (names and contents), one of them large enough to cut a transfer half-way.
  const alice = await createUser(a.rt.db, { login: 'alice', name: 'Alice Martin', roles: ['resident'] });
  t.equal((await api(a, 'POST', '/api/instances/fichiers/accounts', { username: 'alice', password: 'alice-secret-at-a', quotaMb: 20 })).status, 201);
  assignAccount(a.rt.db, getAccount(a.rt.db, 'fichiers', 'alice').id, alice.id);
  const files = new Map<string, Buffer>(fc.sample(fc.tuple(fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,11}$/), fc.uint8Array({ maxLength: 4096 })), { numRuns: 12 })
    .map(([n, body]) => [`/alice/${n}.bin`, Buffer.from(body)]));
  files.set('/alice/big.bin', crypto.randomBytes(3 * 1024 * 1024));
  const dav = (x: Cattery, p: string, init: RequestInit, password: string) => fetch(`http://127.0.0.1:${ports[x.url]}${p}`,
    { ...init, headers: { ...(init.headers ?? {}), authorization: `Basic ${Buffer.from(`alice:${password}`).toString('base64')}` } });
  for (const [p, body] of files) t.equal((await dav(a, p, { method: 'PUT', body }, 'alice-secret-at-a')).status, 201, `PUT ${p}`);

  const start = await api(a, 'POST', '/api/moves', { peerId: bAtA, userId: alice.id, consent: 'Alice asked at the office on 3 December, signed form kept' });
  t.equal(start.status, 201, JSON.stringify(start.body));
  const { code, move } = start.body as { code: string; move: { id: string; parts: { bytes: number; sha256: string }[] } };
  t.match(code, /^([0-9A-HJKMNP-TV-Z]{4}-){7}[0-9A-HJKMNP-TV-Z]{4}$/, '32 characters of Crockford base32: 160 bits');
  const stored = a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.id, move.id)).get()!;
  t.not(stored.codeHash, code, 'the code is not stored');
  t.not(stored.codeHash, codeTokenHash(code), 'nor what requests carry');
  const partDir = path.join(a.dataDir, 'moves', `out-${move.id}`);
  t.equal(fs.statSync(partDir).mode & 0o777, 0o700);
  for (const f of fs.readdirSync(partDir)) t.equal(fs.statSync(path.join(partDir, f)).mode & 0o777, 0o600, `${f} is 0600`);

  const arrive = (x: Cattery, body: object) => api(x, 'POST', '/api/moves/arrivals', { source: a.url, password: 'alice-new-secret-at-b', ...body });
  const partRequests = () => a.seen.filter((s) => s.url.startsWith('/api/federation/moves/parts/')).length;
  const nothingMoved = async (t: Test) => {
    t.equal(getAccount(a.rt.db, 'fichiers', 'alice').state, 'active', 'A still has the account');
    t.equal((await api(b, 'GET', '/api/instances/fichiers/accounts/alice')).status, 404, 'B has no account');
  };

  await t.test('refused before any part is read', async (t) => {
    const before = partRequests();
    const other = await arrive(b, { code: newTransferCode() });
    t.match(other, { status: 403, code: 'CATTERY_ERR_MOVE_REFUSED', body: { message: /no move has this code/ } }, 'a code that names no move');
    const unpinned = await arrive(c, { code });
    t.match(unpinned.body.message, /not pinned here/, 'C pinned A, but A never pinned C');
    await pin(t, a, c);
    t.match((await arrive(c, { code })).body.message, /given for another hoster/, 'a pinned peer the code was not given for');
    t.equal((await api(a, 'POST', `/api/federation/peers/${bAtA}/suspend`, {})).body.state, 'suspended');
    t.match((await arrive(b, { code })).body.message, /suspended here/, 'B suspended at A');
    await api(a, 'POST', `/api/federation/peers/${bAtA}/resume`, {});
    // The same signed request twice: the second is a replay.
    const header = await signMoveRequest(await b.rt.federation.keys.current(), { iss: b.url, aud: a.url, cth: codeTokenHash(code) });
    const get = () => new Promise<number>((resolve, reject) => https.get(`${a.url}/api/federation/moves/manifest`, { ca: ca.pem, headers: { [REQUEST_HEADER]: header } },
      (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject));
    t.equal(await get(), 200, 'a signed request is served once');
    t.equal(await get(), 403, 'and refused when replayed');
    // An old request (outside the window) is refused even with a fresh jti.
    const old = await signMoveRequest(await b.rt.federation.keys.current(), { iss: b.url, aud: a.url, cth: codeTokenHash(code) }, Date.now() - 5 * 60_000);
    t.equal(await new Promise<number>((resolve) => https.get(`${a.url}/api/federation/moves/manifest`, { ca: ca.pem, headers: { [REQUEST_HEADER]: old } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); })), 403, 'an old request');
    // Expired.
    const realExpiry = stored.expiresAt;
    a.rt.db.update(fedMovesOut).set({ expiresAt: new Date(Date.now() - 1000).toISOString() }).where(eq(fedMovesOut.id, move.id)).run();
    t.match((await arrive(b, { code })).body.message, /expired/, 'an expired code');
    a.rt.db.update(fedMovesOut).set({ expiresAt: realExpiry }).where(eq(fedMovesOut.id, move.id)).run();
    // Too large for B: refused on the manifest's sizes.
    const max = b.rt.federation.moves.maxBundleBytes;
    b.rt.federation.moves.maxBundleBytes = move.parts.reduce((n, p) => n + p.bytes, 0) - 1;
    t.match(await arrive(b, { code }), { status: 413, body: { message: /larger than this hoster accepts/ } }, 'a bundle larger than B takes');
    b.rt.federation.moves.maxBundleBytes = max;
    t.equal((await api(a, 'POST', `/api/moves/${move.id}/confirm`, { userId: alice.id, consent: 'Alice checked her accounts at B and asked' })).status, 409, 'no confirmation before the receipt');
    t.equal(partRequests(), before, 'no part was requested by any of these');
    t.equal(b.rt.db.select().from(fedMovesIn).all().length, 0, 'B kept no move');
    await nothingMoved(t);
  });

  await t.test('a manifest changed in transit is refused (generated byte changes)', async (t) => {
    const jws = stored.manifestJws;
    const pinnedA = (await verifyDocument(jws, 'moveManifest')).jwk;
    // Any byte changed anywhere: the strict verifier refuses it (cheap, generated); then one through the wire.
    await fc.assert(fc.asyncProperty(fc.nat({ max: jws.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, delta) => {
      const bytes = Buffer.from(jws);
      bytes[at] = (bytes[at]! + delta) % 256;
      if (await verifyDocument(bytes.toString('utf8'), 'moveManifest', pinnedA).then(() => true, () => false)) throw new Error(`byte ${at} +${delta} accepted`);
    }), { numRuns: 200 });
    const [h, p, s] = jws.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    payload.parts[0].bytes = 1;
    const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    a.forge.set('/api/federation/moves/manifest', (_req, res) => { res.writeHead(200, { 'content-type': 'application/jose' }).end(tampered); });
    t.match((await arrive(b, { code })).body.message, /signature does not verify/);
    a.forge.delete('/api/federation/moves/manifest');
    t.equal(b.rt.db.select().from(fedMovesIn).all().length, 0);
    await nothingMoved(t);
  });

  await t.test('a part changed in transit is caught by its checksum; nothing imported', async (t) => {
    const real = fs.readFileSync(path.join(partDir, 'part-0.tar'));
    const changed = Buffer.from(real);
    changed[fc.sample(fc.nat({ max: real.length - 1 }), 1)[0]!] ^= 0x20;
    a.forge.set('/api/federation/moves/parts/0', (_req, res) => { res.writeHead(200, { 'content-type': 'application/x-tar' }).end(changed); });
    const r = await arrive(b, { code });
    t.match(r, { status: 403, body: { message: /does not match the manifest's SHA-256/ } });
    a.forge.delete('/api/federation/moves/parts/0');
    const row = b.rt.db.select().from(fedMovesIn).get()!;
    t.equal(row.state, 'failed');
    t.notOk(fs.existsSync(path.join(b.dataDir, 'moves', `in-${row.id}`, 'part-0.tar')), 'the bad part is discarded');
    await nothingMoved(t);
  });

  await t.test('a transfer cut half-way resumes with Range; everything arrives; A deletes only after receipt and confirmation', async (t) => {
    const total = move.parts[0]!.bytes;
    // The connection is cut after a megabyte of the part.
    a.forge.set('/api/federation/moves/parts/0', (req, res) => {
      let sent = 0;
      const write = res.write.bind(res);
      res.write = ((chunk: Buffer, ...rest: never[]) => {
        sent += chunk.length;
        if (sent > 1024 * 1024) { res.socket?.destroy(); return false; }
        return write(chunk, ...rest);
      }) as typeof res.write;
      a.rt.app.routing(req, res);
    });
    const cut = await arrive(b, { code });
    t.equal(cut.code, 'CATTERY_ERR_PEER_UNREACHABLE', 'the cut is reported');
    a.forge.delete('/api/federation/moves/parts/0');
    const row = b.rt.db.select().from(fedMovesIn).get()!;
    const partial = fs.statSync(path.join(b.dataDir, 'moves', `in-${row.id}`, 'part-0.tar')).size;
    t.ok(partial > 0 && partial < total, `B kept what it had (${partial} of ${total} bytes)`);
    await nothingMoved(t);
    const done = await arrive(b, { code });
    t.equal(done.status, 200, JSON.stringify(done.body));
    t.match(done.body, { state: 'done', accounts: [{ service: 'files', username: 'alice' }] });
    const resumed = a.seen.filter((s) => s.url === '/api/federation/moves/parts/0').at(-1)!;
    t.equal(resumed.range, `bytes=${partial}-`, 'the rest was asked for from where it stopped');
    for (const [p, body] of files) {
      const got = Buffer.from(await (await dav(b, p, { method: 'GET' }, 'alice-new-secret-at-b')).arrayBuffer());
      t.ok(got.equals(body), `${p} arrived whole at B`);
    }
    t.equal((await dav(b, '/alice/big.bin', { method: 'GET' }, 'alice-secret-at-a')).status, 401, 'B has the password Alice chose there, not A\'s');
    t.notOk(fs.existsSync(path.join(b.dataDir, 'moves', `in-${row.id}`)), 'B\'s download folder is gone');
    // At A: received, not deleted until Alice confirms.
    const atA = a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.id, move.id)).get()!;
    t.equal(atA.state, 'received');
    const receipt = await verifyDocument(atA.receiptJws!, 'moveReceipt', (await verifyDocument(b.rt.db.select().from(fedMovesIn).get()!.manifestJws, 'moveManifest')).jwk).catch(() => undefined);
    t.notOk(receipt, 'the receipt is B\'s, not A\'s');
    t.match((await verifyDocument(atA.receiptJws!, 'moveReceipt')).payload, { iss: b.url, aud: a.url, move: move.id, parts: [{ sha256: move.parts[0]!.sha256 }] });
    t.equal(getAccount(a.rt.db, 'fichiers', 'alice').state, 'active', 'A still has the account before the confirmation');
    // The receipt sent again (B crashed before recording A's answer) is taken again; one with another checksum is not.
    const sent = (await verifyDocument(atA.receiptJws!, 'moveReceipt')).payload as { parts: { sha256: string }[] };
    const post = async (payload: object) => {
      const header = await signMoveRequest(await b.rt.federation.keys.current(), { iss: b.url, aud: a.url, cth: codeTokenHash(code) });
      return postJson(b.rt.federation.moves.fetch, `${a.url}/api/federation/moves/receipt`, header, { receipt: await b.rt.federation.keys.sign('moveReceipt', payload) })
        .then((body) => JSON.parse(body).state as string, (err: { code?: string }) => err.code);
    };
    t.equal(await post({ ...sent, iat: Math.floor(Date.now() / 1000) }), 'received', 'the same receipt again');
    t.equal(await post({ ...sent, parts: sent.parts.map((p) => ({ ...p, sha256: '0'.repeat(64) })) }), 'CATTERY_ERR_MOVE_REFUSED', 'a receipt of other checksums');
    // Even once the code has expired: B imported in time, only A's answer to its receipt was lost.
    a.rt.db.update(fedMovesOut).set({ expiresAt: new Date(Date.now() - 1000).toISOString() }).where(eq(fedMovesOut.id, move.id)).run();
    t.equal(await post({ ...sent, iat: Math.floor(Date.now() / 1000) }), 'received', 'the same receipt again, after the code expired');
    t.equal((await dav(a, '/alice/big.bin', { method: 'GET' }, 'alice-secret-at-a')).status, 200);
    t.match((await arrive(b, { code })).body.message, /already finished/, 'B will not take it twice');
    const replay = await signMoveRequest(await b.rt.federation.keys.current(), { iss: b.url, aud: a.url, cth: codeTokenHash(code) });
    t.equal(await new Promise<number>((resolve) => https.get(`${a.url}/api/federation/moves/manifest`, { ca: ca.pem, headers: { [REQUEST_HEADER]: replay } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); })), 403, 'the code opens nothing after the receipt');
    const confirmed = await api(a, 'POST', `/api/moves/${move.id}/confirm`, { userId: alice.id, consent: 'Alice checked her accounts at B and asked' });
    t.equal(confirmed.body.state, 'done', JSON.stringify(confirmed.body));
    t.equal((await api(a, 'GET', '/api/instances/fichiers/accounts/alice')).status, 404, 'A deleted the account');
    t.equal((await dav(a, '/alice/big.bin', { method: 'GET' }, 'alice-secret-at-a')).status, 401);
    t.notOk(fs.existsSync(partDir), 'and the staged parts');
  });

  await t.test('a move whose code expires without a receipt is cancelled by the sweep: parts removed, accounts kept', async (t) => {
    const bob = await createUser(a.rt.db, { login: 'bob', name: 'Bob', roles: ['resident'] });
    t.equal((await api(a, 'POST', '/api/instances/fichiers/accounts', { username: 'bob', password: 'bob-secret-at-a', quotaMb: 5 })).status, 201);
    assignAccount(a.rt.db, getAccount(a.rt.db, 'fichiers', 'bob').id, bob.id);
    const started = await api(a, 'POST', '/api/moves', { peerId: bAtA, userId: bob.id, consent: 'Bob asked by letter, kept in the file' });
    t.equal(started.status, 201);
    const dir = path.join(a.dataDir, 'moves', `out-${started.body.move.id}`);
    t.ok(fs.existsSync(dir));
    t.equal(sweepExpiredMoves(a.rt.federation.moves), 0, 'nothing expired yet');
    t.equal(sweepExpiredMoves(a.rt.federation.moves, new Date(Date.now() + 49 * 3600_000)), 1, 'two days later');
    t.notOk(fs.existsSync(dir), 'the staged parts are gone');
    t.equal(a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.id, started.body.move.id)).get()!.state, 'cancelled');
    t.equal(getAccount(a.rt.db, 'fichiers', 'bob').state, 'active', 'the account stays');
  });
});
