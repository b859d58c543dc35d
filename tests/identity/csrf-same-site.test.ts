// A hostile same-site page (a service on another port of this host, a sibling name) against every page form. It can
// toss cookies into the victim's browser and make it post forms, so for every POST in the app's own route table:
// - a cookie and token pair minted by the attacker (its own session, or no session) and tossed into the victim's
//   browser beside the victim's session is refused with CATTERY_ERR_CSRF;
// - a form the browser says came from another origin (generated: other ports, sibling and parent names, other
//   schemes, `null`) or another site (Sec-Fetch-Site) is refused, even with the victim's own valid token;
// - the victim's own pair, from cattery's own origin, passes the CSRF stage (whatever the handler then says).
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { testConfig } from '../helpers.js';

const PARAMS: Record<string, string> = { id: '999999' };

t.test('every page form refuses tossed pairs, foreign origins and other sites', async (t) => {
  const config = testConfig(t, { loginPerMinute: 1_000_000, signupPerHour: 1_000_000, publicUrl: 'http://asso.example:8080' });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const forms = rt.app.routeTable.filter((r) => r.page && r.method === 'POST').map((r) => r.url.replace(/:(\w+)/g, (_m, p: string) => PARAMS[p] ?? 'x'));
  t.ok(forms.length >= 8, `${forms.length} page forms`);
  const policy = { idleMinutes: 60, maxHours: 1 };
  const victim = await createUser(rt.db, { login: 'victim-admin', name: 'Victime', roles: ['admin', 'mediator', 'resident', 'member', 'board'] });
  const attacker = await createUser(rt.db, { login: 'mallory', name: 'Mallory', roles: ['resident'] });

  /** A session (or none) and the CSRF cookie and token a page gives it. */
  const pairFor = async (userId: number | null) => {
    const session = userId === null ? '' : createSession(rt.db, policy, userId, 'password');
    const cookie = session ? `cattery_session=${session}` : '';
    const page = await rt.app.inject({ url: userId === null ? '/login' : '/me', headers: { cookie, accept: 'text/html' } });
    const token = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
    const csrfCookie = page.cookies.find((c) => c.name === 'cattery_csrf')!;
    return { session, token, csrf: `cattery_csrf=${csrfCookie.value}` };
  };
  const post = (url: string, cookie: string, token: string, headers: Record<string, string> = {}) => rt.app.inject({
    method: 'POST', url, payload: new URLSearchParams({ _csrf: token }).toString(),
    headers: { cookie, accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded', ...headers },
  });
  const csrfRefused = (r: { headers: Record<string, unknown> }) => r.headers['x-cattery-error'] === 'CATTERY_ERR_CSRF';

  const mine = await pairFor(attacker.id);
  const anonymous = await pairFor(null);
  for (const url of forms) {
    for (const [what, tossed] of [['its own session', mine], ['no session', anonymous]] as const) {
      const victimSession = createSession(rt.db, policy, victim.id, 'password');
      const r = await post(url, `cattery_session=${victimSession}; ${tossed.csrf}`, tossed.token);
      t.ok(csrfRefused(r), `POST ${url}: a pair the attacker minted in ${what}, tossed beside the victim's session, is refused (${r.statusCode})`);
    }
    const own = await pairFor(victim.id);
    const ok = await post(url, `cattery_session=${own.session}; ${own.csrf}`, own.token, { origin: 'http://asso.example:8080', 'sec-fetch-site': 'same-origin' });
    t.notOk(csrfRefused(ok), `POST ${url}: the victim's own pair from cattery's origin passes the CSRF stage (${ok.statusCode})`);
  }

  const foreignOrigin = fc.oneof(
    fc.integer({ min: 1, max: 65535 }).filter((p) => p !== 8080).map((p) => `http://asso.example:${p}`),
    fc.constantFrom('https://asso.example:8080', 'http://pads.asso.example:8080', 'http://example:8080', 'http://asso.example', 'null',
      'http://asso.example:8080.evil', 'http://ASSO.example:8081', 'http://asso.example.:8080'),
    fc.stringMatching(/^[a-z]{1,10}$/).map((h) => `http://${h}.asso.example:8080`),
  );
  await fc.assert(fc.asyncProperty(fc.constantFrom(...forms), foreignOrigin, fc.constantFrom(undefined, 'same-origin', 'same-site', 'cross-site'), async (url, origin, site) => {
    const own = await pairFor(victim.id);
    const headers: Record<string, string> = { origin };
    if (site) headers['sec-fetch-site'] = site;
    const r = await post(url, `cattery_session=${own.session}; ${own.csrf}`, own.token, headers);
    return csrfRefused(r);
  }), { numRuns: 300, seed: 20261202 });

  await fc.assert(fc.asyncProperty(fc.constantFrom(...forms), fc.constantFrom('same-site', 'cross-site'), async (url, site) => {
    const own = await pairFor(victim.id);
    return csrfRefused(await post(url, `cattery_session=${own.session}; ${own.csrf}`, own.token, { 'sec-fetch-site': site }));
  }), { numRuns: 60, seed: 20261203 });
  t.pass('no foreign origin or other site got past the CSRF stage of any form');

  // A page GET that does something (an export staged in the container) has no token: it is refused from another
  // page of the site (an <img> on a sibling instance's name carries the Lax session cookie), and goes on from
  // cattery's own page, the address bar, or a client that does not say.
  const acting = rt.app.routeTable.filter((r) => r.page && r.method === 'GET' && r.acts);
  t.same(acting.map((r) => r.url).sort(), ['/admin/members.csv', '/admin/payments.csv', '/me/accounts/:id/export', '/me/membership/export'],
    'the page GETs that act are declared (an export of an account, of one\'s membership, the treasurer\'s files)');
  for (const route of acting) {
    const url = route.url.replace(/:(\w+)/g, (_m, p: string) => PARAMS[p] ?? '1');
    const session = createSession(rt.db, policy, victim.id, 'password');
    const get = (site?: string) => rt.app.inject({ url, headers: { cookie: `cattery_session=${session}`, accept: 'text/html', ...(site !== undefined ? { 'sec-fetch-site': site } : {}) } });
    for (const site of ['same-site', 'cross-site', 'SAME-ORIGIN', 'same-origin, same-site', '']) t.ok(csrfRefused(await get(site)), `GET ${url} with Sec-Fetch-Site "${site}": refused`);
    for (const site of ['same-origin', 'none', undefined]) t.notOk(csrfRefused(await get(site)), `GET ${url} with Sec-Fetch-Site ${site ?? 'absent'}: past the check`);
  }
  // Every WebSocket a page opens with the session cookie (cross-site WebSocket hijacking: a same-site page's script
  // opens one, the browser adds the cookie, and no same-origin policy stops it reading the messages). The handshake
  // must come from cattery's own origin: any other origin, or none, is refused before the socket opens.
  const sockets = rt.app.routeTable.filter((r) => r.page && r.websocket);
  t.same(sockets.map((r) => r.url), ['/dashboard/live'], 'the page WebSockets are declared (the dashboards\' live power)');
  const open = async (url: string, headers: Record<string, string>) => {
    try {
      const ws = await rt.app.injectWS(url, { headers: { host: 'asso.example:8080', ...headers } });
      ws.terminate();
      return 'open';
    } catch (err) { return String((err as Error).message); }
  };
  for (const route of sockets) {
    const session = createSession(rt.db, policy, victim.id, 'password');
    t.equal(await open(route.url, { cookie: `cattery_session=${session}`, origin: 'http://asso.example:8080' }), 'open', `${route.url}: opens from cattery's own origin`);
    // A page sends a browser without a session to the sign-in page (303): not a socket either way.
    t.match(await open(route.url, { origin: 'http://asso.example:8080' }), /: 303$/, `${route.url}: refused without a session`);
    const resident = createSession(rt.db, policy, attacker.id, 'password');
    t.match(await open(route.url, { cookie: `cattery_session=${resident}`, origin: 'http://asso.example:8080' }), /: 403$/, `${route.url}: refused to a role the table does not name`);
    t.match(await open(route.url, { cookie: `cattery_session=${session}` }), /: 403$/, `${route.url}: refused without an Origin`);
  }
  await fc.assert(fc.asyncProperty(fc.constantFrom(...sockets.map((r) => r.url)), foreignOrigin, async (url, origin) => {
    const session = createSession(rt.db, policy, victim.id, 'password');
    return /: 403$/.test(await open(url, { cookie: `cattery_session=${session}`, origin }));
  }), { numRuns: 100 });
  t.pass('no page WebSocket opened from a foreign origin');
});
