// A resident downloads the Apple profile of their own mail account from "my services", signed in with their
// password through the sign-in page: someone else's account, an account that is not mail or not active yet, answer
// exactly like an id that does not exist; signed out, the page sends them to sign in.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { pino } from 'pino';
import { accounts } from '../../src/db/schema.js';
import { createUser } from '../../src/identity/users.js';
import { createInstance } from '../../src/orchestrator/instances.js';
import { createRuntime } from '../../src/runtime.js';
import { pageBrowser } from '../page-browser.js';
import { testConfig } from '../helpers.js';

const xpath = (doc: string, expr: string) =>
  execFileSync('xmllint', ['--nonet', '--xpath', expr, '-'], { input: doc }).toString().replace(/\n$/, '');
const inner = (doc: string, key: string) => xpath(doc, `string(//array/dict/key[.="${key}"]/following-sibling::*[1])`);

t.test('my own mail account\'s profile, and no one else\'s', async (t) => {
  const config = testConfig(t, { domains: ['asso.example'] });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const deps = { db: rt.db, catalog: rt.catalog, portRange: config.portRange, subnetPool: config.subnetPool };
  // Rows only: no container is needed to write a profile (the reconciler is not started).
  const mail = createInstance(deps, { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: 'asso.example' }, desired: 'stopped' }, 'test');
  const files = createInstance(deps, { service: 'files', slug: 'fichiers', desired: 'stopped' }, 'test');
  const lea = await createUser(rt.db, { login: 'lea.martin', name: 'Léa Martin', roles: ['resident'], password: 'la phrase de Léa' });
  const marc = await createUser(rt.db, { login: 'marc.dubois', name: 'Marc Dubois', roles: ['resident'], password: 'le mot de Marc!' });
  const account = (instanceId: number, username: string, userId: number, state: 'active' | 'pending' = 'active') =>
    rt.db.insert(accounts).values({ instanceId, username, userId, state, quotaMb: 100 }).returning().get().id;
  const leaMail = account(mail.id, 'lea.martin', lea.id);
  const marcMail = account(mail.id, 'marc.dubois', marc.id);
  const leaFiles = account(files.id, 'lea.martin', lea.id);
  const url = (id: number) => `/me/accounts/${id}/mail.mobileconfig`;

  const b = pageBrowser(rt.app);
  const out = await b.get(url(leaMail));
  t.equal(out.statusCode, 303, 'signed out: sent to sign in, as every /me page');
  t.equal(out.headers.location, `/login?next=${encodeURIComponent(url(leaMail))}`);

  t.equal((await b.post('/login', { login: 'lea.martin', password: 'la phrase de Léa' }, { csrfFrom: '/login' })).statusCode, 303);
  const r = await b.get(url(leaMail));
  t.equal(r.statusCode, 200, r.body.slice(0, 300));
  t.equal(r.headers['content-type'], 'application/x-apple-aspen-config');
  t.equal(r.headers['content-disposition'], 'attachment; filename="courriel-asso.example.mobileconfig"');
  t.equal(r.headers['cache-control'], 'no-store', 'a person\'s file: no cache keeps it');
  execFileSync('xmllint', ['--nonet', '--noout', '-'], { input: r.body });
  t.equal(inner(r.body, 'EmailAddress'), 'lea.martin@asso.example');
  t.equal(inner(r.body, 'IncomingMailServerUsername'), 'lea.martin@asso.example');
  t.equal(inner(r.body, 'EmailAccountName'), 'Léa Martin');
  t.equal(inner(r.body, 'IncomingMailServerHostName'), 'mail.asso.example');
  t.equal(inner(r.body, 'IncomingMailServerPortNumber'), String(mail.config.ports.imaps ?? mail.config.ports.imap));
  t.equal(inner(r.body, 'OutgoingMailServerPortNumber'), String(mail.config.ports.submissions ?? mail.config.ports.submission));
  t.notMatch(r.body, /la phrase de Léa/, 'no password inside');

  const missing = await b.get(url(999999));
  t.equal(missing.statusCode, 404);
  for (const [id, why] of [[marcMail, 'another resident\'s mail account'], [leaFiles, 'her account in another service']] as const) {
    const other = await b.get(url(id));
    t.equal(other.statusCode, 404, why);
    t.equal(other.headers['x-cattery-error'], missing.headers['x-cattery-error'], `${why}: answered like one that does not exist`);
    t.notMatch(other.body, /marc|Marc/);
  }
  const leaPending = account(mail.id, 'lea.martin2', lea.id, 'pending');
  t.equal((await b.get(url(leaPending))).statusCode, 404, 'an account not made yet at the service');

  // "My services" offers the file next to the active mail account only, with the one-line explanation.
  const page = await b.get('/me');
  t.equal(page.statusCode, 200);
  t.match(page.body, `href="${url(leaMail)}"`);
  t.notMatch(page.body, `href="${url(leaFiles)}"`);
  t.notMatch(page.body, `href="${url(leaPending)}"`);
  t.match(page.body, 'Sur iPhone ou Mac : ouvrez ce fichier pour régler le courriel automatiquement');
  t.match(page.body, 'Thunderbird se règle tout seul');
});
