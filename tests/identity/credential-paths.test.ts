// Which credential counts, and through which spelling of a path. For every route in the app's own table, requests
// with no credential, a valid one or a forged one, as cookie and as bearer token in every combination (so cookie
// only, bearer only and both), through the plain path and through spellings a client can make (percent-encoded
// characters, doubled slashes, a trailing slash, changed case), must get exactly the table's answer for the route
// the router matches: a page takes the session cookie only, the rest the bearer token only, whatever else is sent
// ("both" means: the credential the route takes decides, the other is ignored). A spelling no route matches is a
// 404 without authority. Which route a spelling matches is worked out here from the route patterns (decoded
// segments, exact case, no empty segment), independently of the app. Form bodies on every API route are refused.
import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { PERMISSIONS } from '../../src/http/permissions.js';
import { PERSON_ROLES, type Role } from '../../src/identity/roles.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { createApiToken } from '../../src/identity/tokens.js';
import { testConfig } from '../helpers.js';

const DENIED = new Set(['CATTERY_ERR_UNAUTHENTICATED', 'CATTERY_ERR_FORBIDDEN']);
const PARAMS: Record<string, string> = { slug: 'zz-missing', username: 'nobody', id: '999999', login: 'nobody', name: 'nobody' };
type Route = { method: string; url: string; page: boolean; signature?: boolean };
type Cred = 'none' | 'good' | 'forged';
const CREDS: Cred[] = ['none', 'good', 'forged'];

const fill = (url: string) => url.replace(/:(\w+)/g, (_m, p: string) => PARAMS[p] ?? 'x');

/** The route a raw path reaches, by the patterns alone: each segment decoded, static segments equal (case and
 * all), a parameter any non-empty segment (or an empty last one); a static segment wins over a parameter there. */
function modelMatch(routes: Route[], method: string, raw: string): Route | undefined | 'bad-url' {
  const segs: string[] = [];
  for (const s of raw.split('/')) {
    try { segs.push(decodeURIComponent(s)); } catch { return 'bad-url'; }
  }
  const fits = routes.filter((r) => {
    if (r.method !== method) return false;
    const pat = r.url.split('/');
    // find-my-way lets a parameter at the very end be empty (`/api/instances/` reaches :slug = ''), not elsewhere.
    return pat.length === segs.length && pat.every((p, i) => (p.startsWith(':') ? segs[i] !== '' || i === pat.length - 1 : p === segs[i]));
  });
  const rank = (r: Route) => r.url.split('/').map((p) => (p.startsWith(':') ? '1' : '0')).join('');
  return fits.sort((a, b) => rank(a).localeCompare(rank(b)))[0];
}

const enc = (ch: string, lower: boolean) => {
  const e = [...Buffer.from(ch)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  return lower ? e.toLowerCase() : e.toUpperCase();
};

t.test('credentials × spellings of every route', async (t) => {
  const config = testConfig(t, { loginPerMinute: 1_000_000, signupPerHour: 1_000_000 });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const routes: Route[] = rt.app.routeTable.filter((r) => !r.url.startsWith('/documentation'));
  t.ok(routes.some((r) => r.page) && routes.some((r) => !r.page), 'the table has pages and API routes');

  const policy = { idleMinutes: 60, maxHours: 1 };
  const everyone = { id: 'operator', roles: [...PERSON_ROLES] };
  const people = new Map<Role, { userId: number; token: string }>();
  for (const role of PERSON_ROLES) {
    const u = await createUser(rt.db, { login: `as-${role}`, name: `As ${role}`, roles: [role] });
    people.set(role, { userId: u.id, token: createApiToken(rt.db, everyone, { name: role, roles: [role] }).token });
  }
  // The caller for a route: a person with a role the route allows (admin where the route is public).
  const callerFor = (r: Route) => {
    const allowed = PERMISSIONS[`${r.method} ${r.url}`]!;
    const role = (PERSON_ROLES as readonly Role[]).find((x) => allowed.includes(x)) ?? 'admin';
    return { role, ...people.get(role)! };
  };
  const tokensBefore = (rt.db.$client.prepare('select count(*) n from api_tokens').get() as { n: number }).n;

  let sent = 0;
  async function send(route: Route, path: string, cookie: Cred, bearer: Cred, body: 'json' | 'form' | 'auto' = 'auto') {
    const who = callerFor(route);
    const headers: Record<string, string> = { accept: 'application/json' };
    // A fresh session every time: POST /logout ends the one it is given.
    if (cookie === 'good') headers.cookie = `cattery_session=${createSession(rt.db, policy, who.userId, 'password')}`;
    if (cookie === 'forged') headers.cookie = `cattery_session=${crypto.randomBytes(32).toString('base64url')}`;
    if (bearer === 'good') headers.authorization = `Bearer ${who.token}`;
    if (bearer === 'forged') headers.authorization = `Bearer ct_1_${crypto.randomBytes(32).toString('base64url')}`;
    const kind = body === 'auto' ? (route.page ? 'form' : 'json') : body;
    const withBody = !['GET', 'DELETE', 'HEAD'].includes(route.method);
    if (withBody) headers['content-type'] = kind === 'json' ? 'application/json' : 'application/x-www-form-urlencoded';
    const r = await rt.app.inject({ method: route.method as 'GET', url: path, headers, ...(withBody ? { payload: kind === 'json' ? '{}' : 'x=1' } : {}) });
    sent++;
    return { status: r.statusCode, code: String(r.headers['x-cattery-error'] ?? ''), body: r.body };
  }

  /** The table's answer for the route the path reaches, or a 404 without authority where it reaches none. */
  async function check(route: Route, path: string, cookie: Cred, bearer: Cred): Promise<string | undefined> {
    const r = await send(route, path, cookie, bearer);
    const target = modelMatch(routes, route.method, path.split('?')[0]!);
    const what = `${route.method} ${path} cookie=${cookie} bearer=${bearer}: got ${r.status} ${r.code}`;
    if (target === 'bad-url') return r.status === 400 && r.code === 'CATTERY_ERR_VALIDATION' ? undefined : `${what}, expected 400 (undecodable)`;
    if (!target) return r.status === 404 && r.code === 'CATTERY_ERR_NOT_FOUND' ? undefined : `${what}, expected 404 (no route)`;
    const allowed = PERMISSIONS[`${target.method} ${target.url}`]!;
    // A node's agent route (config.signature) takes neither credential: its body's signature, which none of these has.
    const taken = target.signature ? 'none' : target.page ? cookie : bearer;
    // The credentials sent are those of callerFor(route); the spelling may reach another route (`%2F` in a
    // parameter), whose line in the table then decides.
    const role = callerFor(route).role;
    const expectAllow = allowed.includes('public') || (taken === 'good' && allowed.includes(role));
    if (expectAllow && DENIED.has(r.code)) return `${what}, expected allow (the table, route ${target.url})`;
    if (!expectAllow) {
      const code = taken === 'good' ? 'CATTERY_ERR_FORBIDDEN' : 'CATTERY_ERR_UNAUTHENTICATED';
      if (r.code !== code) return `${what}, expected ${code} (route ${target.url})`;
      if (code === 'CATTERY_ERR_UNAUTHENTICATED' && r.status !== (target.page ? 303 : 401)) return `${what}, expected ${target.page ? '303 to sign in' : '401'}`;
    }
    return undefined;
  }

  const failures: string[] = [];
  const note = (f: string | undefined) => { if (f && failures.length < 30) failures.push(f); };

  await t.test('plain path: every credential combination', async (t) => {
    for (const route of routes) for (const c of CREDS) for (const b of CREDS) note(await check(route, fill(route.url), c, b));
    t.same(failures, [], 'every route × cookie {none, good, forged} × bearer {none, good, forged} gets the table\'s answer');
  });

  await t.test('each character percent-encoded, in turn', async (t) => {
    for (const route of routes) {
      const path = fill(route.url);
      for (let i = 0; i < path.length; i++) {
        const spelled = path.slice(0, i) + enc(path[i]!, i % 2 === 0) + path.slice(i + 1);
        for (const [c, b] of [['good', 'none'], ['none', 'good'], ['good', 'good']] as [Cred, Cred][]) note(await check(route, spelled, c, b));
      }
    }
    t.same(failures, [], 'an encoded character (a slash included) changes nothing but what the router matches');
  });

  await t.test('doubled slashes, trailing slash, changed case', async (t) => {
    for (const route of routes) {
      const path = fill(route.url);
      const spellings = [`${path}/`, path.toUpperCase(), path.replace(/[a-z]/, (x) => x.toUpperCase())];
      for (let i = 0; i < path.length; i++) if (path[i] === '/') spellings.push(`${path.slice(0, i)}/${path.slice(i)}`);
      for (const s of spellings) for (const [c, b] of [['good', 'good'], ['good', 'none'], ['none', 'good']] as [Cred, Cred][]) note(await check(route, s, c, b));
    }
    t.same(failures, [], 'a spelling the router does not match is a 404 without authority, whatever is sent');
  });

  await t.test('generated spellings (fast-check)', async (t) => {
    const spelling = (path: string) => fc.tuple(
      fc.array(fc.constantFrom('keep', 'upper-hex', 'lower-hex', 'case'), { minLength: path.length, maxLength: path.length }),
      fc.option(fc.nat(path.length), { nil: undefined }), fc.boolean(),
    ).map(([how, extraSlashAt, trailing]) => {
      let s = [...path].map((ch, i) => (how[i] === 'keep' ? ch : how[i] === 'case' ? (ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase()) : enc(ch, how[i] === 'lower-hex'))).join('');
      if (extraSlashAt !== undefined) s = `${s.slice(0, extraSlashAt)}/${s.slice(extraSlashAt)}`;
      return trailing ? `${s}/` : s;
    }).filter((s) => s.startsWith('/'));
    const arb = fc.constantFrom(...routes).chain((route) => fc.record({
      route: fc.constant(route), path: spelling(fill(route.url)), cookie: fc.constantFrom(...CREDS), bearer: fc.constantFrom(...CREDS),
    }));
    await fc.assert(fc.asyncProperty(arb, async ({ route, path, cookie, bearer }) => {
      const f = await check(route, path, cookie, bearer);
      if (f) throw new Error(f);
    }), { numRuns: 1500 });
    t.pass('generated spellings of every route get the table\'s answer for the route they reach');
  });

  await t.test('form bodies reach no API route, pages take no JSON', async (t) => {
    const form: Record<string, { type: string; payload: string }> = {
      urlencoded: { type: 'application/x-www-form-urlencoded', payload: 'name=x&roles=admin' },
      'urlencoded, upper case': { type: 'Application/X-WWW-Form-Urlencoded; charset=utf-8', payload: 'name=x&roles=admin' },
      multipart: { type: 'multipart/form-data; boundary=zz', payload: '--zz\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--zz--\r\n' },
      'text/plain': { type: 'text/plain', payload: 'name=x' },
    };
    const bad: string[] = [];
    for (const route of routes.filter((r) => !r.page)) {
      const path = fill(route.url);
      for (const spelled of [path, path.replace(/[a-z]/, (x) => enc(x, false))]) {
        for (const [name, f] of Object.entries(form)) {
          const who = callerFor(route);
          const r = await rt.app.inject({ method: route.method as 'POST', url: spelled, headers: { authorization: `Bearer ${who.token}`, 'content-type': f.type }, payload: f.payload });
          if (r.statusCode !== 415 || r.headers['x-cattery-error'] !== 'CATTERY_ERR_UNSUPPORTED_MEDIA') bad.push(`${route.method} ${spelled} ${name}: ${r.statusCode} ${String(r.headers['x-cattery-error'])}`);
          const c = await rt.app.inject({
            method: route.method as 'POST', url: spelled, payload: f.payload,
            headers: { cookie: `cattery_session=${createSession(rt.db, policy, people.get('admin')!.userId, 'password')}`, 'content-type': f.type },
          });
          const publicRoute = PERMISSIONS[`${route.method} ${route.url}`]!.includes('public');
          // A signed route's credential is in its body: a body it cannot take is refused as such, before any identity.
          if (publicRoute || route.signature ? c.statusCode !== 415 : c.statusCode !== 401) bad.push(`${route.method} ${spelled} ${name} with an admin cookie: ${c.statusCode}`);
        }
      }
    }
    for (const route of routes.filter((r) => r.page && r.method === 'POST')) {
      const r = await send(route, fill(route.url), 'good', 'none', 'json');
      if (r.status !== 415 || r.code !== 'CATTERY_ERR_UNSUPPORTED_MEDIA') bad.push(`${route.method} ${route.url} JSON: ${r.status} ${r.code}`);
    }
    t.same(bad, [], 'every API route refuses form, multipart and text bodies with 415; every page form refuses JSON');
    const after = (rt.db.$client.prepare('select count(*) n from api_tokens').get() as { n: number }).n;
    t.equal(after, tokensBefore, 'no token was minted through any of it');
  });
  t.pass(`${sent} requests over ${routes.length} routes`);
});
