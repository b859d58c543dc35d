// Every page of cattery, for every role that may open it, in Chromium (issue 13, "Sobriety" and "axe-core on every
// page"): no axe-core violation (WCAG 2.0/2.1 A and AA, best practices), under 100 KB on the wire (compressed, as
// Chromium received it, the stylesheet and everything else the page pulls included), and no request to any other
// origin. The list of pages is the app's own route table (GET routes with config.page), so a new page cannot skip
// the audit: a page route that is neither audited here nor declared a download below fails the test. Fixture data
// (tests/publication/fixture.ts, plus governance) makes each page show what it shows in use: tables, charts, forms.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { PERMISSIONS } from '../../src/http/permissions.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { admit, applyForMembership, updateMember } from '../../src/governance/members.js';
import { recordPayment } from '../../src/governance/dues.js';
import { closeDuePolls, createMeeting, createPoll } from '../../src/governance/polls.js';
import { upsertCategory } from '../../src/governance/settings.js';
import { PAGE_BUDGET, axeViolations, launchChromium, weighPage } from '../chromium.js';
import { generate } from '../publication/fixture.js';
import { freePort } from '../identity/provider.js';
import { testConfig } from '../helpers.js';

/** Page routes that answer something other than a page (a download, a redirect), each with what it is. They are
 * checked not to answer an HTML page; anything else with config.page is audited. */
const NOT_PAGES: Record<string, string> = {
  '/login/oidc': 'a redirect to the identity provider',
  '/auth/callback': 'the identity provider\'s redirect back',
  '/me/accounts/:id/export': 'a tar archive of one\'s account',
  '/me/accounts/:id/mail.mobileconfig': 'a mail profile',
  '/me/membership/export': 'one\'s membership as JSON',
  '/dashboard/city/:file': 'a chart\'s CSV or SVG',
  '/admin/health/:file': 'a chart\'s CSV or SVG',
  '/me/usage/:file': 'a chart\'s CSV or SVG',
  '/admin/members.csv': 'CSV',
  '/admin/payments.csv': 'CSV',
};

t.test('every page × every role that may open it: axe, weight, no third party', async (t) => {
  const started = Date.now();
  const port = await freePort();
  const rt = await createRuntime(testConfig(t, { port, publicUrl: `http://127.0.0.1:${port}` }), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const base = await rt.app.listen({ host: '127.0.0.1', port });
  const { db, catalog } = rt;

  // ── Fixture: instances, accounts, sign-ups, metering, colleges and members; governance in use ──
  await generate(rt, 13);
  upsertCategory(db, { slug: 'normale', nameFr: 'Normale', nameEn: 'Normal', amountCents: 1200, period: 'year' }, 'test');
  const person = async (login: string, roles: string[], membership?: 'member' | 'board') => {
    const u = await createUser(db, { login, name: `${login[0]!.toUpperCase()}${login.slice(1)} Exemple`, roles: roles as never });
    if (membership) {
      const m = applyForMembership(db, { kind: 'person', name: u.name, userId: u.id, college: 'habitants', category: 'normale' }, 'test');
      admit(db, m.id, 'test');
      recordPayment(db, m.id, { amountCents: 1200, method: 'cash' }, 'test');
      if (membership === 'board') updateMember(db, m.id, { board: true }, 'test');
    }
    return u.id;
  };
  // The resident is one of the fixture's (u1: accounts and usage of her own); the others are made here.
  const u1 = (db.$client.prepare("select id from users where login = 'u1'").get() as { id: number }).id;
  const users: Record<string, number> = {
    resident: u1,
    mediator: await person('camille', ['mediator']),
    admin: await person('alix', ['admin']),
    city: await person('mairie', ['city']),
    member: await person('bruno', ['resident'], 'member'),
    board: await person('alice', ['resident'], 'board'),
  };
  await person('chloe', ['resident'], 'member');
  const meeting = createMeeting(db, { kind: 'general', title: 'Assemblée générale', startsAt: new Date(Date.now() + 86_400_000).toISOString(), agenda: 'Rapport d’activité\nBudget', quorumPct: 25 }, 'test');
  const day = 86_400_000, iso = (ms: number) => new Date(Date.now() + ms).toISOString();
  createPoll({ db, catalog }, { kind: 'proposal', title: 'Ouvrir les pads à l’inscription', body: 'Le bureau le propose.', secret: true, opensAt: iso(-day), closesAt: iso(7 * day), meetingId: meeting.id }, 'test');
  createPoll({ db, catalog }, { kind: 'single', title: 'Date de la fête', options: ['Juin', 'Septembre'], secret: false, opensAt: iso(-day), closesAt: iso(7 * day) }, 'test');
  const past = createPoll({ db, catalog }, { kind: 'proposal', title: 'Adopter la charte', secret: true, opensAt: iso(-3 * day), closesAt: iso(-day) }, 'test');
  closeDuePolls({ db, catalog });
  const params: Record<string, Record<string, string>> = {
    '/decisions/:id': { id: String(past.id) },
    '/board/meetings/:id': { id: String(meeting.id) },
    // The yearly report as a page (its `<year>.pdf` twin is printed by Chromium: tests/publication/transparency.test.ts).
    '/transparency/report/:file': { file: String(new Date().getUTCFullYear() - 1) },
  };
  t.comment(`fixture: ${Date.now() - started} ms`);

  // ── The list, from the app's own routes ──
  // A page WebSocket (the dashboards' live power) is not a page to open: csrf-same-site.test.ts checks its handshake.
  const routes = rt.app.routeTable.filter((r) => r.page && r.method === 'GET' && !r.websocket);
  const visits: { url: string; role: string; route: string }[] = [];
  for (const r of routes) {
    if (r.url in NOT_PAGES) continue;
    let url = r.url;
    for (const [, name] of r.url.matchAll(/:([A-Za-z]+)/g)) {
      const v = params[r.url]?.[name!];
      if (v === undefined) { t.fail(`page ${r.url}: no fixture for :${name} (add one to params, or the route to NOT_PAGES if it is not a page)`); continue; }
      url = url.replace(`:${name}`, v);
    }
    const roles = PERMISSIONS[`GET ${r.url}`]!;
    for (const role of roles) visits.push({ url, role: role === 'public' ? 'anonymous' : role, route: r.url });
  }
  const audited = new Set(visits.map((v) => v.route));
  for (const r of routes) if (!(r.url in NOT_PAGES)) t.ok(audited.has(r.url), `${r.url} is audited`);
  t.ok(routes.length - Object.keys(NOT_PAGES).length >= 20, `${audited.size} pages, ${visits.length} visits`);

  // The downloads are not pages: none answers an HTML page to a role that may fetch it (with a real file where the
  // fixture has one: the charts' CSV, one's membership; the others need a running service or an identity provider).
  const files: Record<string, [string, string]> = {
    '/dashboard/city/:file': ['/dashboard/city/energy-servers.csv', 'city'],
    '/admin/health/:file': ['/admin/health/operations.csv', 'admin'],
    '/me/usage/:file': ['/me/usage/my-energy.csv', 'resident'],
    '/me/membership/export': ['/me/membership/export', 'member'],
    '/admin/members.csv': ['/admin/members.csv', 'admin'],
    '/admin/payments.csv': ['/admin/payments.csv', 'admin'],
  };
  for (const [route, what] of Object.entries(NOT_PAGES)) {
    t.ok(routes.some((r) => r.url === route), `${route} (${what}) is still a route`);
    const [url, role] = files[route] ?? [route.replace(':id', '1'), PERMISSIONS[`GET ${route}`]!.find((r) => r !== 'public')];
    const cookie = role ? `cattery_session=${createSession(db, { idleMinutes: 60, maxHours: 1 }, users[role]!, 'password')}` : '';
    const r = await rt.app.inject({ url, headers: { cookie } });
    if (files[route]) t.equal(r.statusCode, 200, `${url}: a file`);
    t.notOk(r.statusCode === 200 && String(r.headers['content-type']).startsWith('text/html'), `${route}: not an HTML page (${r.statusCode} ${r.headers['content-type']})`);
  }

  // ── Chromium: one context per person (a session of their own), every cache off while weighing ──
  const browser = await launchChromium(t);
  const contexts = new Map<string, Awaited<ReturnType<typeof browser.newContext>>>();
  const contextOf = async (role: string) => {
    if (!contexts.has(role)) {
      // CSP bypassed so that axe-core (an inline script) can run after the weighing; it changes no byte counted.
      const c = await browser.newContext({ bypassCSP: true, locale: 'fr-FR' });
      if (role !== 'anonymous') {
        await c.addCookies([{ name: 'cattery_session', value: createSession(db, { idleMinutes: 60, maxHours: 2 }, users[role]!, 'password'), url: base }]);
      }
      contexts.set(role, c);
    }
    return contexts.get(role)!;
  };
  const weights: [string, number][] = [];
  const failures: string[] = [];
  const axed = new Set<string>();
  let axeRuns = 0;
  const visit = async (v: (typeof visits)[number]) => {
    const page = await (await contextOf(v.role)).newPage();
    let status = 0;
    page.on('response', (r) => { if (r.url() === `${base}${v.url}`) status = r.status(); });
    const w = await weighPage(page, `${base}${v.url}`);
    const name = `${v.url} as ${v.role}`;
    weights.push([name, w.bytes]);
    if (status !== 200) failures.push(`${name}: status ${status}`);
    if (w.bytes >= PAGE_BUDGET) failures.push(`${name}: ${w.bytes} bytes (budget ${PAGE_BUDGET}): ${JSON.stringify(w.parts)}`);
    if (w.foreign.length) failures.push(`${name}: asked other origins: ${w.foreign.join(' ')}`);
    // axe (about a second a page) on every page route once, and on every role's first page (the menu is the layout's,
    // by role): each template and each menu is audited; the other visits are weighed and checked for third parties.
    if (!axed.has(v.route) || !axed.has(`role:${v.role}`)) {
      axed.add(v.route); axed.add(`role:${v.role}`); axeRuns++;
      for (const x of await axeViolations(page)) failures.push(`${name}: axe ${x.id} (${x.impact}) on ${x.nodes.join(', ')}`);
    }
    await page.close();
  };
  // Three pages at a time in the one Chromium: the audit stays well under two minutes on a loaded 2-core machine.
  for (const r of [...new Set(visits.map((v) => v.role))]) await contextOf(r);
  const queue = [...visits];
  await Promise.all([1, 2, 3].map(async () => { for (let v = queue.shift(); v; v = queue.shift()) await visit(v); }));
  weights.sort((a, b) => b[1] - a[1]);
  t.comment(`weights (bytes on the wire, heaviest first): ${weights.map(([n, b]) => `${n} ${b}`).join('; ')}`);
  t.same(failures, [], `${visits.length} visits: every page accessible, under ${PAGE_BUDGET} bytes, nothing from elsewhere`);
  t.ok(axeRuns >= audited.size, `axe ran on ${axeRuns} pages: every page route and every role's menu`);
  t.comment(`audit: ${Date.now() - started} ms`);
});
