// cattery behind the front door (https): every cookie it sets, on every page route and every step of signing in and
// out, is a `__Host-` cookie (Secure, Path=/, no Domain), so that no instance on a sibling name can set one cattery
// reads; and a cookie under the plain name — what a sibling could plant with Domain=<the association's domain> — is
// never taken as a session, a language or a CSRF secret. Over plain http (a trial) the plain names stay.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { createUser, setUserPassword } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { cookieNames } from '../../src/http/cookies.js';
import { testConfig } from '../helpers.js';
import { pageBrowser } from '../page-browser.js';

const POLICY = { idleMinutes: 60, maxHours: 1 };

/** Every Set-Cookie header of an answer, whole. */
const setCookies = (r: { headers: Record<string, unknown> }): string[] => [r.headers['set-cookie'] ?? []].flat() as string[];

function hostCookieProblem(header: string): string | undefined {
  const [pair, ...attrs] = header.split(';').map((s) => s.trim());
  const name = pair!.slice(0, pair!.indexOf('='));
  const lower = attrs.map((a) => a.toLowerCase());
  if (!name.startsWith('__Host-')) return `${name}: no __Host- prefix`;
  if (!lower.includes('secure')) return `${name}: not Secure`;
  if (!lower.includes('path=/')) return `${name}: Path is not /`;
  if (lower.some((a) => a.startsWith('domain='))) return `${name}: has a Domain`;
  if (!lower.includes('httponly')) return `${name}: readable by scripts`;
  return undefined;
}

t.test('https: every cookie on every page route is a __Host- cookie; planted plain names are ignored', async (t) => {
  const config = testConfig(t, { publicUrl: 'https://cattery.asso.test', loginPerMinute: 100_000, signupPerHour: 100_000 });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const names = cookieNames(true);
  const admin = await createUser(rt.db, { login: 'adele', name: 'Adèle Admin', roles: ['admin'] });
  await setUserPassword(rt.db, admin.id, 'une phrase de passe assez longue');

  // Every page route, anonymous and signed in, with ?lang=en (which sets the language cookie): whatever it sets.
  const pages = rt.app.routeTable.filter((r) => r.page);
  t.ok(pages.length > 10, `${pages.length} page routes`);
  const seen = new Set<string>();
  for (const route of pages) {
    const url = `${route.url.replace(':slug', 'zz-missing').replace(':username', 'nobody').replace(':id', '999999').replace(':login', 'nobody').replace(':domain', 'asso.test')}?lang=en`;
    for (const session of [undefined, createSession(rt.db, POLICY, admin.id, 'password')]) {
      const headers: Record<string, string> = { accept: 'text/html' };
      if (session) headers.cookie = `${names.session}=${session}`;
      const body = route.method === 'GET' ? undefined : '_csrf=x';
      if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
      const r = await rt.app.inject({ method: route.method as 'GET', url, headers, ...(body ? { payload: body } : {}) });
      for (const h of setCookies(r)) {
        seen.add(h.slice(0, h.indexOf('=')));
        const problem = hostCookieProblem(h);
        if (problem) t.fail(`${route.method} ${route.url}: ${problem} (${h})`);
      }
    }
  }

  // Signing in and out, as a browser does.
  const b = pageBrowser(rt.app as never);
  const login = await b.post('/login', { login: 'adele', password: 'une phrase de passe assez longue' }, { csrfFrom: '/login' });
  t.equal(login.statusCode, 303, login.body);
  const logout = await b.post('/logout', {}, { csrfFrom: '/me' });
  t.equal(logout.statusCode, 303);
  for (const h of [...setCookies(login), ...setCookies(logout)]) {
    seen.add(h.slice(0, h.indexOf('=')));
    const problem = hostCookieProblem(h);
    if (problem) t.fail(`sign in/out: ${problem} (${h})`);
  }
  t.ok(seen.has(names.session) && seen.has(names.csrf) && seen.has(names.lang), `session, CSRF and language cookies seen: ${[...seen].join(', ')}`);

  // What a sibling could plant under the plain names: a valid session of its own, a language. Never taken.
  const planted = createSession(rt.db, POLICY, admin.id, 'password');
  const asPlanted = await rt.app.inject({ url: '/me', headers: { accept: 'text/html', cookie: `cattery_session=${planted}; lang=en` } });
  t.equal(asPlanted.statusCode, 303, 'a plain-named session cookie signs nobody in');
  const home = await rt.app.inject({ url: '/', headers: { accept: 'text/html', cookie: 'lang=en', 'accept-language': 'fr' } });
  t.match(home.body, /<html lang="fr"/, 'a plain-named language cookie is not read');
  const real = await rt.app.inject({ url: '/me', headers: { accept: 'text/html', cookie: `${names.session}=${planted}` } });
  t.equal(real.statusCode, 200, 'the __Host- session cookie is');
});

t.test('plain http (a trial on one machine): the plain names, not Secure', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const r = await rt.app.inject({ url: '/login?lang=en', headers: { accept: 'text/html' } });
  const got = setCookies(r);
  t.ok(got.length >= 2, got.join(' | '));
  for (const h of got) {
    t.notMatch(h, /^__Host-/, 'no prefix a browser would refuse over http');
    t.notMatch(h.toLowerCase(), /;\s*secure/, 'not Secure over http');
  }
});
