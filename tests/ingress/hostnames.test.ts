// Which names the front door accepts, as a property over generated names, and through the API (no engine needed:
// the hostnames are desired state, checked before anything reaches Caddy).
import fc from 'fast-check';
import t from 'tap';
import { domainToASCII } from 'node:url';
import { checkHostname, hostnameProblem } from '../../src/ingress/hostnames.js';
import { aboveRegex, caddyConfig, canonicalJson, configHash } from '../../src/ingress/caddy-config.js';
import { asOperator, removeHosterObjects, testConfig } from '../helpers.js';
import { createRuntime } from '../../src/runtime.js';
import pino from 'pino';
import path from 'node:path';
import { loadCatalog } from '../../src/catalog/load.js';
import { MAIL_CLIENT_PATHS, planFor } from '../../src/ingress/ingress.js';
import type { Server } from '../../src/db/schema.js';
import { ROOT } from '../helpers.js';

const DOMAINS = ['asso.example', 'ville.example'];
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/).filter((l) => !/^..--/.test(l));

t.test('a name under the association\'s domains, in LDH labels, is taken as it is (lower-cased, final dot dropped)', async (t) => {
  fc.assert(fc.property(fc.array(label, { minLength: 1, maxLength: 4 }), fc.constantFrom(...DOMAINS), fc.boolean(), (labels, domain, dot) => {
    const name = `${labels.join('.')}.${domain}`;
    if (['mta-sts', 'autoconfig', 'autodiscover'].includes(labels.join('.'))) return;
    const given = `${name.toUpperCase()}${dot ? '.' : ''}`;
    if (checkHostname(given, DOMAINS) !== name) throw new Error(name);
  }), { numRuns: 500 });
  t.pass('500 generated names');
});

t.test('anything else is refused with a 400, whatever it is', async (t) => {
  const hostile = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.string({ maxLength: 20 }).map((s) => `${s}.asso.example`),
    label.map((l) => `*.${l}.asso.example`),
    label.map((l) => `${l}..asso.example`),
    label.map((l) => `${l}.asso.example.evil.test`),
    label.map((l) => `${l}asso.example`),
    label.map((l) => `${l}.other.example`),
    label.map((l) => `${l}_x.asso.example`),
    fc.constantFrom('xn--80ak6aa92e.asso.example', 'xn--pple-43d.asso.example', 'xn--.asso.example', 'ab--cd.asso.example',
      'mta-sts.asso.example', 'autoconfig.ville.example', 'autodiscover.asso.example', 'asso.example.', '1.2.3.4', 'localhost',
      `${'a'.repeat(64)}.asso.example`, `${'a.'.repeat(130)}asso.example`, 'pads.asso.example\r\nx: y', 'pads.asso.example/..', ' pads.asso.example'),
  );
  let refused = 0;
  fc.assert(fc.property(hostile, (name) => {
    let out: string | undefined;
    try { out = checkHostname(name, DOMAINS); } catch (err) {
      if ((err as { code?: string }).code !== 'CATTERY_ERR_VALIDATION') throw err;
      refused++;
      return;
    }
    // Whatever passed is a plain LDH name under one of the domains and not one kept for cattery.
    if (hostnameProblem(out) || !DOMAINS.some((d) => out === d || out!.endsWith(`.${d}`))) throw new Error(`accepted ${JSON.stringify(name)}`);
    if (/^(mta-sts|autoconfig|autodiscover)\./.test(out)) throw new Error(`accepted reserved ${out}`);
  }), { numRuns: 1500 });
  t.ok(refused > 1000, `${refused} refused`);
  t.throws(() => checkHostname('pads.asso.example', []), { code: 'CATTERY_ERR_VALIDATION' }, 'no domain configured: nothing is accepted');
  t.throws(() => checkHostname('cattery.asso.example', DOMAINS, 'cattery.asso.example'), { code: 'CATTERY_ERR_VALIDATION' }, 'cattery\'s own name');
});

t.test('IDN: Latin with accents is kept; look-alike scripts and broken Punycode are not', async (t) => {
  const cafe = domainToASCII('café-asso.example');
  t.equal(checkHostname(`pads.${cafe}`, [cafe]), `pads.${cafe}`);
  t.equal(checkHostname(`${domainToASCII('numérique.asso.example')}`, DOMAINS), domainToASCII('numérique.asso.example'));
  for (const name of ['раds.asso.example', 'pαds.asso.example', 'аpple.asso.example', 'pads\u0430.asso.example']) {
    const ascii = domainToASCII(name);
    t.throws(() => checkHostname(ascii, DOMAINS), { code: 'CATTERY_ERR_VALIDATION' }, `${name} (${ascii})`);
  }
});

t.test('Caddy configuration: deterministic, the admin socket always kept, body limits exact', async (t) => {
  fc.assert(fc.property(fc.nat({ max: 2 ** 40 }), fc.nat({ max: 2 ** 41 }), (n, x) => {
    if (new RegExp(aboveRegex(n)).test(String(x)) !== (x > n)) throw new Error(`${n} ${x}`);
  }), { numRuns: 3000 });
  const site = (h: string) => ({ hostnames: [h], upstream: `x-${h}:80`, maxBodyBytes: 1024, timeoutSeconds: 5, websocket: false });
  const plan = { sites: [site('b.asso.example'), site('a.asso.example')], certOnly: ['mail.asso.example'], acme: { directory: 'https://acme.test/dir', trustRoot: true }, hstsSeconds: 60 };
  t.equal(configHash(caddyConfig(plan)), configHash(caddyConfig(JSON.parse(JSON.stringify(plan)))), 'the same wanted state gives the same hash');
  const cfg = caddyConfig({ ...plan, sites: [] }) as { admin: { listen: string } };
  t.equal(cfg.admin.listen, 'unix//run/ingress/admin.sock', 'a configuration never moves the admin API off its socket');
  t.notMatch(canonicalJson(caddyConfig(plan)), /on_demand|"listen":"(?!:443|unix)/, 'no on-demand certificates, no other listener');
});

t.test('the API refuses hostile names and names another instance holds, and changes nothing then', async (t) => {
  const config = testConfig(t, { domains: DOMAINS });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  // A create wakes the reconciler even unstarted: what it made goes with the runtime.
  t.teardown(async () => { await rt.close(); await removeHosterObjects(config.hosterId); });
  asOperator(rt.app);
  for (const slug of ['one', 'two']) {
    const r = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: `${slug}-probe`, desired: 'stopped' } });
    t.equal(r.statusCode, 202, r.body);
  }
  const put = (slug: string, hostnames: unknown) => rt.app.inject({ method: 'PUT', url: `/api/instances/${slug}/hostnames`, payload: { hostnames } });
  t.equal((await put('one-probe', ['pads.asso.example', 'PADS.asso.example.'])).json().hostnames.length, 1, 'duplicates folded');
  const taken = await put('two-probe', ['docs.ville.example', 'pads.asso.example']);
  t.equal(taken.statusCode, 409);
  t.match(taken.json().message, /already used by instance "one-probe"/);
  t.same((await rt.app.inject({ url: '/api/instances/two-probe/hostnames' })).json().hostnames, [], 'nothing of a refused list is kept');
  for (const bad of ['*.asso.example', 'a..asso.example', 'evil.test', 'xn--80ak6aa92e.asso.example', 'x'.repeat(255), 12, null]) {
    const r = await put('two-probe', [bad]);
    t.equal(r.statusCode, 400, `${String(bad).slice(0, 30)}: ${r.statusCode}`);
  }
  t.equal((await put('two-probe', Array.from({ length: 17 }, (_, i) => `h${i}.asso.example`))).statusCode, 400, 'at most 16 names');
  t.equal((await put('nobody', ['x.asso.example'])).statusCode, 404);
  const del = await rt.app.inject({ method: 'DELETE', url: '/api/instances/one-probe' });
  t.equal(del.statusCode, 202);
});

t.test('a stored name the configuration no longer allows is left out, and cattery\'s routes come first', async (t) => {
  const catalog = loadCatalog([path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')]);
  const server = { id: 1 } as Server;
  const row = (hostname: string, slug: string, service = 'probe') => ({ hostname, instanceId: 0, slug, service, serverId: 1, desired: 'running' });
  const config = testConfig(t, { domains: ['asso.example'], publicUrl: 'https://cattery.asso.example' });
  // Stored while they were allowed: cattery's own name (before publicUrl named it), a reserved one, another domain's.
  const rows = [row('a.asso.example', 'pads'), row('cattery.asso.example', 'pads'), row('mta-sts.asso.example', 'pads'), row('old.gone.example', 'pads'), row('z.asso.example', 'other')];
  const plan = planFor({ catalog, config }, rows, server);
  t.same(plan.sites.map((s) => s.hostnames), [['cattery.asso.example'], ['mta-sts.asso.example', 'autoconfig.asso.example'], ['a.asso.example'], ['z.asso.example']]);
  t.equal(plan.sites[0]!.upstream, 'unix//run/ingress/cattery.sock', 'cattery\'s own host goes to cattery, first');
  t.same(plan.sites[1]!.paths, MAIL_CLIENT_PATHS, 'the mail client names answer only their documents');
  const routes = (caddyConfig(plan) as { apps: { http: { servers: { front: { routes: { handle: { routes: unknown[] }[] }[] } } } } }).apps.http.servers.front.routes;
  t.match(JSON.stringify(routes[1]), /"static_response","status_code":404/, 'any other path there is a 404 at the door');
});
