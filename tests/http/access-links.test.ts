// What the mediator's printed sheet tells a resident signed up for mail (issue 10): the mail account's access, and
// under it the webmail linked to that mail instance, with the resident's whole address to sign in with; every web
// address is the server's address and the instance's port until the instance has a front-door name, then
// https://<that name>/ (the same for files). No engine: the instances are only rows (the passes find no engine), the
// accounts queued.
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { OPERATOR, testConfig } from '../helpers.js';
import { pageBrowser } from '../page-browser.js';

const DOMAIN = 'asso.test';
const unescape = (s: string) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

t.test('the printed sheet gives the linked webmail, over the front door once it has a name', async (t) => {
  const config = testConfig(t, {
    dockerEndpoint: 'unix:///nonexistent/cattery-access-links.sock', domains: [DOMAIN], publicUrl: `https://cattery.${DOMAIN}`,
  });
  const rt = await createRuntime({ ...config, ingress: { ...config.ingress, enabled: true, httpsPort: 443 } }, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const api = (method: string, url: string, payload?: object) => rt.app.inject({ method: method as 'GET', url, headers: OPERATOR, ...(payload ? { payload } : {}) });

  for (const [service, slug, extra] of [['mail', 'courriel', { env: { MAIL_DOMAIN: DOMAIN } }], ['files', 'fichiers', {}], ['webmail', 'webmail', { links: { mail: 'courriel' } }]] as const) {
    const r = await api('POST', '/api/instances', { service, slug, ...extra });
    t.equal(r.statusCode, 202, r.body);
  }
  const ports = Object.fromEntries(await Promise.all(['webmail', 'fichiers'].map(async (s) => [s, (await api('GET', `/api/instances/${s}`)).json().ports.http])));

  // A mediator, signed in with their own password.
  const made = (await api('POST', '/api/users', { login: 'camille', name: 'Camille Lefèvre', roles: ['mediator'] })).json();
  const b = pageBrowser(rt.app);
  t.equal((await b.post('/login', { login: 'camille', password: made.firstPassword }, { csrfFrom: '/login' })).statusCode, 303);
  t.equal((await b.post('/me/password', { current: made.firstPassword, password: 'ma phrase à moi', password2: 'ma phrase à moi' }, { csrfFrom: '/me' })).statusCode, 200);
  const sheet = async (name: string) => {
    const r = await b.post('/mediator/signup', { name, services: ['mail', 'files'], consent: rt.config.termsVersion }, { csrfFrom: '/mediator' });
    t.equal(r.statusCode, 201, r.statusCode === 201 ? `${name} signed up` : r.body.slice(0, 400));
    const login = /id="sheet-login">([^<]+)</.exec(r.body)?.[1] ?? '';
    const sections = [...r.body.matchAll(/<h2>([^<]*)<\/h2>\s*<p class="big">([^<]*)<\/p>/g)].map((m) => ({ service: unescape(m[1]!), access: unescape(m[2]!) }));
    return { login, sections };
  };

  const before = await sheet('Marie Dupont');
  const names = before.sections.map((s) => s.service);
  t.equal(names.length, 3, `mail, files, and the webmail: ${names.join(', ')}`);
  t.equal(names[names.indexOf('Courriel') + 1], 'Courriel dans le navigateur (webmail)', 'the webmail right under the mail account it is linked to');
  const webmail = before.sections.find((s) => /webmail/.test(s.service));
  t.ok(webmail, 'the sheet has the webmail linked to the mail account');
  t.match(webmail?.access, `Webmail : http://cattery.${DOMAIN}:${ports.webmail}/ .`, 'no front-door name yet: the server and the instance\'s port');
  t.match(webmail?.access, `(${before.login}@${DOMAIN})`, 'the resident\'s whole address, its domain from the linked mail instance');
  t.match(before.sections.find((s) => /Fichiers|Files/.test(s.service))?.access, `http://cattery.${DOMAIN}:${ports.fichiers}/${before.login}/`);

  t.equal((await api('PUT', '/api/instances/webmail/hostnames', { hostnames: [`webmail.${DOMAIN}`] })).statusCode, 200);
  t.equal((await api('PUT', '/api/instances/fichiers/hostnames', { hostnames: [`fichiers.${DOMAIN}`, `cloud.${DOMAIN}`] })).statusCode, 200);
  const after = await sheet('Jean Martin');
  t.match(after.sections.find((s) => /webmail/.test(s.service))?.access, `Webmail : https://webmail.${DOMAIN}/ . Connectez-vous avec votre adresse de courriel entière (${after.login}@${DOMAIN})`,
    'with a front-door name: https://<name>/');
  t.match(after.sections.find((s) => /Fichiers|Files/.test(s.service))?.access, `https://cloud.${DOMAIN}/${after.login}/`, 'files too: its first name');
  for (const s of after.sections) t.notMatch(s.access, /\{[a-z.A-Z_]+\}/, `${s.service}: every placeholder filled`);
});
