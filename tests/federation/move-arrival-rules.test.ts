// What an arrival may take, and who may start a move, between two real catteries on loopback HTTPS with real `files`
// instances on both sides (the harness of move.test.ts). Each subtest is one rule (docs/migration-format.md, "What the
// destination accepts"):
// 1. A retry takes only the accounts its own move made: a name given at the destination between a first, interrupted
//    attempt and its retry stops the move; nothing goes into that person's account, no session is opened as them,
//    their password is not changed, and the source gets no receipt.
// 2. A manifest naming a role's address (postmaster, abuse…: identity/users.ts RESERVED_LOGINS) is refused before any
//    part is fetched: a name no sign-up or mediator can get is no arrival's either.
// 3. Two starts at once for one person make one move (one code, one staged export).
// 4. A mediator does not start a move of an administrator's accounts (a mediator only ever acts for residents).
// 5. A destination that approves newcomers by hand (CATTERY_SIGNUP_APPROVAL=admin) takes no arrival, and says so.
// 6. A service closed to newcomers at the destination by a decision (governance's service.signup) takes no arrival,
//    refused before any part is fetched.
import t from 'tap';
import { eq } from 'drizzle-orm';
import { assignAccount, getAccount, usernameTaken } from '../../src/accounts/accounts.js';
import { createUser, findByLogin } from '../../src/identity/users.js';
import { setServiceSettings } from '../../src/governance/settings.js';
import { fedMovesIn, fedMovesOut } from '../../src/federation/schema.js';
import { api, twoWithFiles, type Cattery } from './move-catteries.js';

t.test('attacks on a move between two catteries', async (t) => {
  const { a, b, ports, bAtA, aAtB } = await twoWithFiles(t, 'cattery-review-move-ca-');

  const dav = (x: Cattery, user: string, p: string, init: RequestInit, password: string) => fetch(`http://127.0.0.1:${ports[x.url]}${p}`,
    { ...init, headers: { ...(init.headers ?? {}), authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } });
  /** A person at A with a files account of that name, and a file in it. */
  const residentAtA = async (login: string, username = login, roles: string[] = ['resident']) => {
    const u = await createUser(a.rt.db, { login, name: `${login} Exemple`, roles: roles as never });
    t.equal((await api(a, 'POST', '/api/instances/fichiers/accounts', { username, password: `${username}-secret-at-a`, quotaMb: 5 })).status, 201);
    assignAccount(a.rt.db, getAccount(a.rt.db, 'fichiers', username).id, u.id);
    t.equal((await dav(a, username, `/${username}/from-a.txt`, { method: 'PUT', body: `${username}'s file at A` }, `${username}-secret-at-a`)).status, 201);
    return u;
  };
  /** A browser at B on the arrival page, signed in as nobody (no operator token). */
  const arrivalBrowser = async () => {
    const r = await b.rt.app.inject({ url: '/signup/move', headers: { authorization: null } as never });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(r.body)?.[1] ?? '';
    const cookie = r.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    return (form: Record<string, string>) => b.rt.app.inject({
      method: 'POST', url: '/signup/move', headers: { authorization: null, cookie, 'content-type': 'application/x-www-form-urlencoded' } as never,
      payload: new URLSearchParams({ _csrf: csrf, source: String(aAtB), terms: b.rt.config.termsVersion, ...form }).toString(),
    });
  };

  await t.test('a retry after an interrupted arrival must not take over a person made at B in between', async (t) => {
    const mover = await residentAtA('alice');
    const start = await api(a, 'POST', '/api/moves', { peerId: bAtA, userId: mover.id, consent: 'Alice asked at the office, form kept' });
    t.equal(start.status, 201, JSON.stringify(start.body));
    const { code, move } = start.body as { code: string; move: { id: string } };

    // First attempt: the part's download is cut (a network blip, or a source that wants it so). B keeps its row.
    a.forge.set('/api/federation/moves/parts/0', (_req, res) => { res.socket?.destroy(); });
    const post = await arrivalBrowser();
    const first = await post({ code, password: 'mover-new-secret-at-b', password2: 'mover-new-secret-at-b' });
    a.forge.delete('/api/federation/moves/parts/0');
    t.not(first.statusCode, 303, 'the first attempt did not go through');
    const row = b.rt.db.select().from(fedMovesIn).get();
    t.equal(row?.state, 'pulling', 'B kept the arrival, to be retried with the same code');
    // The pending arrival holds nothing: a sign-up (or a mediator) at B is free to take the name meanwhile.
    t.notOk(usernameTaken(b.rt.db, 'alice') || findByLogin(b.rt.db, 'alice'), 'the name alice is free at B while the arrival waits');

    // Meanwhile at B: a local resident gets the login and the files account `alice` (what an approved sign-up of a
    // person named "Alice" makes), with her own files.
    const victim = await createUser(b.rt.db, { login: 'alice', name: 'Alice de Béville', roles: ['resident'] });
    t.equal((await api(b, 'POST', '/api/instances/fichiers/accounts', { username: 'alice', password: 'victim-secret-at-b', quotaMb: 5 })).status, 201);
    const victimAccount = getAccount(b.rt.db, 'fichiers', 'alice');
    assignAccount(b.rt.db, victimAccount.id, victim.id);
    t.equal((await dav(b, 'alice', '/alice/mine.txt', { method: 'PUT', body: 'the victim\'s own file' }, 'victim-secret-at-b')).status, 201);

    // The retry, with the same code and a password of the mover's choosing.
    const retry = await (await arrivalBrowser())({ code, password: 'attacker-chosen-pass', password2: 'attacker-chosen-pass' });
    t.not(retry.statusCode, 303, `the retry is refused (name taken at B), not signed in (got ${retry.statusCode} → ${String(retry.headers.location)})`);
    const sessionCookie = b.rt.app.cookieNames.session;
    const session = retry.cookies.find((c) => c.name === sessionCookie);
    t.notOk(session, 'no session is opened by the retry');
    if (session) {
      const me = await b.rt.app.inject({ url: '/me', headers: { authorization: null, cookie: `${sessionCookie}=${session.value}` } as never });
      t.notMatch(me.body, /Alice de Béville/, 'the newcomer is not signed in as B\'s Alice');
    }
    t.equal(getAccount(b.rt.db, 'fichiers', 'alice').userId, victim.id, 'the account is still the victim\'s');
    t.equal((await dav(b, 'alice', '/alice/mine.txt', { method: 'GET' }, 'victim-secret-at-b')).status, 200, 'the victim\'s password still opens her files');
    t.equal((await dav(b, 'alice', '/alice/mine.txt', { method: 'GET' }, 'attacker-chosen-pass')).status, 401, 'the newcomer\'s password does not');
    t.equal((await dav(b, 'alice', '/alice/from-a.txt', { method: 'GET' }, 'victim-secret-at-b')).status, 404, 'nothing of A\'s Alice imported into her files');
    t.not(a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.id, move.id)).get()!.state, 'received', 'A got no receipt for a move that went into someone else\'s account');
  });

  await t.test('a manifest naming a reserved account is refused before any part is fetched', async (t) => {
    // At A the account is named `postmaster` (an administrator may name an account anything); a hostile peer can
    // put any name it likes in a manifest it signs.
    const paul = await residentAtA('paul', 'postmaster');
    const start = await api(a, 'POST', '/api/moves', { peerId: bAtA, userId: paul.id, consent: 'Paul asked by letter, kept in the file' });
    t.equal(start.status, 201, JSON.stringify(start.body));
    const partsBefore = a.seen.filter((s) => s.url.startsWith('/api/federation/moves/parts/')).length;
    const r = await api(b, 'POST', '/api/moves/arrivals', { source: a.url, code: start.body.code, password: 'paul-new-secret-at-b' });
    t.ok(r.status === 403 || r.status === 409, `refused (got ${r.status}: ${JSON.stringify(r.body)})`);
    t.equal(a.seen.filter((s) => s.url.startsWith('/api/federation/moves/parts/')).length, partsBefore, 'no part was fetched');
    t.notOk(usernameTaken(b.rt.db, 'postmaster'), 'B has no account postmaster');
  });

  await t.test('two starts at once for one person make one move', async (t) => {
    const carol = await residentAtA('carol');
    const both = await Promise.all([0, 1].map(() => api(a, 'POST', '/api/moves', { peerId: bAtA, userId: carol.id, consent: 'Carol asked at the office, form kept' })));
    t.same(both.map((r) => r.status).sort(), [201, 409], `one started, one refused as under way (got ${both.map((r) => r.status).join(', ')})`);
    const live = a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.userId, carol.id)).all().filter((m) => m.state === 'open');
    t.equal(live.length, 1, `one open move for Carol's accounts (got ${live.length}, each with its own code and staged export)`);
  });

  await t.test('a mediator may not take an administrator\'s accounts away', async (t) => {
    const admin = await residentAtA('denise', 'denise', ['admin']);
    const token = (await api(a, 'POST', '/api/tokens', { name: 'mediator script', roles: ['mediator'] })).body as { token: string };
    const r = await a.rt.app.inject({
      method: 'POST', url: '/api/moves', headers: { authorization: `Bearer ${token.token}` },
      payload: { peerId: bAtA, userId: admin.id, consent: 'she said yes on the phone' },
    });
    t.equal(r.statusCode, 403, `refused (got ${r.statusCode}${r.statusCode === 201 ? ', with the code of the administrator\'s move' : ''})`);
  });

  await t.test('a hoster that approves newcomers by hand takes no one arriving, and says so', async (t) => {
    b.rt.federation.moves.newcomers.approval = 'admin';
    t.teardown(() => { b.rt.federation.moves.newcomers.approval = 'auto'; });
    const fred = await residentAtA('fred');
    const start = await api(a, 'POST', '/api/moves', { peerId: bAtA, userId: fred.id, consent: 'Fred asked at the office, form kept' });
    t.equal(start.status, 201, JSON.stringify(start.body));
    const partsBefore = a.seen.filter((s) => s.url.startsWith('/api/federation/moves/parts/')).length;
    const r = await api(b, 'POST', '/api/moves/arrivals', { source: a.url, code: start.body.code, password: 'fred-new-secret-at-b' });
    t.equal(r.status, 403, JSON.stringify(r.body));
    t.match(r.body.message, /approves each newcomer by hand/, 'with why');
    t.equal(a.seen.filter((s) => s.url.startsWith('/api/federation/moves/parts/')).length, partsBefore, 'no part was fetched');
    t.notOk(usernameTaken(b.rt.db, 'fred') || findByLogin(b.rt.db, 'fred'), 'B made no account and no person');
    const page = await (await arrivalBrowser())({ code: start.body.code, password: 'fred-new-secret-at-b', password2: 'fred-new-secret-at-b' });
    t.match(page.body, /acceptée à la main par l’association/, 'the page says it in words');
  });

  await t.test('a service closed to newcomers at B takes no one arriving', async (t) => {
    setServiceSettings(b.rt.db, b.rt.catalog, 'files', { openForSignup: false }, 'decision: files closed to newcomers');
    const eve = await residentAtA('eve');
    const start = await api(a, 'POST', '/api/moves', { peerId: bAtA, userId: eve.id, consent: 'Eve asked at the office, form kept' });
    t.equal(start.status, 201, JSON.stringify(start.body));
    const partsBefore = a.seen.filter((s) => s.url.startsWith('/api/federation/moves/parts/')).length;
    const r = await api(b, 'POST', '/api/moves/arrivals', { source: a.url, code: start.body.code, password: 'eve-new-secret-at-b' });
    t.ok(r.status === 403 || r.status === 409, `refused (got ${r.status}: ${JSON.stringify(r.body)})`);
    t.equal(a.seen.filter((s) => s.url.startsWith('/api/federation/moves/parts/')).length, partsBefore, 'no part was fetched');
    t.notOk(usernameTaken(b.rt.db, 'eve'), 'B made no files account for eve');
  });
});
