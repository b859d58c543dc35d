// What a pinned peer's manifest cannot decide at the destination, and what a mediator cannot do at the source; no
// Docker. Generated inputs where the rule is about a kind of value:
// 1. How long its downloads stay: a manifest whose `exp` is beyond its `iat` + a code's life (CODE_TTL_MS) + the
//    request window is refused, and an arrival is swept by min(exp, iat + that life) whatever its `exp` says.
// 2. The quota: a part's `quotaMb` beyond QUOTA_MAX_MB is refused on the manifest, before any byte is fetched.
// 3. An arrival imported but whose receipt the source refused (cancelled there, or the code expired during a long
//    pull) is swept like the others: its downloads go (docs/migration-format.md, "Cleaning up").
// 4. A mediator acts for residents only: no confirmation form for an administrator's move on the mediator's page, and
//    the confirmation of the deletion of an administrator's accounts is refused.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { QUOTA_MAX_MB } from '../../src/accounts/accounts.js';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { createInstance } from '../../src/orchestrator/instances.js';
import { CODE_TTL_MS, REQUEST_WINDOW_S, checkManifest } from '../../src/federation/move-protocol.js';
import { sweepExpiredArrivals } from '../../src/federation/moves-destination.js';
import { fedMovesIn, fedMovesOut, fedPeers } from '../../src/federation/schema.js';
import { testConfig } from '../helpers.js';

const A = 'https://a.example';
const B = 'https://b.example';
const part = (quotaMb = 100) => ({ index: 0, service: 'files', username: 'alice', quotaMb, bytes: 10, sha256: '0'.repeat(64) });
const manifestAt = (iat: number, exp: number, quotaMb?: number) =>
  ({ v: 1, iss: A, aud: B, iat, exp, move: crypto.randomBytes(16).toString('base64url'), resident: { name: 'Alice' }, parts: [part(quotaMb)] });
const refused = (m: unknown) => { try { checkManifest(m, A, B); return false; } catch (err) { return (err as { code?: string }).code === 'CATTERY_ERR_MOVE_REFUSED'; } };

t.test('a manifest whose exp outlives any code is refused', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const ttl = CODE_TTL_MS / 1000 + REQUEST_WINDOW_S;
  fc.assert(fc.property(fc.integer({ min: ttl + 1, max: 100 * 365 * 86400 }), (beyond) => refused(manifestAt(now, now + beyond))), { numRuns: 50 });
});

t.test('an arrival from a manifest with a far exp is still swept once no code can be alive', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const d = rt.federation.moves;
  const now = Date.now();
  const iat = Math.floor(now / 1000) - 3 * 86400;
  const jws = `e30.${Buffer.from(JSON.stringify(manifestAt(iat, iat + 100 * 365 * 86400))).toString('base64url')}.sig`;
  const row = rt.db.insert(fedMovesIn).values({
    peerId: 1, sourceUrl: A, moveId: crypto.randomBytes(16).toString('base64url'), cth: crypto.randomBytes(32).toString('base64url'),
    state: 'failed', manifestJws: jws, parts: [], lastError: 'part 1 does not match the manifest\'s SHA-256',
  }).returning().get();
  const dir = path.join(d.dir, `in-${row.id}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'part-0.tar'), 'a whole good part 0, gigabytes of it', { mode: 0o600 });
  sweepExpiredArrivals(d, new Date(now));
  t.notOk(fs.existsSync(dir), 'three days after its manifest was signed, the downloads are gone');
});

t.test('an imported arrival whose code expired at the source is swept like the others', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const d = rt.federation.moves;
  const now = Math.floor(Date.now() / 1000);
  const jws = `e30.${Buffer.from(JSON.stringify(manifestAt(now - 49 * 3600, now - 3600))).toString('base64url')}.sig`;
  const row = rt.db.insert(fedMovesIn).values({
    peerId: 1, sourceUrl: A, moveId: crypto.randomBytes(16).toString('base64url'), cth: crypto.randomBytes(32).toString('base64url'),
    state: 'imported', manifestJws: jws, parts: [], lastError: '',
  }).returning().get();
  const dir = path.join(d.dir, `in-${row.id}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'part-0.tar'), 'the whole bundle, imported, its receipt refused', { mode: 0o600 });
  t.equal(sweepExpiredArrivals(d, new Date()), 1, 'the arrival that can no longer finish is swept');
  t.notOk(fs.existsSync(dir), 'its downloads are gone');
});

t.test('a part whose quota this hoster never gives is refused on the manifest', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  fc.assert(fc.property(fc.integer({ min: QUOTA_MAX_MB + 1, max: Number.MAX_SAFE_INTEGER }), (q) => refused(manifestAt(now, now + 3600, q))), { numRuns: 50 });
});

t.test('a mediator does not act on an administrator\'s accounts', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const { db } = rt;
  const inst = createInstance({ db, catalog: rt.catalog, portRange: rt.config.portRange, subnetPool: rt.config.subnetPool }, { service: 'files', slug: 'fichiers' }, 'test');
  const denise = await createUser(db, { login: 'denise', name: 'Denise Admin', roles: ['admin'] });
  db.$client.prepare("INSERT INTO accounts (instance_id, username, state, quota_mb, user_id) VALUES (?, 'denise', 'active', 100, ?)").run(inst.id, denise.id);
  const camille = await createUser(db, { login: 'camille', name: 'Camille Médiatrice', roles: ['mediator'] });
  const jwk = { kty: 'OKP', crv: 'Ed25519', x: crypto.randomBytes(32).toString('base64url') };
  const peer = db.insert(fedPeers).values({
    url: 'https://127.0.0.1:9', name: 'Chatons de Béville', state: 'active', pinnedKid: 'k1', pinnedJwk: jwk as never, seenKid: 'k1', seenJwk: jwk as never,
    document: { services: [{ id: 'files', registration: 'Free', load: 'OPEN' }], chatons: { member: true } } as never, documentJws: 'x', fetchedAt: new Date().toISOString(),
  }).returning().get();
  // Denise's move, received by the peer (its receipt in), waiting for a confirmation.
  const move = db.insert(fedMovesOut).values({
    id: crypto.randomBytes(16).toString('base64url'), userId: denise.id, peerId: peer.id, peerUrl: peer.url, codeHash: crypto.randomBytes(32).toString('hex'),
    expiresAt: new Date(Date.now() + 3600_000).toISOString(), state: 'received', startedBy: 'user:denise', receiptJws: 'y',
    parts: [{ index: 0, service: 'files', slug: 'fichiers', username: 'denise', quotaMb: 100, bytes: 10, sha256: '0'.repeat(64) }], manifestJws: 'x',
  }).returning().get();

  const session = `cattery_session=${createSession(db, { idleMinutes: 60, maxHours: 1 }, camille.id, 'password')}`;
  const page = await rt.app.inject({ url: '/mediator/moves?login=denise', headers: { cookie: session } });
  t.equal(page.statusCode, 200);
  t.notMatch(page.body, new RegExp(`action="/mediator/moves/${move.id}/confirm"`), 'no confirmation form for an administrator\'s move on a mediator\'s page');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
  const cookie = [session, ...page.cookies.filter((c) => c.name === 'cattery_csrf').map((c) => `${c.name}=${c.value}`)].join('; ');
  const r = await rt.app.inject({
    method: 'POST', url: `/mediator/moves/${move.id}/confirm`, headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: csrf, userId: String(denise.id), confirm: 'yes' }).toString(),
  });
  t.ok([403, 404].includes(r.statusCode), `refused (got ${r.statusCode} → ${String(r.headers.location)})`);
  const acc = db.$client.prepare("SELECT state FROM accounts WHERE username = 'denise'").get() as { state: string } | undefined;
  t.equal(acc?.state, 'active', 'the administrator\'s account is not being deleted');
});
