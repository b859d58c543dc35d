// Who may act on a move, and what an arrival is refused before anything is pulled, without Docker
// (docs/migration-format.md, "What the destination accepts"):
// - a mediator acts for a person whose roles are resident (and member) only: for every other set of roles, every
//   move route a mediator can call (API and pages) is refused, and the mediator's page shows no form for them; an
//   administrator acts for anyone;
// - confirming for another person needs the consent recorded;
// - the arrival page and the arrival API share one throttle per client;
// - a password with a control character is refused before any pull, said in words on the page.
import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { PERSON_ROLES, mediatorMayActFor } from '../../src/identity/roles.js';
import { createInstance } from '../../src/orchestrator/instances.js';
import { fedMovesIn, fedMovesOut, fedPeers } from '../../src/federation/schema.js';
import { OPERATOR, testConfig } from '../helpers.js';

t.test('who may act on a move, and what an arrival refuses before a pull', async (t) => {
  // Throttles out of the way here (each start counts); the arrival's own is tested below with a runtime of its own.
  const rt = await createRuntime(testConfig(t, { signupPerHour: 1000 }), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const { db } = rt;
  const inst = createInstance({ db, catalog: rt.catalog, portRange: rt.config.portRange, subnetPool: rt.config.subnetPool }, { service: 'files', slug: 'fichiers' }, 'test');
  const jwk = { kty: 'OKP', crv: 'Ed25519', x: crypto.randomBytes(32).toString('base64url') };
  // An active peer whose address answers nothing (a closed loopback port): nothing leaves the machine.
  const peer = db.insert(fedPeers).values({
    url: 'https://127.0.0.1:9', name: 'Chatons de Béville', state: 'active', pinnedKid: 'k1', pinnedJwk: jwk as never, seenKid: 'k1', seenJwk: jwk as never,
    document: { services: [{ id: 'files', registration: 'Free', load: 'OPEN' }], chatons: { member: true } } as never, documentJws: 'x', fetchedAt: new Date().toISOString(),
  }).returning().get();
  const camille = await createUser(db, { login: 'camille', name: 'Camille Médiatrice', roles: ['mediator'] });
  const mediatorToken = ((await rt.app.inject({ method: 'POST', url: '/api/tokens', headers: OPERATOR, payload: { name: 'mediator script', roles: ['mediator'] } })).json() as { token: string }).token;
  let n = 0;

  await t.test('a mediator acts for residents only, for every set of roles; an administrator for anyone', async (t) => {
    const session = `cattery_session=${createSession(db, { idleMinutes: 60, maxHours: 1 }, camille.id, 'password')}`;
    await fc.assert(fc.asyncProperty(fc.subarray([...PERSON_ROLES], { minLength: 1 }), async (roles) => {
      n += 1;
      const login = `p${n}x`;
      const u = await createUser(db, { login, name: `Personne ${String.fromCharCode(97 + (n % 26), 97 + Math.floor(n / 26))}`, roles });
      db.$client.prepare("INSERT INTO accounts (instance_id, username, state, quota_mb, user_id) VALUES (?, ?, 'active', 100, ?)").run(inst.id, login, u.id);
      const move = db.insert(fedMovesOut).values({
        id: crypto.randomBytes(16).toString('base64url'), userId: u.id, peerId: peer.id, peerUrl: peer.url, codeHash: crypto.randomBytes(32).toString('hex'),
        expiresAt: new Date(Date.now() + 3600_000).toISOString(), state: 'received', startedBy: `user:${login}`, receiptJws: 'y', manifestJws: 'x',
        parts: [{ index: 0, service: 'files', slug: 'fichiers', username: login, quotaMb: 100, bytes: 10, sha256: '0'.repeat(64) }],
      }).returning().get();
      const may = roles.every((r) => r === 'resident' || r === 'member');
      if (mediatorMayActFor(roles) !== may) return false;
      const asMediator = (method: 'GET' | 'POST', url: string, payload?: object) =>
        rt.app.inject({ method, url, headers: { authorization: `Bearer ${mediatorToken}` }, ...(payload ? { payload } : {}) });
      const consent = 'asked at the office, form kept';
      // The page first: the confirmation below finishes the move, and a finished move has no form.
      const page = await rt.app.inject({ url: `/mediator/moves?login=${login}`, headers: { cookie: session } });
      const hasForms = new RegExp(`/mediator/moves/${move.id}/confirm`).test(page.body);
      const api = [
        await asMediator('GET', `/api/moves?userId=${u.id}`),
        await asMediator('POST', '/api/moves', { peerId: peer.id, userId: u.id, consent }),
        await asMediator('POST', `/api/moves/${move.id}/cancel`, { userId: u.id }),
        await asMediator('POST', `/api/moves/${move.id}/confirm`, { userId: u.id, consent }),
      ];
      const acc = db.$client.prepare("SELECT state FROM accounts WHERE username = ?").get(login) as { state: string };
      if (may) {
        // Let through to the domain: the list, a start refused as under way (409), a cancel refused (received), the
        // confirmation done (the delete of a fake instance's account is left `deleting` for the retry timer).
        return api[0]!.statusCode === 200 && api[1]!.statusCode === 409 && api[2]!.statusCode === 409 && api[3]!.statusCode === 200 && hasForms;
      }
      return api.every((r) => r.statusCode === 403) && !hasForms && /acts for residents only|n’agit que pour les habitantes/.test(page.body) && acc.state === 'active'
        && db.select().from(fedMovesOut).all().filter((m) => m.userId === u.id).length === 1;
    }), { numRuns: 25 });
    // An administrator acts for an administrator.
    const admin = await createUser(db, { login: 'denise', name: 'Denise Admin', roles: ['admin'] });
    t.equal((await rt.app.inject({ url: `/api/moves?userId=${admin.id}`, headers: OPERATOR })).statusCode, 200);
  });

  await t.test('a confirmation for another person needs their consent', async (t) => {
    const u = await createUser(db, { login: 'zoe', name: 'Zoé Exemple', roles: ['resident'] });
    const move = db.insert(fedMovesOut).values({
      id: crypto.randomBytes(16).toString('base64url'), userId: u.id, peerId: peer.id, peerUrl: peer.url, codeHash: crypto.randomBytes(32).toString('hex'),
      expiresAt: new Date(Date.now() + 3600_000).toISOString(), state: 'received', startedBy: 'user:zoe', receiptJws: 'y', manifestJws: 'x', parts: [],
    }).returning().get();
    const r = await rt.app.inject({ method: 'POST', url: `/api/moves/${move.id}/confirm`, headers: OPERATOR, payload: { userId: u.id } });
    t.equal(r.statusCode, 400, 'refused without consent');
    t.equal(db.select().from(fedMovesOut).all().find((m) => m.id === move.id)!.state, 'received', 'nothing done');
  });

  await t.test('a password with a control character is refused before any pull; page and API share one throttle', async (t) => {
    const rt = await createRuntime(testConfig(t, { signupPerHour: 4 }), pino({ level: 'silent' }));
    t.teardown(() => rt.close());
    const { db } = rt;
    const peer = db.insert(fedPeers).values({
      url: 'https://127.0.0.1:9', name: 'Chatons de Béville', state: 'active', pinnedKid: 'k1', pinnedJwk: jwk as never, seenKid: 'k1', seenJwk: jwk as never,
      document: { services: [{ id: 'files', registration: 'Free', load: 'OPEN' }], chatons: { member: true } } as never, documentJws: 'x', fetchedAt: new Date().toISOString(),
    }).returning().get();
    const r0 = await rt.app.inject({ url: '/signup/move', headers: { authorization: null } as never });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(r0.body)?.[1] ?? '';
    const cookie = r0.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    const code = 'ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345-6789';
    const page = (password: string) => rt.app.inject({
      method: 'POST', url: '/signup/move', headers: { authorization: null, cookie, 'content-type': 'application/x-www-form-urlencoded' } as never,
      payload: new URLSearchParams({ _csrf: csrf, source: String(peer.id), code, password, password2: password, terms: rt.config.termsVersion }).toString(),
    });
    const apiArrival = (password: string) => rt.app.inject({ method: 'POST', url: '/api/moves/arrivals', headers: { authorization: null } as never, payload: { source: peer.url, code, password } });
    const p1 = await page('une phrase\nassez longue');
    t.equal(p1.statusCode, 400);
    t.match(p1.body, /caractère invisible/, 'said in words');
    const a1 = await apiArrival('une phrase\u0007assez longue');
    t.equal(a1.statusCode, 400, 'the API refuses it too');
    t.equal(a1.headers['x-cattery-error'], 'CATTERY_ERR_VALIDATION');
    t.equal(db.select().from(fedMovesIn).all().length, 0, 'nothing pulled');
    // Two more tries, one each way: the bucket (4 an hour, shared) is then empty for both.
    await page('une phrase\tassez longue');
    await apiArrival('une phrase\u007fassez longue');
    t.equal((await apiArrival('une phrase assez longue')).statusCode, 429, 'the API is throttled by the page\'s tries');
    t.equal((await page('une phrase assez longue')).statusCode, 429, 'and the page by the API\'s');
  });
});
