// OpenID Connect sign-in against a real provider (oidc-provider) that the test starts: the whole flow through HTTP,
// success, wrong state, a callback in another browser, a replayed callback, an expired session, RP-initiated logout,
// and a provider that does not answer.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { testConfig } from '../helpers.js';
import { PEOPLE, cookieJar, freePort, startProvider } from './provider.js';

async function setup(t: Parameters<Parameters<typeof t.test>[1]>[0]) {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const provider = await startProvider(publicUrl);
  t.teardown(() => provider.close());
  const base = testConfig(t);
  const config = { ...base, port, publicUrl, oidc: {
    issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret, redirectUrl: `${publicUrl}/auth/callback`,
    scopes: 'openid profile email groups', rolesClaim: 'groups', roleMap: { 'cattery-admins': 'admin' }, label: 'Compte de la mairie',
  } };
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  await rt.app.listen({ host: '127.0.0.1', port });
  t.teardown(() => rt.close());
  return { rt, publicUrl, provider };
}

/** Follow redirects by hand, keeping each origin's cookies, until `stop` says so; submit the provider's forms. */
async function signIn(publicUrl: string, login: string, jar = cookieJar(), stopAtCallback = false, start = '/login/oidc?next=/me') {
  let url = `${publicUrl}${start}`;
  const prompts: string[] = [];
  let method = 'GET';
  let body: string | undefined;
  for (let hop = 0; hop < 20; hop++) {
    if (stopAtCallback && url.startsWith(`${publicUrl}/auth/callback`)) return { url, jar, prompts };
    const res = await fetch(url, {
      method, redirect: 'manual', body,
      headers: { cookie: jar.header(url), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    });
    jar.store(url, res.headers.getSetCookie());
    method = 'GET'; body = undefined;
    if (res.status >= 300 && res.status < 400) { url = new URL(res.headers.get('location')!, url).href; continue; }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    if (res.status === 200 && action && prompt) {
      prompts.push(prompt);
      url = new URL(action, url).href;
      method = 'POST';
      body = prompt === 'login' ? new URLSearchParams({ prompt, login, password: 'any' }).toString() : new URLSearchParams({ prompt }).toString();
      continue;
    }
    return { url, jar, status: res.status, html, prompts };
  }
  throw new Error('too many redirects');
}

const sessions = (rt: Runtime) => (rt.db.$client.prepare('select count(*) n from sessions').get() as { n: number }).n;

t.test('sign-in through the provider: person created with roles from groups, session, logout at the provider', async (t) => {
  const { rt, publicUrl, provider } = await setup(t);
  const login = await fetch(`${publicUrl}/login`);
  t.match(await login.text(), /Se connecter avec : Compte de la mairie/);

  const done = await signIn(publicUrl, 'alice');
  t.equal(done.status, 200, 'back on cattery');
  t.equal(done.url, `${publicUrl}/me`);
  t.match(done.html!, /Bonjour Alice Moreau/);
  const user = rt.db.$client.prepare("select login, roles, oidc_issuer, password_hash from users where oidc_subject = 'alice'").get();
  t.same(user, { login: 'alice', roles: '["admin"]', oidc_issuer: provider.issuer, password_hash: null }, 'roles from the provider\'s groups');
  const admin = await fetch(`${publicUrl}/admin`, { headers: { cookie: done.jar.header(publicUrl) }, redirect: 'manual' });
  t.equal(admin.status, 200, 'the admin group opens the admin pages');

  const bruno = await signIn(publicUrl, 'bruno');
  t.match(bruno.html!, /Bonjour Bruno Petit/);
  const brunoAdmin = await fetch(`${publicUrl}/admin`, { headers: { cookie: bruno.jar.header(publicUrl) }, redirect: 'manual' });
  t.equal(brunoAdmin.status, 403, 'a group with no mapping: a resident');

  const again = await signIn(publicUrl, 'alice');
  t.match(again.html!, /Bonjour Alice Moreau/);
  t.equal((rt.db.$client.prepare("select count(*) n from users where oidc_subject = 'alice'").get() as { n: number }).n, 1, 'the same person, not a new one');

  const page = await (await fetch(`${publicUrl}/me`, { headers: { cookie: again.jar.header(publicUrl) } })).text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
  const out = await fetch(`${publicUrl}/logout`, {
    method: 'POST', redirect: 'manual', body: new URLSearchParams({ _csrf: csrf }).toString(),
    headers: { cookie: again.jar.header(publicUrl), 'content-type': 'application/x-www-form-urlencoded' },
  });
  t.equal(out.status, 303);
  const to = new URL(out.headers.get('location')!);
  t.equal(to.origin, provider.issuer, 'RP-initiated logout at the provider');
  t.ok(to.searchParams.get('id_token_hint'), 'with the ID token as hint');
  t.equal(to.searchParams.get('post_logout_redirect_uri'), `${publicUrl}/`);
  const after = await fetch(`${publicUrl}/me`, { headers: { cookie: again.jar.header(publicUrl) }, redirect: 'manual' });
  t.equal(after.status, 303, 'the cattery session is gone');
});

t.test('a callback with the wrong state, from another browser, or replayed is refused and opens no session', async (t) => {
  const { rt, publicUrl } = await setup(t);
  const before = sessions(rt);

  const a = await signIn(publicUrl, 'alice', cookieJar(), true);
  const wrong = new URL(a.url);
  wrong.searchParams.set('state', 'not-the-state-we-sent');
  const r1 = await fetch(wrong, { headers: { cookie: a.jar.header(publicUrl) }, redirect: 'manual' });
  t.equal(r1.status, 400);
  t.equal(r1.headers.get('x-cattery-error'), 'CATTERY_ERR_OIDC');
  t.match(await r1.text(), /La connexion n’a pas abouti/);

  const b = await signIn(publicUrl, 'alice', cookieJar(), true);
  const elsewhere = await fetch(b.url, { redirect: 'manual' });
  t.equal(elsewhere.status, 400, 'a callback without the browser\'s state cookie (login CSRF) is refused');

  const c = await signIn(publicUrl, 'alice', cookieJar(), true);
  const first = await fetch(c.url, { headers: { cookie: c.jar.header(publicUrl) }, redirect: 'manual' });
  t.equal(first.status, 303, 'the genuine callback signs in');
  const countAfterFirst = sessions(rt);
  const replay = await fetch(c.url, { headers: { cookie: c.jar.header(publicUrl) }, redirect: 'manual' });
  t.equal(replay.status, 400, 'the same code again is refused');
  t.equal(sessions(rt), countAfterFirst, 'and opens nothing');
  t.equal(countAfterFirst, before + 1);
  t.equal((rt.db.$client.prepare('select count(*) n from login_flows').get() as { n: number }).n, 2, 'flows of a and b are left to expire; c was consumed');
});

t.test('an expired session sends the person back to sign in', async (t) => {
  const { rt, publicUrl } = await setup(t);
  const s = await signIn(publicUrl, 'bruno');
  t.equal(s.status, 200);
  rt.db.$client.prepare('update sessions set expires_at = ?').run(new Date(Date.now() - 1).toISOString());
  const r = await fetch(`${publicUrl}/me`, { headers: { cookie: s.jar.header(publicUrl) }, redirect: 'manual' });
  t.equal(r.status, 303);
  t.equal(r.headers.get('location'), '/login?next=%2Fme');
});

t.test('a provider that does not answer: a clear 503 page, nothing stored', async (t) => {
  const port = await freePort();
  const dead = await freePort();
  const base = testConfig(t);
  const rt = await createRuntime({ ...base, port, publicUrl: `http://127.0.0.1:${port}`, oidc: {
    issuer: `http://127.0.0.1:${dead}`, clientId: 'x', redirectUrl: `http://127.0.0.1:${port}/auth/callback`, scopes: 'openid', rolesClaim: 'groups', roleMap: {}, label: 'Ville',
  } }, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const r = await rt.app.inject({ url: '/login/oidc' });
  t.equal(r.statusCode, 503);
  t.equal(r.headers['x-cattery-error'], 'CATTERY_ERR_OIDC_UNAVAILABLE');
  t.match(r.body, /ne répond pas/);
  t.equal((rt.db.$client.prepare('select count(*) n from login_flows').get() as { n: number }).n, 0);
});

t.test('in Chromium: the sign-in button, the provider\'s screens, back to "my services"', async (t) => {
  const { chromium } = await import('playwright-core');
  const { rt, publicUrl } = await setup(t);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  const page = await (await browser.newContext({ locale: 'fr-FR' })).newPage();
  await page.goto(`${publicUrl}/me`);
  t.equal(new URL(page.url()).pathname, '/login', 'my services asks to sign in first');
  await page.getByRole('link', { name: /Se connecter avec : Compte de la mairie/ }).click();
  await page.locator('input[name=login]').fill('alice');
  await page.locator('input[name=password]').fill('any');
  await page.locator('button[type=submit]').click();
  await page.locator('button[type=submit]').click(); // the provider's consent screen
  await page.waitForURL(`${publicUrl}/me`);
  t.match(await page.locator('h1').textContent(), /Mes services/, 'back where the person wanted to go');
  t.match(await page.locator('main').textContent(), /Bonjour Alice Moreau/);
  const cookie = (await page.context().cookies()).find((c) => c.name === 'cattery_session');
  t.ok(cookie?.httpOnly, 'the session cookie is HttpOnly');
  t.equal(cookie?.sameSite, 'Lax');
  t.equal(cookie?.expires, -1, 'a browser-session cookie: it dies with the browser on a shared computer');
  await page.getByRole('button', { name: 'Se déconnecter' }).click();
  await page.waitForURL((u) => u.href === `${publicUrl}/` || u.href.startsWith(new URL(rt.config.oidc!.issuer).origin));
  t.pass(`signed out to ${page.url()}`);
  t.equal((rt.db.$client.prepare('select count(*) n from sessions').get() as { n: number }).n, 0);
});

/** A form of cattery's, sent as a browser would: its CSRF token read from `csrfFrom`, the jar's cookies. */
async function postForm(publicUrl: string, jar: ReturnType<typeof cookieJar>, path: string, fields: Record<string, string>, csrfFrom: string) {
  const page = await fetch(`${publicUrl}${csrfFrom}`, { headers: { cookie: jar.header(publicUrl) }, redirect: 'manual' });
  jar.store(publicUrl, page.headers.getSetCookie());
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  const res = await fetch(`${publicUrl}${path}`, {
    method: 'POST', redirect: 'manual', body: new URLSearchParams({ _csrf: csrf, ...fields }).toString(),
    headers: { cookie: jar.header(publicUrl), 'content-type': 'application/x-www-form-urlencoded' },
  });
  jar.store(publicUrl, res.headers.getSetCookie());
  return { status: res.status, location: res.headers.get('location'), html: await res.text() };
}

t.test('an OpenID person sets a local password only after a fresh sign-in at the provider, and it never carries their roles', async (t) => {
  const { rt, publicUrl } = await setup(t);
  const groups = PEOPLE.alice!.groups;
  t.teardown(() => { PEOPLE.alice!.groups = groups; });
  const hash = () => (rt.db.$client.prepare("select password_hash h from users where oidc_subject = 'alice'").get() as { h: string | null }).h;
  const get = async (jar: ReturnType<typeof cookieJar>, path: string) => {
    const r = await fetch(`${publicUrl}${path}`, { headers: { cookie: jar.header(publicUrl) }, redirect: 'manual' });
    return { status: r.status, html: await r.text() };
  };
  const pw = { password: 'une phrase à moi seule', password2: 'une phrase à moi seule' };

  // A session the provider opened a while ago (or without saying when it authenticated): no password from it.
  const s = await signIn(publicUrl, 'alice');
  t.equal(s.status, 200);
  const me = await get(s.jar, '/me');
  t.match(me.html, /Confirmer avec : Compte de la mairie/, 'the page offers to confirm at the provider');
  t.notMatch(me.html, /name="password2"/, 'and no password form yet');
  const refused = await postForm(publicUrl, s.jar, '/me/password', pw, '/me');
  t.equal(refused.status, 403, 'setting a password from that session is refused');
  t.match(refused.html, /Confirmez d’abord qui vous êtes/);
  t.equal(hash(), null, 'no password stored');

  // The same browser, the provider's own session still open: fresh=1 makes the provider ask for the login again.
  const sso = await signIn(publicUrl, 'alice', s.jar);
  t.notOk(sso.prompts.includes('login'), `an ordinary sign-in rides the provider's session (${sso.prompts.join(',') || 'no screen'})`);
  const fresh = await signIn(publicUrl, 'alice', s.jar, false, `/login/oidc?fresh=1&next=${encodeURIComponent('/me#password')}`);
  t.ok(fresh.prompts.includes('login'), 'the fresh sign-in asked for the login at the provider');
  t.equal(fresh.status, 200);
  t.match((await get(s.jar, '/me')).html, /name="password2"/, 'now the form is there');
  const set = await postForm(publicUrl, s.jar, '/me/password', pw, '/me');
  t.equal(set.status, 200, 'right after the fresh sign-in the password is accepted');
  t.match(set.html, /changé partout/);
  t.ok(hash(), 'the password is stored');

  // Minutes later the same session is no longer fresh.
  const realNow = Date.now;
  Date.now = () => realNow() + 6 * 60_000;
  try {
    t.equal((await postForm(publicUrl, s.jar, '/me/password', pw, '/me')).status, 403, 'six minutes later: refused again');
  } finally { Date.now = realNow; }

  // The local password signs in, as a resident only: the admin role held through the provider is not in it.
  const local = cookieJar();
  const signedIn = await postForm(publicUrl, local, '/login', { login: 'alice', password: pw.password }, '/login');
  t.equal(signedIn.status, 303);
  t.equal((await get(local, '/me')).status, 200, 'my services open');
  t.equal((await get(local, '/admin')).status, 403, 'the admin pages do not');
  t.match(rt.db.$client.prepare("select roles from users where login = 'alice'").get(), { roles: '["admin"]' }, 'the stored roles are the provider\'s');
  t.equal((await get(s.jar, '/admin')).status, 200, 'the provider\'s own session keeps them');

  // The provider takes the group away: the next OpenID sign-in reads it, and the local password never had it.
  PEOPLE.alice!.groups = [];
  const after = await signIn(publicUrl, 'alice');
  t.equal((await get(after.jar, '/admin')).status, 403, 'removed at the provider: no longer admin');
  t.match(rt.db.$client.prepare("select roles from users where login = 'alice'").get(), { roles: '["resident"]' });
  const local2 = cookieJar();
  await postForm(publicUrl, local2, '/login', { login: 'alice', password: pw.password }, '/login');
  t.equal((await get(local2, '/admin')).status, 403, 'nor through the local password');
  PEOPLE.alice!.groups = groups;
  const back = await signIn(publicUrl, 'alice');
  t.equal((await get(back.jar, '/admin')).status, 200, 'given back at the provider: admin again through it');
  t.equal((await get(local2, '/admin')).status, 403, 'and still not through the local password');
});
