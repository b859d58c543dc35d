// No answer of cattery's is kept by a cache (a browser's, a proxy's, a public computer's): they carry people's data
// and secrets (a first password, a new token, an export, a sheet). For every route of the app's own table, asked by
// someone it lets in, the answer says `no-store`; the style sheet and the published figures (public) alone may be cached.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { OPERATOR, testConfig } from '../helpers.js';
import { PERMISSIONS } from '../../src/http/permissions.js';

const PARAMS: Record<string, string> = { slug: 'zz-missing', username: 'nobody', id: '999999', login: 'nobody', name: 'nobody' };

t.test('every answer of every route says no-store, but the style sheet', async (t) => {
  const rt = await createRuntime(testConfig(t, { loginPerMinute: 1_000_000, signupPerHour: 1_000_000 }), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const admin = await createUser(rt.db, { login: 'nostore-admin', name: 'Admin', roles: ['admin', 'mediator', 'city', 'resident'] });
  let n = 0;
  for (const r of rt.app.routeTable) {
    if (r.url.includes('*') || r.url === '/api/events') continue;
    const url = r.url.replace(/:(\w+)/g, (_m, p: string) => PARAMS[p] ?? 'x');
    const headers: Record<string, string> = r.page
      ? { cookie: `cattery_session=${createSession(rt.db, { idleMinutes: 60, maxHours: 1 }, admin.id, 'password')}`, accept: 'text/html' }
      : { ...OPERATOR, accept: 'application/json' };
    const withBody = !['GET', 'HEAD', 'DELETE'].includes(r.method);
    const res = await rt.app.inject({
      method: r.method as 'GET', url, headers: { ...headers, ...(withBody ? { 'content-type': r.page ? 'application/x-www-form-urlencoded' : 'application/json' } : {}) },
      ...(withBody ? { payload: r.page ? '' : '{}' } : {}),
    });
    const cc = String(res.headers['cache-control'] ?? '');
    if (r.url === '/assets/cattery.css') t.match(cc, /max-age/, 'the style sheet may be cached');
    // Published figures (open data, ChatonsInfos) are the same for everyone and hold no person: public routes only
    // (app.ts refuses a cacheable route with any other line), and only a successful answer is cached.
    else if (r.cacheable) {
      t.same(PERMISSIONS[`${r.method} ${r.url}`], ['public'], `${r.url}: cacheable, so public`);
      t.match(cc, res.statusCode === 200 ? /^public, max-age=\d+$/ : /no-store/, `${r.method} ${r.url} → ${res.statusCode}: cache-control "${cc}"`);
    }
    else t.match(cc, /no-store/, `${r.method} ${r.url} → ${res.statusCode}: cache-control "${cc}"`);
    n++;
  }
  t.ok(n >= 40, `${n} routes asked`);
  const made = await rt.app.inject({ method: 'POST', url: '/api/users', headers: OPERATOR, payload: { login: 'camille', name: 'Camille', roles: ['resident'] } });
  t.equal(made.statusCode, 201);
  t.equal(made.headers['cache-control'], 'no-store', 'a first password is never cached');
});
