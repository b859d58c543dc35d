// The DNS records through the app: the API and the admin page, who may see them, the check form (CSRF as every page
// form), against a real knotd on loopback serving the zone the API itself gave, less one record.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { createApiToken } from '../../src/identity/tokens.js';
import { PERSON_ROLES } from '../../src/identity/roles.js';
import type { Config } from '../../src/config.js';
import { OPERATOR, testConfig } from '../helpers.js';
import { pageBrowser } from '../page-browser.js';
import { freePort, startKnot, zoneFile } from './knot.js';

const DOMAIN = 'asso.example';
const policy = { idleMinutes: 60, maxHours: 1 };

async function runtime(t: Parameters<Parameters<typeof t.test>[1]>[0], overrides: Partial<Config>): Promise<Runtime> {
  const rt = await createRuntime(testConfig(t, { domains: [DOMAIN, 'autre.example'], publicIpv4: '192.0.2.10', publicUrl: 'https://cattery.asso.example', ...overrides }), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  return rt;
}

async function browserAs(rt: Runtime, role: string) {
  const u = await createUser(rt.db, { login: `as-${role}`, name: `As ${role}`, roles: [role] });
  const b = pageBrowser(rt.app);
  b.jar.set(rt.app.cookieNames.session, createSession(rt.db, policy, u.id, 'password'));
  return b;
}

t.test('API and page: what to publish, for administrators only; a domain not configured is a 404', async (t) => {
  const rt = await runtime(t, { dnsResolvers: [`127.0.0.1:${await freePort()}`] });
  const api = await rt.app.inject({ url: `/api/dns/${DOMAIN}`, headers: OPERATOR });
  t.equal(api.statusCode, 200);
  const body = api.json();
  t.equal(body.domain, DOMAIN);
  t.equal(body.dkimKnown, false, 'no mail instance: no DKIM key known');
  t.ok(body.records.some((r: { name: string; type: string; value: string }) => r.name === 'cattery.asso.example.' && r.type === 'A' && r.value === '192.0.2.10'), 'cattery\'s own host');
  t.ok(body.records.some((r: { type: string; value: string }) => r.type === 'CAA' && r.value === '0 issue "letsencrypt.org"'), 'CAA for Let\'s Encrypt, the default CA');
  t.match(body.snippet, /^_dmarc\.asso\.example\. 3600 IN TXT "v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@asso\.example"$/m);
  t.equal((await rt.app.inject({ url: '/api/dns/autre.example', headers: OPERATOR })).json().records.some((r: { name: string }) => r.name.startsWith('cattery.')), false, 'cattery\'s host only under its own domain');
  for (const url of ['/api/dns/unknown.example', '/api/dns/ASSO.example.evil']) {
    const r = await rt.app.inject({ url, headers: OPERATOR });
    t.equal(r.statusCode, 404, `${url}: 404`);
    t.equal(r.headers['x-cattery-error'], 'CATTERY_ERR_NOT_FOUND');
  }
  t.equal((await rt.app.inject({ method: 'POST', url: '/api/dns/unknown.example/check', headers: OPERATOR })).statusCode, 404);

  for (const role of PERSON_ROLES.filter((r) => r !== 'admin')) {
    const token = createApiToken(rt.db, { id: 'operator', roles: [...PERSON_ROLES] }, { name: role, roles: [role] }).token;
    t.equal((await rt.app.inject({ url: `/api/dns/${DOMAIN}`, headers: { authorization: `Bearer ${token}` } })).statusCode, 403, `API: ${role} 403`);
    const b = await browserAs(rt, role);
    t.equal((await b.get('/admin/dns')).statusCode, 403, `page: ${role} 403`);
  }
  t.equal((await rt.app.inject({ url: `/api/dns/${DOMAIN}` })).statusCode, 401, 'nobody: 401');

  const admin = await browserAs(rt, 'admin');
  const fr = await admin.get('/admin/dns');
  t.equal(fr.statusCode, 200);
  t.match(fr.headers['content-type'], /text\/html/);
  t.match(fr.body, '<h1>Enregistrements DNS</h1>');
  t.match(fr.body, /<pre class="zone"[^>]*>[^<]*asso\.example\. 3600 IN MX 10 mail\.asso\.example\./, 'the snippet in a <pre>');
  t.match(fr.body, 'Les clés DKIM ne sont pas encore connues', 'DKIM keys not known yet, and the page is still served');
  t.match(fr.body, 'SPF : seul le serveur de courriel', 'each record says why, in French');
  t.match(fr.body, '&quot;v=spf1 mx -all&quot;', 'the snippet is escaped in HTML');
  const en = await admin.get('/admin/dns?lang=en');
  t.match(en.body, '<h1>DNS records</h1>');
  t.match(en.body, 'SPF: only the association’s mail server sends', 'and in English');
  t.match(en.body, 'The DKIM keys are not known yet');
  await admin.get('/admin/dns?lang=fr');

  // The check form: refused without its token or from another origin, a 404 for a domain that is not ours.
  const noToken = await admin.post('/admin/dns/check', { domain: DOMAIN });
  t.equal(noToken.statusCode, 403);
  t.equal(noToken.headers['x-cattery-error'], 'CATTERY_ERR_CSRF');
  const forged = await admin.post('/admin/dns/check', { domain: DOMAIN, _csrf: 'forged-token-value' });
  t.equal(forged.headers['x-cattery-error'], 'CATTERY_ERR_CSRF');
  const other = await admin.post('/admin/dns/check', { domain: 'unknown.example' }, { csrfFrom: '/admin/dns' });
  t.equal(other.statusCode, 404);
  // The same session, cookies and a good token, sent by a page of another origin.
  const token = /name="_csrf" value="([^"]+)"/.exec((await admin.get('/admin/dns')).body)![1]!;
  const admin2 = pageBrowser(rt.app, { origin: 'https://evil.example' });
  for (const [k, v] of admin.jar) admin2.jar.set(k, v);
  t.equal((await admin2.post('/admin/dns/check', { domain: DOMAIN, _csrf: token })).headers['x-cattery-error'], 'CATTERY_ERR_CSRF', 'a form from another origin');

  // Nothing listens at the resolver's port: it does not answer, which the page says as such.
  const dead = await admin.post('/admin/dns/check', { domain: DOMAIN }, { csrfFrom: '/admin/dns' });
  t.equal(dead.statusCode, 503);
  t.equal(dead.headers['x-cattery-error'], 'CATTERY_ERR_RESOLVER');
  t.match(dead.body, 'Le résolveur DNS ne répond pas');
  t.match(dead.body, '<pre class="zone"', 'the records are still shown');
  const deadApi = await rt.app.inject({ method: 'POST', url: `/api/dns/${DOMAIN}/check`, headers: OPERATOR });
  t.equal(deadApi.statusCode, 503);
  t.equal(deadApi.json().code, 'CATTERY_ERR_RESOLVER');
  t.match(deadApi.json().message, /DNS resolver did not answer/);
});

t.test('the check, through the API and the page, against knotd serving the published zone less DMARC', async (t) => {
  // The zone is what the API gives for a runtime like the one below (same domains, address and public URL).
  const port = await freePort();
  const probe = await runtime(t, { dnsResolvers: [`127.0.0.1:${port}`] });
  const { snippet } = (await probe.app.inject({ url: `/api/dns/${DOMAIN}`, headers: OPERATOR })).json() as { snippet: string };
  const served = snippet.split('\n').filter((l) => !l.startsWith('_dmarc.')).join('\n');
  const knot = await startKnot(DOMAIN, zoneFile(DOMAIN, served));
  t.teardown(knot.stop);
  const rt = await runtime(t, { dnsResolvers: [knot.address] });

  const r = await rt.app.inject({ method: 'POST', url: `/api/dns/${DOMAIN}/check`, headers: OPERATOR });
  t.equal(r.statusCode, 200);
  const body = r.json() as { resolvers: string[]; records: { name: string; state: string }[] };
  t.same(body.resolvers, [knot.address]);
  t.same(body.records.filter((x) => x.state !== 'present').map((x) => `${x.name} ${x.state}`), ['_dmarc.asso.example. missing']);

  const admin = await browserAs(rt, 'admin');
  const page = await admin.post('/admin/dns/check', { domain: DOMAIN }, { csrfFrom: '/admin/dns' });
  t.equal(page.statusCode, 200);
  t.match(page.body, /role="status"><p>Vérifié le [0-9-]+ [0-9:]+ : \d+ présents, 1 absents, 0 différents\.<\/p>/);
  t.equal(page.body.match(/<span class="err">Absent<\/span>/g)?.length, 1, 'one record said missing');
  t.ok((page.body.match(/>Présent<\/span>/g)?.length ?? 0) > 10, 'the others present');
});
