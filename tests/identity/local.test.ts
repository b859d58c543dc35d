// Identity without a provider, on a real SQLite with the real migrations, through the app: API tokens, people with a
// first password, sign-in throttling, session expiry, and hostile forms that must store nothing.
import t from 'tap';
import fc from 'fast-check';
import { RESERVED_LOGINS, createUser, isReservedLogin, loginFromName } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { PERMISSIONS } from '../../src/http/permissions.js';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { OPERATOR, testConfig } from '../helpers.js';
import type { Config } from '../../src/config.js';
import { pageBrowser } from '../page-browser.js';

async function runtime(t: Parameters<Parameters<typeof t.test>[1]>[0], overrides: Partial<Config> = {}) {
  const rt = await createRuntime(testConfig(t, overrides), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  return rt;
}


t.test('API tokens: scoped, hashed at rest, revocable, expiring', async (t) => {
  const rt = await runtime(t);
  const app = rt.app;
  const made = await app.inject({ method: 'POST', url: '/api/tokens', headers: OPERATOR, payload: { name: 'nightly export', roles: ['admin'] } });
  t.equal(made.statusCode, 201);
  const { token, info } = made.json();
  t.match(token, /^ct_\d+_/);
  const stored = rt.db.$client.prepare('select hash from api_tokens where id = ?').get(info.id) as { hash: string };
  t.notMatch(stored.hash, token.split('_').pop(), 'only a hash is stored');
  const bearer = { authorization: `Bearer ${token}` };
  t.equal((await app.inject({ url: '/api/instances', headers: bearer })).statusCode, 200);
  t.same((await app.inject({ url: '/api/me', headers: bearer })).json(), { id: `token:${info.id}`, roles: ['admin'] });

  const city = await app.inject({ method: 'POST', url: '/api/tokens', headers: bearer, payload: { name: 'dashboard', roles: ['city'] } });
  t.equal(city.statusCode, 201, 'an administrator makes the city its dashboard token');
  const cityBearer = { authorization: `Bearer ${city.json().token}` };
  t.same((await app.inject({ url: '/api/me', headers: cityBearer })).json().roles, ['city']);
  t.equal((await app.inject({ url: '/api/instances/x/accounts', headers: cityBearer })).statusCode, 403, 'the city token reads no account');
  t.equal((await app.inject({ method: 'POST', url: '/api/tokens', headers: cityBearer, payload: { name: 'more', roles: ['admin'] } })).statusCode, 403, 'nor makes tokens');

  t.equal((await app.inject({ method: 'DELETE', url: `/api/tokens/${info.id}`, headers: OPERATOR })).statusCode, 204);
  const after = await app.inject({ url: '/api/instances', headers: bearer });
  t.equal(after.statusCode, 401, 'revoked: refused at once');
  t.equal((await app.inject({ url: '/api/tokens', headers: OPERATOR })).json().find((x: { id: number }) => x.id === info.id).revokedAt !== null, true);

  const past = await app.inject({ method: 'POST', url: '/api/tokens', headers: OPERATOR, payload: { name: 'old', roles: ['admin'], expiresAt: '2020-01-01T00:00:00Z' } });
  t.equal(past.statusCode, 400, 'an expiry in the past is refused');
  const soon = (await app.inject({ method: 'POST', url: '/api/tokens', headers: OPERATOR, payload: { name: 'short', roles: ['admin'], expiresAt: new Date(Date.now() + 60_000).toISOString() } })).json();
  rt.db.$client.prepare('update api_tokens set expires_at = ? where id = ?').run(new Date(Date.now() - 1000).toISOString(), soon.info.id);
  t.equal((await app.inject({ url: '/api/instances', headers: { authorization: `Bearer ${soon.token}` } })).statusCode, 401, 'expired: refused');
  t.equal((await app.inject({ url: '/api/instances', headers: { authorization: 'Bearer ct_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } })).statusCode, 401);
});

t.test('a person with a first password signs in, must change it, and other sessions end', async (t) => {
  const rt = await runtime(t);
  const made = await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'camille', name: 'Camille Lefèvre', roles: ['mediator'] } });
  t.equal(made.statusCode, 201);
  const first = made.json().firstPassword as string;
  t.match(first, /^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/);
  t.match(rt.db.$client.prepare("select password_hash h from users where login='camille'").get() as { h: string }, { h: /^scrypt\$32768\$8\$1\$/ });

  const other = pageBrowser(rt.app);
  t.equal((await other.post('/login', { login: 'camille', password: first }, { csrfFrom: '/login' })).statusCode, 303);
  const b = pageBrowser(rt.app);
  const wrong = await b.post('/login', { login: 'camille', password: 'not-the-password' }, { csrfFrom: '/login' });
  t.equal(wrong.statusCode, 401);
  t.match(wrong.body, /Identifiant ou mot de passe incorrect/);
  const ok = await b.post('/login', { login: 'camille', password: first, next: '/mediator' }, { csrfFrom: '/login' });
  t.equal(ok.statusCode, 303);
  t.equal(ok.headers.location, '/me#password', 'a first password sends the person to choose their own');
  const me = await b.get('/me');
  t.match(me.body, /choisissez maintenant votre propre mot de passe/);
  const changed = await b.post('/me/password', { current: first, password: 'ma phrase à moi', password2: 'ma phrase à moi' }, { csrfFrom: '/me' });
  t.equal(changed.statusCode, 200);
  t.match(changed.body, /changé partout/);
  t.equal((await other.get('/me')).statusCode, 303, 'the other browser was signed out by the change');
  t.equal((await b.get('/mediator')).statusCode, 200, 'this one goes on');
  const again = pageBrowser(rt.app);
  t.equal((await again.post('/login', { login: 'camille', password: 'ma phrase à moi', next: '/mediator' }, { csrfFrom: '/login' })).headers.location, '/mediator');
  t.equal((await again.post('/login', { login: 'camille', password: first }, { csrfFrom: '/login' })).statusCode, 401, 'the first password is gone');

  const out = await again.post('/logout', {}, { csrfFrom: '/me' });
  t.equal(out.statusCode, 303);
  t.equal((await again.get('/me')).statusCode, 303, 'signed out');
  t.equal((await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'camille', name: 'Autre', roles: ['resident'] } })).statusCode, 409);
  t.equal((await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'x', name: 'X', roles: ['root'] } })).statusCode, 400);
});

t.test('sign-in is throttled per login, whatever the address, and per address', async (t) => {
  const rt = await runtime(t, { loginPerMinute: 8 });
  await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'dominique', name: 'Dominique', roles: ['resident'] } });
  const b = pageBrowser(rt.app);
  const csrf = /name="_csrf" value="([^"]+)"/.exec((await b.get('/login')).body)![1]!;
  const codes: number[] = [];
  for (let i = 0; i < 7; i++) codes.push((await b.post('/login', { _csrf: csrf, login: 'dominique', password: `guess-number-${i}` })).statusCode);
  t.same(codes.slice(0, 5), [401, 401, 401, 401, 401]);
  t.equal(codes[6], 429, 'after five failures the login waits');
  const r = await b.post('/login', { _csrf: csrf, login: 'dominique', password: 'x'.repeat(12) });
  t.equal(r.statusCode, 429, 'the address is limited too (8 a minute)');
  t.ok(Number(r.headers['retry-after']) > 0, 'and is told how long to wait');
  t.match(r.body, /Trop/);
});

t.test('a stolen session guessing the current password on /me/password waits, per person, whatever the address', async (t) => {
  const rt = await runtime(t, { loginPerMinute: 1000 });
  const firsts: Record<string, string> = {};
  for (const login of ['eve-target', 'other']) {
    firsts[login] = (await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login, name: 'Quelqu’un', roles: ['resident'] } })).json().firstPassword;
  }
  const signIn = async (login: string) => {
    const b = pageBrowser(rt.app);
    await b.post('/login', { login, password: firsts[login]! }, { csrfFrom: '/login' });
    const own = `${login} a sa phrase`;
    t.equal((await b.post('/me/password', { current: firsts[login]!, password: own, password2: own }, { csrfFrom: '/me' })).statusCode, 200);
    return { b, own };
  };
  const stolen = await signIn('eve-target');
  const codes: number[] = [];
  for (let i = 0; i < 8; i++) {
    codes.push((await stolen.b.post('/me/password', { current: `guess-${i}-xxxx`, password: 'pris par un autre', password2: 'pris par un autre' }, { csrfFrom: '/me' })).statusCode);
  }
  t.same(codes.slice(0, 6), [400, 400, 400, 400, 400, 400], 'five free failures, the sixth starts a wait');
  t.equal(codes[7], 429, 'then the session waits');
  const right = await stolen.b.post('/me/password', { current: stolen.own, password: 'pris par un autre', password2: 'pris par un autre' }, { csrfFrom: '/me' });
  t.equal(right.statusCode, 429, 'during the wait even the right password is not checked, so a guesser learns nothing');
  t.match(right.body, /Réessayez dans \d+ secondes/);
  const other = await signIn('other');
  t.equal((await other.b.post('/me/password', { current: other.own, password: 'encore une autre', password2: 'encore une autre' }, { csrfFrom: '/me' })).statusCode, 200, 'another person is not slowed');
  const login = pageBrowser(rt.app);
  t.equal((await login.post('/login', { login: 'eve-target', password: stolen.own }, { csrfFrom: '/login' })).statusCode, 303, 'the owner still signs in with her password');
});

t.test('sessions end at their idle timeout and at their maximum age', async (t) => {
  const rt = await runtime(t, { sessionIdleMinutes: 30, sessionMaxHours: 8 });
  const made = (await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'eve', name: 'Ève', roles: ['resident'] } })).json();
  const b = pageBrowser(rt.app);
  await b.post('/login', { login: 'eve', password: made.firstPassword }, { csrfFrom: '/login' });
  t.equal((await b.get('/me')).statusCode, 200);
  rt.db.$client.prepare('update sessions set last_seen_at = ?').run(new Date(Date.now() - 31 * 60_000).toISOString());
  t.equal((await b.get('/me')).headers.location, '/login?next=%2Fme', 'idle too long: sign in again');
  t.equal((rt.db.$client.prepare('select count(*) n from sessions').get() as { n: number }).n, 0, 'and the session is gone');
  await b.post('/login', { login: 'eve', password: made.firstPassword }, { csrfFrom: '/login' });
  rt.db.$client.prepare('update sessions set expires_at = ?').run(new Date(Date.now() - 1000).toISOString());
  t.equal((await b.get('/me')).statusCode, 303, 'past its maximum age');
  t.equal((await rt.app.inject({ url: '/api/me', headers: { cookie: `cattery_session=${[...b.jar].find(([k]) => k === 'cattery_session')?.[1] ?? ''}` } })).statusCode, 401, 'the API never takes the cookie');
});

t.test('no sign-up gets a reserved login (role mailboxes, CA validation addresses, system accounts), whatever the name', async (t) => {
  const rt = await runtime(t, { signupPerHour: 1000 });
  // Names built from every reserved login, with case, accents, spaces, punctuation and digits around it.
  const decorate = fc.tuple(fc.constantFrom(...RESERVED_LOGINS), fc.constantFrom('', ' ', '-', "'"), fc.constantFrom('', 'é', 'É'), fc.boolean(), fc.constantFrom('', ' 2', '.', ' Jr'))
    .map(([r, sep, accent, upper, tail]) => {
      const word = r.split(/[-_.]/).join(sep) + accent;
      return (upper ? word.toUpperCase() : word[0]!.toUpperCase() + word.slice(1)) + tail;
    });
  await fc.assert(fc.asyncProperty(decorate, async (name) => {
    const login = loginFromName(rt.db, name.replace(/[^\p{L} '-]/gu, '') || 'Abuse');
    return !isReservedLogin(login) && !RESERVED_LOGINS.has(login);
  }), { numRuns: 500, seed: 20261202 });
  const b = pageBrowser(rt.app);
  const r = await b.post('/signup', { name: 'Postmaster', email: '', services: ['mail'], password: 'une phrase longue', password2: 'une phrase longue', terms: '2026-11' }, { csrfFrom: '/signup' });
  t.ok(r.statusCode < 400, `signed up (${r.statusCode})`);
  const logins = (rt.db.$client.prepare('select login from users').all() as { login: string }[]).map((x) => x.login);
  t.notOk(logins.includes('postmaster'), `"Postmaster" the person is not postmaster@ (${logins.join(', ')})`);
  t.ok(logins.includes('habitant.postmaster'));
  t.equal((await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'postmaster', name: 'Le postmaster', roles: ['admin'] } })).statusCode, 201, 'an administrator may still give it on purpose');
});

t.test('hostile input: script in names, forms without CSRF, oversized or unexpected forms: refused, nothing stored', async (t) => {
  const rt = await runtime(t, { signupPerHour: 1000 });
  const count = () => rt.db.$client.prepare('select (select count(*) from users) u, (select count(*) from signups) s').get();
  const before = count();
  const b = pageBrowser(rt.app);
  const good = { name: 'Léa Martin', email: '', services: ['mail'], password: 'une phrase longue', password2: 'une phrase longue', terms: '2026-11' };

  const script = await b.post('/signup', { ...good, name: '<script>alert(1)</script>' }, { csrfFrom: '/signup' });
  t.equal(script.statusCode, 400);
  t.match(script.body, /ne peut contenir que des lettres/);
  t.notMatch(script.body, /<script>alert/, 'the value is not echoed as markup');
  const noCsrf = await b.post('/signup', good);
  t.equal(noCsrf.statusCode, 403);
  t.equal(noCsrf.headers['x-cattery-error'], 'CATTERY_ERR_CSRF');
  t.match(noCsrf.body, /Le formulaire a expiré/);
  const forged = await b.post('/signup', { ...good, _csrf: 'forged-token-value' });
  t.equal(forged.statusCode, 403);
  const huge = await b.post('/signup', { ...good, name: 'A'.repeat(20_000) }, { csrfFrom: '/signup' });
  t.equal(huge.statusCode, 413);
  t.match(huge.body, /trop grand/);
  const extra = await b.post('/signup', { ...good, roles: 'admin' }, { csrfFrom: '/signup' });
  t.equal(extra.statusCode, 400, 'a field the form does not have');
  const closed = await b.post('/signup', { ...good, services: ['probe'] }, { csrfFrom: '/signup' });
  t.equal(closed.statusCode, 400, 'a service not open for sign-up');
  const oldTerms = await b.post('/signup', { ...good, terms: '2019-01' }, { csrfFrom: '/signup' });
  t.equal(oldTerms.statusCode, 400, 'terms of another version');
  t.match(oldTerms.body, /accepter les conditions/);
  const mismatch = await b.post('/signup', { ...good, password2: 'autre chose encore' }, { csrfFrom: '/signup' });
  t.match(mismatch.body, /ne sont pas les mêmes/);
  t.match(mismatch.body, /value="Léa Martin"/, 'what was typed is kept (but never the passwords)');
  t.notMatch(mismatch.body, /une phrase longue/);
  t.same(count(), before, 'nothing stored');

  const xss = await b.post('/login', { login: '"><img src=x onerror=alert(1)>', password: 'whatever-long' }, { csrfFrom: '/login' });
  t.notMatch(xss.body, /<img src=x/, 'escaped everywhere');
  const open = await b.get('/login?next=//evil.example/');
  t.match(open.body, /name="next" value="\/me"/, 'no open redirect through next');

  const done = await b.post('/signup', good, { csrfFrom: '/signup' });
  t.equal(done.statusCode, 201);
  t.match(done.body, /lea\.martin/);
  const row = rt.db.$client.prepare('select s.terms_version, s.channel, s.status, u.status us from signups s join users u on u.id = s.user_id').get();
  t.same(row, { terms_version: '2026-11', channel: 'self', status: 'pending', us: 'pending' });
});

t.test('pages speak French by default and English on request', async (t) => {
  const rt = await runtime(t);
  const fr = await rt.app.inject({ url: '/' });
  t.match(fr.body, /<html lang="fr">/);
  t.match(fr.headers['content-security-policy'] as string, /default-src 'none'/);
  const en = await rt.app.inject({ url: '/?lang=en' });
  t.match(en.body, /<html lang="en">/);
  t.match(en.body, /Services offered/);
  const byHeader = await rt.app.inject({ url: '/signup', headers: { 'accept-language': 'en-GB,en;q=0.8' } });
  t.match(byHeader.body, /Create my account/);
});

t.test('automatic approval with no instance to take the resident: kept as failed for an administrator', async (t) => {
  const rt = await runtime(t, { signupApproval: 'auto' });
  const b = pageBrowser(rt.app);
  const r = await b.post('/signup', { name: 'Nour Haddad', services: ['files'], password: 'une phrase longue', password2: 'une phrase longue', terms: '2026-11' }, { csrfFrom: '/signup' });
  t.equal(r.statusCode, 201);
  t.match(r.body, /va la vérifier/, 'the resident is told a person will look at it');
  const s = (await rt.app.inject({ url: '/api/signups?status=failed', headers: OPERATOR })).json();
  t.equal(s.length, 1);
  t.match(s[0].lastError, /no instance of "files"/);
  const again = await rt.app.inject({ method: 'POST', url: `/api/signups/${s[0].id}/approve`, headers: OPERATOR });
  t.equal(again.statusCode, 409, 'approving again says why, and the request stays');
  const reject = await rt.app.inject({ method: 'POST', url: `/api/signups/${s[0].id}/reject`, headers: OPERATOR });
  t.equal(reject.json().status, 'rejected');
  t.equal((rt.db.$client.prepare("select status from users where login = 'nour.haddad'").get() as { status: string }).status, 'disabled');
});

t.test('the admin page shows only what cattery knows: no text of a link reaches its alert', async (t) => {
  const rt = await runtime(t, { signupApproval: 'auto' });
  const b = pageBrowser(rt.app);
  await b.post('/signup', { name: 'Nour Haddad', services: ['files'], password: 'une phrase longue', password2: 'une phrase longue', terms: '2026-11' }, { csrfFrom: '/signup' });
  const id = (await rt.app.inject({ url: '/api/signups?status=failed', headers: OPERATOR })).json()[0].id as number;
  const first = (await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'adm', name: 'Adm', roles: ['admin'] } })).json().firstPassword;
  const admin = pageBrowser(rt.app);
  await admin.post('/login', { login: 'adm', password: first }, { csrfFrom: '/login' });
  await admin.post('/me/password', { current: first, password: 'la phrase de adm', password2: 'la phrase de adm' }, { csrfFrom: '/me' });
  const approve = await admin.post(`/admin/signups/${id}/approve`, {}, { csrfFrom: '/admin' });
  t.equal(approve.headers.location, `/admin?failed=${id}`, 'a failed approval names the sign-up, not a text');
  t.match((await admin.get(approve.headers.location as string)).body, /no instance of (&quot;|")files/, 'the alert says the sign-up\'s own last error');
  const text = fc.stringMatching(/^[A-Za-zÀ-ÿ :\/.]{12,60}$/);
  await fc.assert(fc.asyncProperty(text, fc.constantFrom('error', 'failed', 'message', 'detail'), async (words, key) => {
    const r = await admin.get(`/admin?${key}=${encodeURIComponent(words)}`);
    const shown = r.body.replace(/&#39;|&quot;|&amp;|&lt;|&gt;/g, '');
    return !shown.includes(words.trim());
  }), { numRuns: 100, seed: 20261202 });
});

t.test('a mediator\'s session, opened on a public computer, ends after its own shorter idle time', async (t) => {
  const rt = await runtime(t, { sessionIdleMinutes: 120, mediatorIdleMinutes: 15 });
  const policy = { idleMinutes: 120, maxHours: 12 };
  const open = async (roles: string[], idleMinutesAgo: number) => {
    const u = await createUser(rt.db, { login: `p${roles.join('')}${idleMinutesAgo}`, name: 'Quelqu’un', roles });
    const token = createSession(rt.db, policy, u.id, 'password');
    rt.db.$client.prepare('update sessions set last_seen_at = ? where user_id = ?').run(new Date(Date.now() - idleMinutesAgo * 60_000).toISOString(), u.id);
    return (await rt.app.inject({ url: '/me', headers: { cookie: `cattery_session=${token}`, accept: 'text/html' } })).statusCode;
  };
  t.equal(await open(['mediator'], 14), 200, 'a mediator 14 minutes idle is still signed in');
  t.equal(await open(['mediator'], 16), 303, 'a mediator 16 minutes idle is signed out');
  t.equal(await open(['admin', 'mediator'], 16), 303, 'whatever else they are');
  t.equal(await open(['resident'], 16), 200, 'a resident keeps the longer idle time');
  t.equal(await open(['resident'], 121), 303);
});

t.test('a first password opens only the page to choose one\'s own, on every page route', async (t) => {
  const rt = await runtime(t, { loginPerMinute: 1_000_000 });
  const made = (await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'first-only', name: 'Première', roles: ['admin', 'mediator', 'city', 'resident', 'member', 'board'] } })).json();
  const b = pageBrowser(rt.app);
  t.equal((await b.post('/login', { login: 'first-only', password: made.firstPassword }, { csrfFrom: '/login' })).headers.location, '/me#password');
  const open = new Set(['GET /me', 'POST /me/password', 'POST /logout']);
  let asked = 0;
  for (const r of rt.app.routeTable.filter((x) => x.page)) {
    const allowed = PERMISSIONS[`${r.method} ${r.url}`] ?? [];
    if (allowed.includes('public') || open.has(`${r.method} ${r.url}`)) continue;
    const url = r.url.replace(/:(\w+)/g, '1');
    const res = r.method === 'GET' ? await b.get(url) : await b.post(url, {}, { csrfFrom: '/me' });
    asked++;
    if (r.method === 'GET') t.equal(res.headers.location, '/me#password', `GET ${r.url}: sent to choose a password`);
    else t.equal(res.headers['x-cattery-error'], 'CATTERY_ERR_PASSWORD_CHANGE_REQUIRED', `POST ${r.url}: refused`);
  }
  t.ok(asked >= 8, `${asked} page routes asked`);
  t.equal((await b.post('/me/password', { current: made.firstPassword, password: 'ma propre phrase', password2: 'ma propre phrase' }, { csrfFrom: '/me' })).statusCode, 200);
  t.equal((await b.get('/admin')).statusCode, 200, 'then every page of their roles opens');
});

t.test('guesses sent all at once are counted like guesses sent one by one (sign-in and current password)', async (t) => {
  const rt = await runtime(t, { loginPerMinute: 1_000_000 });
  const first = (await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'burst-target', name: 'Cible', roles: ['resident'] } })).json().firstPassword;
  const b = pageBrowser(rt.app);
  await b.post('/login', { login: 'burst-target', password: first }, { csrfFrom: '/login' });
  await b.post('/me/password', { current: first, password: 'la phrase de la cible', password2: 'la phrase de la cible' }, { csrfFrom: '/me' });
  const csrf = /name="_csrf" value="([^"]+)"/.exec((await b.get('/me')).body)![1]!;
  const burst = await Promise.all(Array.from({ length: 30 }, (_, i) =>
    b.post('/me/password', { _csrf: csrf, current: `guess-${i}-xxxxxx`, password: 'prise par un autre', password2: 'prise par un autre' })));
  const checked = burst.filter((r) => r.statusCode === 400).length;
  t.ok(checked <= 6, `30 current passwords at once: ${checked} checked, the rest told to wait`);
  t.ok(burst.filter((r) => r.statusCode === 429).length >= 24);

  const anon = pageBrowser(rt.app);
  const loginCsrf = /name="_csrf" value="([^"]+)"/.exec((await anon.get('/login')).body)![1]!;
  const logins = await Promise.all(Array.from({ length: 20 }, (_, i) => anon.post('/login', { _csrf: loginCsrf, login: 'burst-target', password: `guess-${i}-xxxxxx` })));
  const tried = logins.filter((r) => r.statusCode === 401).length;
  t.ok(tried <= 6, `20 sign-ins at once from one address: ${tried} checked, the rest told to wait`);
});
