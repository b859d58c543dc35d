// The people's pages of a move (http/pages/moves.ts), without Docker: what "my services" shows at each state, that a
// person acts on their own move only (every move route of the app, page or API, tried by resident B on resident A's
// move and person), that a mediator's start needs the consent box, and the arrival page's refusals (each said in
// words next to its field) and throttle. The whole path between two real catteries, in Chromium, is in
// tests/federation/move-pages.test.ts.
import crypto from 'node:crypto';
import t from 'tap';
import { pino } from 'pino';
import { eq } from 'drizzle-orm';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { createInstance } from '../../src/orchestrator/instances.js';
import { fedMovesOut, fedPeers } from '../../src/federation/schema.js';
import { PERMISSIONS } from '../../src/http/permissions.js';
import { OPERATOR, testConfig } from '../helpers.js';

t.test('move pages: one\'s own move only, the mediator\'s consent, the arrival\'s refusals', async (t) => {
  const rt = await createRuntime(testConfig(t, { signupPerHour: 5 }), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const { db } = rt;
  const inst = createInstance({ db, catalog: rt.catalog, portRange: rt.config.portRange, subnetPool: rt.config.subnetPool }, { service: 'files', slug: 'fichiers' }, 'test');
  const person = async (login: string, roles: string[] = ['resident']) => {
    const u = await createUser(db, { login, name: `${login[0]!.toUpperCase()}${login.slice(1)} Exemple`, roles: roles as never });
    db.$client.prepare("INSERT INTO accounts (instance_id, username, state, quota_mb, user_id) VALUES (?, ?, 'active', 100, ?)").run(inst.id, login, u.id);
    return u;
  };
  const alice = await person('alice'), bob = await person('bob');
  const camille = await createUser(db, { login: 'camille', name: 'Camille Médiatrice', roles: ['mediator'] });
  // An active peer with room for files: its address answers nothing (a closed loopback port), so an arrival from it
  // is refused as unreachable, and nothing leaves the machine.
  const jwk = { kty: 'OKP', crv: 'Ed25519', x: crypto.randomBytes(32).toString('base64url') };
  const peer = db.insert(fedPeers).values({
    url: 'https://127.0.0.1:9', name: 'Chatons de Béville', state: 'active', pinnedKid: 'k1', pinnedJwk: jwk as never, seenKid: 'k1', seenJwk: jwk as never,
    document: { services: [{ id: 'files', registration: 'Free', load: 'OPEN' }], chatons: { member: true } } as never, documentJws: 'x', fetchedAt: new Date().toISOString(),
  }).returning().get();
  // Alice's moves: one received (waiting for her confirmation), one open; both hers only.
  const moveOf = (state: 'received' | 'open') => db.insert(fedMovesOut).values({
    id: crypto.randomBytes(16).toString('base64url'), userId: alice.id, peerId: peer.id, peerUrl: peer.url, codeHash: crypto.randomBytes(32).toString('hex'),
    expiresAt: new Date(Date.now() + 3600_000).toISOString(), state, startedBy: 'user:alice',
    parts: [{ index: 0, service: 'files', slug: 'fichiers', username: 'alice', quotaMb: 100, bytes: 10, sha256: '0'.repeat(64) }], manifestJws: 'x',
    ...(state === 'received' ? { receiptJws: 'y' } : {}),
  }).returning().get();
  const received = moveOf('received'), open = moveOf('open');
  const snapshot = () => JSON.stringify(db.select().from(fedMovesOut).all());
  const before = snapshot();

  /** A browser of one's own: its session, and the CSRF pair read from a page of the site. */
  const browserOf = async (userId: number | null, formPage: string) => {
    const session = userId ? `cattery_session=${createSession(db, { idleMinutes: 60, maxHours: 1 }, userId, 'password')}` : '';
    const r = await rt.app.inject({ url: formPage, headers: { cookie: session } });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(r.body)?.[1] ?? '';
    const cookie = [session, ...r.cookies.filter((c) => c.name === 'cattery_csrf').map((c) => `${c.name}=${c.value}`)].filter(Boolean).join('; ');
    return {
      page: r,
      get: (url: string) => rt.app.inject({ url, headers: { cookie } }),
      post: (url: string, form: Record<string, string>) => rt.app.inject({
        method: 'POST', url, headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ _csrf: csrf, ...form }).toString(),
      }),
    };
  };

  await t.test('"my services" shows one\'s own move and its state', async (t) => {
    const a = await browserOf(alice.id, '/me');
    t.equal(a.page.statusCode, 200);
    t.match(a.page.body, /Chatons de Béville a reçu toutes vos données/, 'the received move is said');
    t.match(a.page.body, new RegExp(`action="/me/moves/${received.id}/confirm"`), 'with its confirmation form');
    const b = await browserOf(bob.id, '/me');
    t.notMatch(b.page.body, new RegExp(`${received.id}|${open.id}`), 'Bob\'s page shows nothing of Alice\'s moves');
    t.match(b.page.body, /action="\/me\/moves"/, 'Bob may start his own');
    t.match(b.page.body, new RegExp(`name="peer" value="${peer.id}"`), 'to the active peer with room for his files');
    for (const word of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const odd = await b.get(`/me?done=${word}&move=${word}`);
      t.equal(odd.statusCode, 200);
      t.notMatch(odd.body, /function|native code|move\.refused\.|class="ok"/, `?done=${word}: nothing said`);
    }
    const en = await b.get('/me?lang=en');
    t.match(en.body, /Move to another hoster/, 'in English too');
  });

  await t.test('resident B, on every move route, cannot act on A\'s move or for A', async (t) => {
    const b = await browserOf(bob.id, '/me');
    const token = (await rt.app.inject({ method: 'POST', url: '/api/tokens', headers: OPERATOR, payload: { name: 'bob script', roles: ['resident'] } })).json() as { token: string };
    const moveRoutes = rt.app.routeTable.filter((r) => /moves/.test(r.url) && !r.url.startsWith('/api/federation/') && r.url !== '/api/moves/arrivals' && r.url !== '/signup/move');
    t.ok(moveRoutes.length >= 11, `${moveRoutes.length} move routes`);
    const aliceFields = { userId: String(alice.id), confirm: 'yes', consent: rt.config.termsVersion, peer: String(peer.id) };
    for (const r of moveRoutes) {
      t.ok(PERMISSIONS[`${r.method} ${r.url}`], `${r.method} ${r.url} has its line`);
      for (const id of [received.id, open.id]) {
        const url = r.url.replace(':id', id);
        const asked = r.page
          ? (r.method === 'GET' ? await b.get(`${url}?login=alice`) : await b.post(url, aliceFields))
          : await rt.app.inject({
            method: r.method as 'GET' | 'POST', url: r.method === 'GET' ? `${url}?userId=${alice.id}` : url,
            headers: { authorization: `Bearer ${token.token}` },
            ...(r.method === 'POST' ? { payload: r.url.includes(':id') ? { userId: alice.id } : { userId: alice.id, peerId: peer.id, consent: 'she asked me, really' } } : {}),
          });
        t.ok([400, 403, 404].includes(asked.statusCode), `${r.method} ${url} by Bob: ${asked.statusCode}`);
        // Without naming Alice: Bob's own session (pages) or his token (API, which carries no person) reaches nothing of hers.
        if (r.page && r.method === 'POST' && r.url.includes(':id')) {
          const mine = await b.post(url, r.url.endsWith('/cancel') ? {} : { confirm: 'yes' });
          t.ok([400, 403, 404].includes(mine.statusCode), `${url} by Bob as himself: ${mine.statusCode}`);
        }
      }
    }
    t.equal(snapshot(), before, 'Alice\'s moves unchanged, and no move was made');
    t.equal((db.$client.prepare("select count(*) n from accounts where username = 'alice' and state = 'active'").get() as { n: number }).n, 1, 'her account untouched');
  });

  await t.test('a mediator starts a move only with the consent box ticked', async (t) => {
    const m = await browserOf(camille.id, '/mediator/moves?login=bob');
    t.match(m.page.body, /name="consent"/, 'the consent box');
    t.match(m.page.body, new RegExp(`name="userId" value="${bob.id}"`));
    const noConsent = await m.post('/mediator/moves', { userId: String(bob.id), peer: String(peer.id) });
    t.equal(noConsent.statusCode, 303);
    t.match(noConsent.headers.location, /move=consent/);
    t.match((await m.get(String(noConsent.headers.location))).body, /Il faut l’accord de la personne/, 'said in words');
    t.equal(snapshot(), before, 'no move without consent');
    t.match((await m.get('/mediator/moves?login=nobody')).body, /Personne n’a cet identifiant/);
  });

  await t.test('the arrival page: each refusal said next to its field, and throttled like the sign-up', async (t) => {
    const v = await browserOf(null, '/signup/move');
    t.match(v.page.body, new RegExp(`<option value="${peer.id}"`), 'the active peers to choose from');
    const good = { source: String(peer.id), code: 'ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345-6789', password: 'une phrase assez longue', password2: 'une phrase assez longue', terms: rt.config.termsVersion };
    const cases: [Record<string, string>, RegExp][] = [
      [{ ...good, source: '999' }, /Choisissez votre ancien hébergeur dans la liste/],
      [{ ...good, code: 'ABCD-1234' }, /Ce code n’a pas la bonne forme/],
      [{ ...good, password2: 'autre chose encore' }, /Les deux mots de passe ne sont pas les mêmes/],
      [{ ...good, terms: '' }, /Il faut accepter les conditions/],
      [good, /Votre ancien hébergeur ne répond pas/],
    ];
    for (const [form, said] of cases) {
      const r = await v.post('/signup/move', form);
      t.ok(r.statusCode >= 400 && r.statusCode < 600 && r.statusCode !== 500, `refused: ${r.statusCode}`);
      t.match(r.body, said, String(said));
      t.match(r.body, /aria-invalid="true"|class="errors"/, 'marked on the form');
    }
    t.equal(db.$client.prepare('select count(*) n from users').get() && (db.$client.prepare('select count(*) n from users').get() as { n: number }).n, 3, 'nobody was made');
    const last = await v.post('/signup/move', good);
    t.equal(last.statusCode, 429, 'the sixth try in the hour is refused (signupPerHour: 5)');
    t.equal((await v.get('/signup/move?lang=en')).statusCode, 200);
    db.update(fedPeers).set({ state: 'suspended' }).where(eq(fedPeers.id, peer.id)).run();
    t.match((await v.get('/signup/move')).body, /aucun autre hébergeur/, 'a suspended peer is not offered');
  });
});
