// The role matrix: every route of the app × every role (and nobody), generated from the app's own route list, so a
// new route cannot escape it. A denial is the family's UNAUTHENTICATED or FORBIDDEN code; anything else (200, 400,
// 404, a CSRF refusal…) means the role got past the permission check.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { PERMISSIONS } from '../../src/http/permissions.js';
import { PERSON_ROLES } from '../../src/identity/roles.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { createApiToken } from '../../src/identity/tokens.js';
import { testConfig } from '../helpers.js';

const DENIED = new Set(['CATTERY_ERR_UNAUTHENTICATED', 'CATTERY_ERR_FORBIDDEN']);

t.test('every route × every role', async (t) => {
  const config = testConfig(t, { loginPerMinute: 100_000, signupPerHour: 100_000 });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const routes = rt.app.routeTable.filter((r) => !r.url.startsWith('/documentation'));

  t.same(new Set(routes.map((r) => `${r.method} ${r.url}`)), new Set(Object.keys(PERMISSIONS)),
    'the permissions table has exactly one line per route: none missing, none stale');

  const policy = { idleMinutes: 60, maxHours: 1 };
  const everyone = { id: 'operator', roles: [...PERSON_ROLES] };
  const callers: { role: string; session?: number; token?: string }[] = [{ role: 'nobody' }];
  for (const role of PERSON_ROLES) {
    const u = await createUser(rt.db, { login: `as-${role}`, name: `As ${role}`, roles: [role] });
    callers.push({ role, session: u.id, token: createApiToken(rt.db, everyone, { name: role, roles: [role] }).token });
  }

  let cells = 0;
  for (const route of routes) {
    const url = route.url.replace(':slug', 'zz-missing').replace(':username', 'nobody').replace(':id', '999999').replace(':login', 'nobody');
    const allowedRoles = PERMISSIONS[`${route.method} ${route.url}`]!;
    // The route's own config says which credential it takes (auth.ts): a page the cookie, anything else a token.
    const isApi = !route.page;
    for (const caller of callers) {
      const headers: Record<string, string> = {};
      // The API is reached with tokens, the pages with a session cookie (a fresh one each time: /logout ends it);
      // credential-paths.test.ts checks that the other credential, and every spelling of the path, changes nothing.
      if (isApi && caller.token) headers.authorization = `Bearer ${caller.token}`;
      if (!isApi && caller.session) headers.cookie = `cattery_session=${createSession(rt.db, policy, caller.session, 'password')}`;
      const body = route.method === 'GET' || route.method === 'DELETE' ? undefined : isApi ? {} : 'x=1';
      if (body !== undefined) headers['content-type'] = isApi ? 'application/json' : 'application/x-www-form-urlencoded';
      const r = await rt.app.inject({ method: route.method as 'GET', url, headers, ...(body !== undefined ? { payload: body } : {}) });
      const code = String(r.headers['x-cattery-error'] ?? '');
      const expected = allowedRoles.includes('public') || allowedRoles.includes(caller.role as never);
      cells++;
      if (expected === DENIED.has(code)) t.fail(`${route.method} ${route.url} as ${caller.role}: expected ${expected ? 'allow' : 'deny'}, got ${r.statusCode} ${code}`);
      // The city sees aggregates only: no route about other people or their accounts (/me and /api/me are the caller's own), nor
      // the association's members, their dues, their votes, the meetings (attendance, proxies) or the board's work (/board, not /dashboard).
      if (caller.role === 'city' && !/^\/(api\/)?me\b/.test(route.url) && /accounts|users|signups|mediator|admin|members|dues|votes|meetings|\/board\b/.test(route.url)) {
        if (!DENIED.has(code)) t.fail(`the city reached ${route.method} ${route.url}`);
      }
    }
  }
  t.pass(`${cells} cells checked (${routes.length} routes × ${callers.length} callers)`);
  t.ok(cells >= routes.length * 6);
});
