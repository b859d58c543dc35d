// The open data through the app (inject), on data generated into the real SQLite: every CSV is valid against the
// Table Schema served beside it (checked by tests/publication/table-schema.ts, not by the code that writes them), no
// secret group shows — neither a small cell nor one a published total would give back —, what is published is the
// truth, and the stable URLs answer with the right types, licence and caching headers, without signing in.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { testConfig } from '../helpers.js';
import { generate, type Truth } from './fixture.js';
import { records, validate, type TableSchema } from './table-schema.js';

const MIN = 11;

t.test('open data', async (t) => {
  const config = testConfig(t);
  const rt = await createRuntime({ ...config, publication: { ...config.publication, organization: { ...config.publication.organization, name: 'Chatons de Bourg, « libres »', inseeCode: '01053' } } }, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const truth: Truth = await generate(rt, 20261203);
  const [older, latest, current] = truth.months as [string, string, string];
  const get = (url: string, headers: Record<string, string> = {}) => rt.app.inject({ method: 'GET', url, headers });

  const datasets = ['energy-per-service', 'usage-per-service', 'members-per-college'];
  const schemas = new Map<string, TableSchema>();
  for (const d of datasets) {
    const r = await get(`/open-data/${d}/schema.json`);
    t.equal(r.statusCode, 200, `${d} schema`);
    t.match(r.headers['content-type'], /^application\/schema\+json; charset=utf-8/);
    t.match(String(r.headers.link), /etalab.*rel="license"/);
    const s = r.json() as TableSchema & { licenses: { name: string }[] };
    t.equal(s.licenses[0]!.name, 'etalab-2.0', 'Licence Ouverte 2.0 declared');
    for (const f of ['indicateur', 'valeur', 'unite_mesure', 'date', 'est_periode', 'date_debut', 'frequence_monitoring']) t.ok(s.fields.some((x) => x.name === f), `${d}: Etalab column ${f}`);
    schemas.set(d, s);
  }

  t.test('every file validates against its schema, for every month', async (t) => {
    for (const d of datasets) for (const file of [`${older}.csv`, `${latest}.csv`, `${current}.csv`, 'latest.csv']) {
      const r = await get(`/open-data/${d}/${file}`);
      t.equal(r.statusCode, 200, `${d}/${file}`);
      t.same(validate(r.body, schemas.get(d)!), [], `${d}/${file} is valid`);
    }
  });

  t.test('no secret group shows, and what shows is true', async (t) => {
    for (const month of truth.months) {
      const usage = records((await get(`/open-data/usage-per-service/${month}.csv`)).body);
      const members = records((await get(`/open-data/members-per-college/${month}.csv`)).body);
      const energy = records((await get(`/open-data/energy-per-service/${month}.csv`)).body);
      const check = (rows: Record<string, string>[], key: string, indicator: string, truthOf: (k: string) => number, label: string) => {
        const lines = rows.filter((r) => r.indicateur === indicator);
        t.ok(lines.length > 1, `${label}: rows present`);
        let hiddenSum = 0, hidden = 0, publishedSum = 0;
        for (const r of lines.filter((x) => x[key] !== 'total')) {
          const n = truthOf(r[key]!);
          if (r.valeur === '') { t.equal(r.secret_statistique, 'true'); hidden++; hiddenSum += n; continue; }
          t.equal(r.secret_statistique, 'false');
          t.ok(n === 0 || n >= MIN, `${label} ${r[key]}: a published group of ${n}`);
          t.equal(Number(r.valeur), n, `${label} ${r[key]}: the true figure`);
          publishedSum += n;
        }
        const total = lines.find((x) => x[key] === 'total')!;
        if (total.valeur !== '') {
          t.equal(Number(total.valeur), publishedSum + hiddenSum, `${label}: the published total is the true total`);
          // What the total gives back — total minus the published cells — is the hidden cells together.
          t.ok(hidden === 0 || (hidden >= 2 && hiddenSum >= MIN), `${label}: total − published = ${hiddenSum} over ${hidden} hidden cells`);
        }
      };
      check(usage, 'service', 'Nombre de comptes', (s) => truth.accounts.get(month)!.get(s) ?? 0, `${month} accounts`);
      check(usage, 'service', 'Inscriptions faites seul', (s) => truth.signups.get(month)!.get(s)?.[0] ?? 0, `${month} sign-ups alone`);
      check(usage, 'service', 'Inscriptions faites avec un médiateur', (s) => truth.signups.get(month)!.get(s)?.[1] ?? 0, `${month} sign-ups with a mediator`);
      check(usage, 'service', 'Inscriptions', (s) => (truth.signups.get(month)!.get(s)?.[0] ?? 0) + (truth.signups.get(month)!.get(s)?.[1] ?? 0), `${month} sign-ups`);
      check(members, 'college', 'Nombre de membres', (c) => truth.members.get(month)!.get(c) ?? 0, `${month} members`);
      // Energy: a service whose residents are fewer than 11 has its energy withheld with them.
      for (const r of energy.filter((x) => x.service !== 'total')) {
        const n = truth.accounts.get(month)!.get(r.service!) ?? 0;
        if (n > 0 && n < MIN) t.equal(r.valeur, '', `${month} energy of ${r.service}: withheld (${n} residents)`);
        t.equal(r.unite_mesure, 'kWh');
      }
      // Storage is the month in progress only; there the dominance rule holds too (the fixture plants large accounts).
      const storage = usage.filter((r) => r.indicateur === 'Stockage utilisé');
      t.equal(storage.length > 0, month === current, `${month}: storage only for the month in progress`);
      for (const r of storage) {
        if (r.service === 'total' || r.valeur === '') continue;
        const b = truth.bytes.get(r.service!) ?? [];
        const sum = b.reduce((a, x) => a + x, 0);
        t.ok(b.length === 0 || b.length >= MIN, `storage of ${r.service}: ${b.length} residents`);
        t.equal(Number(r.valeur), sum, `storage of ${r.service}: the true sum`);
        t.ok(sum === 0 || Math.max(...b) <= 0.85 * sum, `storage of ${r.service}: no account over 85 %`);
      }
      if (month === current) {
        // The fixture plants a resident holding most of a service's storage among many: withheld all the same.
        const dominated = [...truth.bytes].filter(([, b]) => b.length >= MIN && Math.max(...b) > 0.85 * b.reduce((a, x) => a + x, 0)).map(([s]) => s);
        t.ok(dominated.length > 0, 'the dominance rule is exercised');
        for (const s of dominated) t.equal(storage.find((r) => r.service === s)!.valeur, '', `storage of ${s}: one account dominates, withheld`);
      }
    }
  });

  t.test('stable URLs: types, licence, caching, validators', async (t) => {
    const r = await get(`/open-data/usage-per-service/${older}.csv`);
    t.match(r.headers['content-type'], /^text\/csv; charset=utf-8/);
    t.equal(r.headers['cache-control'], 'public, max-age=86400', 'a closed month is cached a day');
    t.equal(r.headers['access-control-allow-origin'], '*');
    t.match(String(r.headers.link), /licence-ouverte.*rel="license"/);
    t.ok(r.headers.etag);
    t.equal((await get(`/open-data/usage-per-service/${older}.csv`)).body, r.body, 'the same month reads the same');
    const again = await get(`/open-data/usage-per-service/${older}.csv`, { 'if-none-match': String(r.headers.etag) });
    t.equal(again.statusCode, 304, 'a client holding it gets 304');
    const l = await get('/open-data/usage-per-service/latest.csv');
    t.equal(l.headers['cache-control'], 'public, max-age=3600', 'latest moves: an hour');
    t.equal(l.headers['content-location'], `/open-data/usage-per-service/${latest}.csv`);
    t.equal(l.body, (await get(`/open-data/usage-per-service/${latest}.csv`)).body, 'latest is the last complete month');
    t.equal((await get(`/open-data/usage-per-service/${current}.csv`)).headers['cache-control'], 'public, max-age=3600', 'the month in progress: an hour');
    t.match(r.body, /Chatons de Bourg, « libres »/, 'the publisher named');
    t.match(r.body, /,01053,/, 'the INSEE code of the city');
    const future = new Date(Date.UTC(new Date().getUTCFullYear() + 1, 0, 1)).toISOString().slice(0, 7);
    t.equal((await get(`/open-data/usage-per-service/${future}.csv`)).statusCode, 404, 'a month to come has no figures');
    for (const bad of ['2026-13.csv', 'latest.json', '..%2Fschema.json', '2026-1.csv']) {
      t.equal((await get(`/open-data/usage-per-service/${bad}`)).statusCode, 404, `${bad}: no such file`);
    }
    t.equal((await get('/open-data/nope/latest.csv')).statusCode, 404, 'an unknown dataset');
    t.equal((await get('/open-data/nope/schema.json')).statusCode, 404, 'an unknown dataset\'s schema');
    const pkg = await get('/open-data/datapackage.json');
    t.equal(pkg.statusCode, 200);
    t.equal((pkg.json() as { resources: unknown[] }).resources.length, 3);
  });
});
