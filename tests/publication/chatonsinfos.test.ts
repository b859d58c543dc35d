// The ChatonsInfos files through the app (inject): read back with a strict parser written here from
// java.util.Properties.load's rules (not from the writer), every required key present with a value of its kind,
// values with accents, `=`, `:`, `#`, leading spaces and line breaks coming back whole (a property over generated
// strings), the metrics showing no secret cell, and the files public as text/plain UTF-8.
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { properties } from '../../src/publication/properties.js';
import { setServiceSettings } from '../../src/governance/settings.js';
import { testConfig } from '../helpers.js';
import { generate } from './fixture.js';

/** java.util.Properties.load(Reader): logical lines (a line ending in an odd number of backslashes continues, the
 * next line's leading whitespace dropped), comments (# or ! first), the key up to an unescaped =, : or whitespace,
 * then whitespace and one = or : skipped; escapes \t \n \r \f \uXXXX, and \x for any other x. Strict: a malformed
 * \u escape or a key given twice is an error here. */
export function parseProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const physical = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < physical.length; i++) {
    let line = physical[i]!.replace(/^[ \t\f]+/, '');
    if (line === '' || line[0] === '#' || line[0] === '!') continue;
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < physical.length) {
      line = line.slice(0, -1) + physical[++i]!.replace(/^[ \t\f]+/, '');
    }
    let k = 0;
    let key = '';
    const unescape = (s: string, at: number): [string, number] => {
      const c = s[at + 1];
      if (c === undefined) return ['', at + 1];
      if (c === 'u') {
        const hex = s.slice(at + 2, at + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new Error(`malformed \\u escape in ${JSON.stringify(s)}`);
        return [String.fromCharCode(parseInt(hex, 16)), at + 6];
      }
      return [({ t: '\t', n: '\n', r: '\r', f: '\f' } as Record<string, string>)[c] ?? c, at + 2];
    };
    while (k < line.length) {
      const c = line[k]!;
      if (c === '\\') { const [ch, next] = unescape(line, k); key += ch; k = next; continue; }
      if (c === '=' || c === ':' || c === ' ' || c === '\t' || c === '\f') break;
      key += c; k++;
    }
    while (k < line.length && /[ \t\f]/.test(line[k]!)) k++;
    if (line[k] === '=' || line[k] === ':') k++;
    while (k < line.length && /[ \t\f]/.test(line[k]!)) k++;
    let value = '';
    while (k < line.length) {
      const c = line[k]!;
      if (c === '\\') { const [ch, next] = unescape(line, k); value += ch; k = next; continue; }
      value += c; k++;
    }
    if (out.has(key)) throw new Error(`key ${key} given twice`);
    out.set(key, value);
  }
  return out;
}

const ORG_REQUIRED = ['file.class', 'file.protocol', 'file.datetime', 'file.generator', 'organization.name', 'organization.description',
  'organization.website', 'organization.type', 'organization.status.level', 'organization.startdate', 'organization.memberof.chatons.startdate',
  'organization.contact.email', 'organization.contact.url', 'organization.legal.url', 'organization.country.code',
  'organization.geolocation.latitude', 'organization.geolocation.longitude', 'organization.geolocation.address'];
const SERVICE_REQUIRED = ['file.class', 'file.protocol', 'file.datetime', 'file.generator', 'service.name', 'service.description',
  'service.website', 'service.status.level', 'service.registration', 'service.registration.load', 'software.name', 'software.version',
  'software.license.name', 'software.source.url', 'host.name', 'host.server.type', 'host.provider.type', 'host.country.name', 'host.country.code'];

t.test('values round-trip through the strict reader', async (t) => {
  const awkward = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom(' lead', 'a = b : c', '#not a comment', '!bang', 'l1\nl2\r\nl3', 'trailing\\', '\\u0041', 'Éloïse ß 猫 🐈', 'x\u2028y'));
  fc.assert(fc.property(fc.array(fc.tuple(fc.stringMatching(/^[a-z][a-z0-9.]{0,20}$/), awkward), { maxLength: 8 }), (pairs) => {
    const unique = [...new Map(pairs).entries()];
    const back = parseProperties(properties([{ title: 'T', entries: unique }]));
    for (const [k, v] of unique) if (back.get(k) !== v) throw new Error(`${JSON.stringify(k)}: ${JSON.stringify(v)} came back ${JSON.stringify(back.get(k))}`);
    if (back.size !== unique.length) throw new Error('extra keys');
  }), { numRuns: 2000 });
  // Keys with separators in them survive too.
  const back = parseProperties(properties([{ title: 'T', entries: [['a b=c:d', 'v'], ['#k', 'w']] }]));
  t.equal(back.get('a b=c:d'), 'v');
  t.equal(back.get('#k'), 'w');
});

t.test('the ChatonsInfos files', async (t) => {
  const config = testConfig(t);
  const org = {
    ...config.publication.organization, name: 'Chatons de l\'Ain : libres = solidaires', description: 'Hébergeur associatif\nà Bourg-en-Bresse',
    website: 'https://chatons.example.org', startDate: '2019-03-14', chatonsSince: '2021-06-01', contactEmail: 'contact@chatons.example.org',
    geolocation: '46.2052,5.2255', address: '1 place de l\'Hôtel de Ville, Bourg-en-Bresse',
  };
  const rt = await createRuntime({ ...config, publication: { ...config.publication, organization: org, host: { ...config.publication.host, name: 'Salle serveur, mairie' } } }, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const truth = await generate(rt, 424242);
  setServiceSettings(rt.db, rt.catalog, 'pads', { membersOnly: true }, 'test');
  const get = (url: string) => rt.app.inject({ method: 'GET', url });

  const o = await get('/.well-known/chatonsinfos/organization.properties');
  t.equal(o.statusCode, 200);
  t.equal(o.headers['content-type'], 'text/plain; charset=utf-8');
  t.equal((await get('/.well-known/chatonsinfos/')).body, o.body, 'the folder itself gives the organization file');
  const op = parseProperties(o.body);
  for (const k of ORG_REQUIRED) t.ok(op.has(k), `organization: ${k}`);
  t.equal(op.get('file.class'), 'organization');
  t.equal(op.get('file.protocol'), 'ChatonsInfos-0.5');
  t.match(op.get('file.datetime')!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);
  t.equal(op.get('organization.name'), org.name, 'a name with : and = comes back whole');
  t.equal(op.get('organization.description'), org.description, 'a line break too');
  t.equal(op.get('organization.startdate'), '14/03/2019');
  t.equal(op.get('organization.geolocation.latitude'), '46.2052');
  const subs = [...op.keys()].filter((k) => k.startsWith('subs.')).sort();
  t.same(subs, ['subs.files', 'subs.mail', 'subs.pads'], 'one sub per offered service');

  const year = new Date().getUTCFullYear();
  for (const s of ['files', 'mail', 'pads']) {
    const url = new URL(op.get(`subs.${s}`)!);
    const r = await get(url.pathname);
    t.equal(r.statusCode, 200, `${s}.properties`);
    t.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    const p = parseProperties(r.body);
    for (const k of SERVICE_REQUIRED) t.ok(p.has(k), `${s}: ${k}`);
    t.equal(p.get('file.class'), 'service');
    t.match(p.get('service.registration')!, /^(None|Free|Member|Client)$/);
    t.match(p.get('service.registration.load')!, /^(OPEN|FULL)$/);
    t.equal(p.get('host.name'), 'Salle serveur, mairie');
    t.equal(p.get('software.version'), rt.catalog.services.get(s)!.manifest.image.production.split(':').pop(), 'the version is the image tag');
    // Metrics: twelve months a year, each empty or a number, and no month shows a group of 1 to 10 accounts.
    for (const y of [year - 1, year]) {
      for (const fam of ['service.accounts', 'service.signups', 'storage.bytes', 'energy.kwh']) {
        const v = p.get(`metrics.${fam}.${y}.months`);
        t.ok(v !== undefined, `${s}: metrics.${fam}.${y}.months`);
        const months = v!.split(',');
        t.equal(months.length, 12);
        for (const m of months) t.match(m, /^(\d+(\.\d+)?)?$/);
      }
      const accounts = p.get(`metrics.service.accounts.${y}.months`)!.split(',');
      accounts.forEach((v, i) => {
        const month = `${y}-${String(i + 1).padStart(2, '0')}`;
        const n = truth.accounts.get(month)?.get(s);
        if (n === undefined) return;
        if (n > 0 && n < 11) t.equal(v, '', `${s} ${month}: ${n} accounts withheld`);
        else if (v !== '') t.equal(Number(v), n, `${s} ${month}: the true count`);
      });
    }
  }
  t.equal(parseProperties((await get('/.well-known/chatonsinfos/pads.properties')).body).get('service.registration'), 'Member', 'members only → Member');
  t.equal((await get('/.well-known/chatonsinfos/webmail.properties')).statusCode, 404, 'a catalog service not offered has no file');
  t.equal((await get('/.well-known/chatonsinfos/..%2F.properties')).statusCode, 404);
});
