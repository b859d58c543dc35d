// The dashboards as charts, through the app (inject) on data generated into the real SQLite (tests/publication/
// fixture.ts, which returns the true figures): who sees what (the city: no name, and no count of people under the
// threshold, as a property over several generated data sets; a resident: their own accounts only; nobody: refused),
// and that every chart carries its table, its summary and a CSV with the same numbers, as well-formed SVG, on pages
// under 100 KB.
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { XMLValidator } from 'fast-xml-parser';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { createSession } from '../../src/identity/sessions.js';
import { createUser } from '../../src/identity/users.js';
import { testConfig } from '../helpers.js';
import { generate, type Truth } from './fixture.js';
import { buckets } from '../../src/publication/city.js';
import { energyBetween, energyByPeriods } from '../../src/metering/store.js';

const MIN = 11;
const DENIED = new Set(['CATTERY_ERR_UNAUTHENTICATED', 'CATTERY_ERR_FORBIDDEN']);
const policy = { idleMinutes: 60, maxHours: 1 };
// Charts of the city's page that count people, and the CSV column → truth for each (month → number).
const PEOPLE = ['accounts', 'signups', 'open-accounts', 'members'];

interface Block { id: string; svg: string; table: string; summary: string; csv: string }

/** The chart sections of a page, read from its HTML with plain patterns (the page is ours; XMLValidator checks the SVG). */
function blocks(html: string): Block[] {
  const out: Block[] = [];
  for (const m of html.matchAll(/<section class="chart-block" id="([a-z0-9-]+)"[\s\S]*?<\/section>/g)) {
    const s = m[0];
    out.push({
      id: m[1]!, svg: /<svg[\s\S]*?<\/svg>/.exec(s)?.[0] ?? '', table: /<table[\s\S]*?<\/table>/.exec(s)?.[0] ?? '',
      summary: /<p class="chart-summary">([\s\S]*?)<\/p>/.exec(s)?.[1] ?? '', csv: (/<a href="([^"]+\.csv[^"]*)"/.exec(s)?.[1] ?? '').replace(/&amp;/g, '&'),
    });
  }
  return out;
}

/** A table's body as [label, cells…] rows; a withheld cell is null, a number is read back from its French or English writing. */
function tableRows(html: string, lang: 'fr' | 'en'): (string | number | null)[][] {
  const body = /<tbody>([\s\S]*)<\/tbody>/.exec(html)?.[1] ?? '';
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((r) => [...r[1]!.matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((c, i) => {
    const x = c[1]!;
    if (i === 0) return x;
    if (x === 'secret') return null;
    return Number(lang === 'fr' ? x.replace(/[\s\u202f\u00a0]/g, '').replace(',', '.') : x.replace(/,/g, ''));
  }));
}

function csvRows(body: string): (string | number | null)[][] {
  return body.trim().split('\r\n').slice(1).map((l) => l.split(',').map((c, i) => (i === 0 ? c : c === '' ? null : Number(c))));
}

async function world(seed: number) {
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  const truth = await generate(rt, seed);
  const cookie = async (role: string) => {
    const u = await createUser(rt.db, { login: `as-${role}`, name: `As ${role}`, roles: [role] });
    return `cattery_session=${createSession(rt.db, policy, u.id, 'password')}`;
  };
  return { rt, truth, city: await cookie('city'), admin: await cookie('admin') };
}

const get = (rt: Runtime, url: string, cookie?: string) => rt.app.inject({ method: 'GET', url, headers: cookie ? { cookie } : {} });

t.test('the city sees no name and no group under the threshold, whatever the data (property)', async (t) => {
  let runs = 0;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (seed) => {
    const { rt, truth, city } = await world(seed);
    try {
      const r = await get(rt, '/dashboard/city?grain=month&lang=fr', city);
      t.equal(r.statusCode, 200);
      const html = r.body;
      // No person: neither a resident's name or login, nor a member's name.
      if (/Résidente|Membre |\bu\d+\b|As city/.test(html.replace(/<svg[\s\S]*?<\/svg>/g, ''))) throw new Error(`a name on the city's page (seed ${seed})`);
      const bs = blocks(html);
      let compared = 0;
      for (const id of PEOPLE) {
        const b = bs.find((x) => x.id === id);
        if (!b) throw new Error(`chart ${id} missing`);
        const rows = csvRows((await get(rt, b.csv, city)).body);
        for (const row of rows) for (const v of row.slice(1)) {
          if (typeof v === 'number' && v > 0 && v < MIN) throw new Error(`${id}: a published group of ${v} (seed ${seed})`);
        }
        // What is published is the truth (accounts: each service; a hidden cell is null).
        if (id === 'accounts') {
          const header = (await get(rt, b.csv, city)).body.split('\r\n')[0]!.split(',').slice(1);
          rows.forEach((row) => {
            const month = row[0] as string;
            header.forEach((h, k) => {
              const v = row[k + 1];
              const svc = truth.services.find((s) => h === `${rt.catalog.services.get(s)!.manifest.name.fr} (comptes)`);
              if (v === null || !svc || !truth.accounts.has(month)) return;
              compared++;
              if (v !== truth.accounts.get(month)!.get(svc)) throw new Error(`${id} ${month} ${h}: ${v} is not the truth`);
            });
          });
        }
      }
      // A service with residents under the threshold never has an energy series of its own.
      const energy = bs.find((x) => x.id === 'energy-services')!;
      const head = (await get(rt, energy.csv, city)).body.split('\r\n')[0]!;
      const current = truth.months[truth.months.length - 1]!;
      for (const s of truth.services) {
        const n = truth.accounts.get(current)!.get(s)!;
        const name = rt.catalog.services.get(s)!.manifest.name.fr;
        if (n > 0 && n < MIN && head.includes(`${name} (kWh)`)) throw new Error(`energy of ${s} shown alone with ${n} residents (seed ${seed})`);
      }
      if (compared === 0) throw new Error(`no published count compared with the truth (seed ${seed})`);
      runs++;
    } finally { await rt.close(); }
  }), { numRuns: 4, seed: 20261203, endOnFailure: true, includeErrorInReport: true });
  t.equal(runs, 4, 'four generated data sets, each checked');
});

t.test('every chart has its table, summary and CSV with the same numbers; SVG well-formed; pages under 100 KB', async (t) => {
  const { rt, truth, city, admin } = await world(7);
  t.teardown(() => rt.close());
  // A resident of the fixture with an account, signed in.
  const owner = rt.db.$client.prepare('SELECT u.id id, u.login login FROM users u JOIN accounts a ON a.user_id = u.id ORDER BY u.id LIMIT 2').all() as { id: number; login: string }[];
  const resident = `cattery_session=${createSession(rt.db, policy, owner[0]!.id, 'password')}`;
  void truth;
  const pages: [string, string, 'fr' | 'en'][] = [
    ...['day', 'week', 'month', 'year'].map((g): [string, string, 'fr' | 'en'] => [`/dashboard/city?grain=${g}&lang=fr`, city, 'fr']),
    ['/dashboard/city?grain=month&lang=en', admin, 'en'],
    ['/admin/health?lang=fr', admin, 'fr'],
    ['/me/usage?lang=en', resident, 'en'],
    ['/me/usage?lang=fr', resident, 'fr'],
  ];
  for (const [url, cookie, lang] of pages) {
    const r = await get(rt, url, cookie);
    t.equal(r.statusCode, 200, url);
    t.ok(Buffer.byteLength(r.body) < 100_000, `${url}: ${Buffer.byteLength(r.body)} bytes`);
    t.notMatch(r.body, /https?:\/\/(?!www\.w3\.org\/2000\/svg|impactco2\.fr)[^"]*"[^>]*(src|href)=/, `${url}: nothing from elsewhere`);
    // The one script a dashboard may load is cattery's own live power figure (its page is whole without it).
    const scripts = r.body.match(/<script\b[^>]*>[\s\S]*?<\/script>/gi) ?? [];
    t.same(scripts, url.startsWith('/dashboard/city') ? ['<script src="/assets/live-power.js" defer></script>'] : [], `${url}: scripts`);
    t.equal((r.body.match(/<script/gi) ?? []).length, scripts.length, `${url}: no other script element`);
    const bs = blocks(r.body);
    t.ok(bs.length >= (url.startsWith('/dashboard') ? 9 : 1), `${url}: ${bs.length} charts`);
    for (const b of bs) {
      t.equal(XMLValidator.validate(b.svg), true, `${url} ${b.id}: the SVG is well-formed XML`);
      t.match(b.svg, /role="img"/);
      t.match(b.svg, /<title id="[^"]+">[^<]+<\/title><desc id="[^"]+">[^<]+<\/desc>/, `${b.id}: title and desc`);
      t.ok(b.summary.length > 20, `${b.id}: a summary`);
      t.ok(b.table.includes('<caption>'), `${b.id}: a table`);
      const c = await get(rt, b.csv, cookie);
      t.equal(c.statusCode, 200, `${b.id}: CSV`);
      t.match(c.headers['content-type'], /^text\/csv/);
      t.same(tableRows(b.table, lang), csvRows(c.body), `${url} ${b.id}: the table and the CSV hold the same numbers`);
    }
  }
  // The city's charts read metering's running totals once per bound: the same rows as energyBetween period by period.
  for (const grain of ['day', 'week', 'month', 'year'] as const) {
    const now = new Date();
    const bounds = buckets(grain, now).bounds.map((b) => (b > now ? now : b));
    const swept = energyByPeriods(rt.db, bounds);
    const each = bounds.slice(1).map((to, i) => energyBetween(rt.db, bounds[i]!, to));
    t.same(swept, each, `${grain}: energyByPeriods equals energyBetween for each period`);
    t.ok(each.some((rows) => rows.length > 0), `${grain}: some energy to compare`);
  }
  // A resident sees only their own accounts.
  const other = owner[1]!;
  const mine = await get(rt, '/me/usage/my-energy.csv', resident);
  t.match(mine.body, new RegExp(`\\(${owner[0]!.login}\\)`), 'the resident\'s own account is there');
  t.notMatch(mine.body, new RegExp(`\\(${other.login}\\)`), 'another resident\'s account is not');
  const ownAccounts = rt.db.$client.prepare('SELECT COUNT(*) n FROM accounts WHERE user_id = ?').get(owner[0]!.id) as { n: number };
  t.equal(mine.body.trim().split('\r\n')[0]!.split(',').length - 1, ownAccounts.n, 'one series per own account, no more');
  t.match((await get(rt, '/me/usage?lang=fr', resident)).body, /impactco2\.fr/, 'the bus comparison cites its source');
});

t.test('who may open which dashboard', async (t) => {
  const { rt, city, admin } = await world(11);
  t.teardown(() => rt.close());
  const u = await createUser(rt.db, { login: 'plain-resident', name: 'Plain', roles: ['resident'] });
  const resident = `cattery_session=${createSession(rt.db, policy, u.id, 'password')}`;
  const cases: [string, string | undefined, boolean][] = [
    ['/dashboard/city', undefined, false], ['/dashboard/city/accounts.csv', undefined, false], ['/admin/health', undefined, false], ['/me/usage', undefined, false], ['/me/usage/my-energy.csv', undefined, false],
    ['/dashboard/city', resident, false], ['/dashboard/city/accounts.csv', resident, false], ['/admin/health', resident, false], ['/admin/health/operations.csv', city, false],
    ['/admin/health', city, false], ['/dashboard/city', city, true], ['/dashboard/city/accounts.csv', city, true], ['/dashboard/city', admin, true],
    ['/admin/health', admin, true], ['/admin/health/operations.csv', admin, true], ['/me/usage', resident, true], ['/me/usage/my-energy.csv', resident, true],
  ];
  for (const [url, cookie, allowed] of cases) {
    const r = await get(rt, url, cookie);
    const code = String(r.headers['x-cattery-error'] ?? '');
    t.equal(!DENIED.has(code), allowed, `${url} as ${cookie ? cookie.slice(0, 20) : 'nobody'}: ${r.statusCode} ${code}`);
    if (allowed) t.equal(r.statusCode, 200, url);
  }
  t.equal((await get(rt, '/dashboard/city/nope.csv', city)).statusCode, 404, 'an unknown chart is a 404');
});
