// A person's status reaches their service accounts, on the real files service: disabling suspends every account of
// theirs (and no one else's, even a login that shares their prefix), ends their sessions and stops their API tokens
// at once; enabling resumes what the disabling suspended and nothing an administrator suspended; a disabling asked
// while the service is stopped is applied when it is back; rejecting a sign-up removes the accounts made for it.
import t from 'tap';
import { pino } from 'pino';
import { openServices } from '../../src/catalog/offer.js';
import { submitSignup, type SignupDeps } from '../../src/identity/signup.js';
import { createApiToken } from '../../src/identity/tokens.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir } from '../../src/orchestrator/docker/images.js';
import type { Runtime } from '../../src/runtime.js';
import { execIn, HEALTHY_WITHIN_MS, subnetPoolSlice, testRuntime, waitFor } from '../helpers.js';
import { PROBES, type ProbeCtx } from '../services/probes.js';
import { pageBrowser } from '../page-browser.js';

// The two tests run at the same time, each with its own runtime, instances and quarter of the subnet pool: most of
// their time is spent waiting for their instances to become healthy.
t.jobs = 2;

t.test('disable, enable and reject reach the person\'s accounts in the files service', async (t) => {
  const rt = await testRuntime(t, { signupApproval: 'auto', signupPerHour: 1000, subnetPool: subnetPoolSlice(0) });
  const { app, config, db } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'files', slug: 'fichiers' } });
  t.equal(created.statusCode, 202, created.body);
  const base = `http://127.0.0.1:${created.json().ports.http}`;
  const healthy = () => waitFor('files healthy', async () => (await app.inject('/api/instances/fichiers')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  await healthy();

  const deps: SignupDeps = {
    db, catalog: rt.catalog, hosterId: config.hosterId, engineFor: rt.reconciler.engineFor, log: rt.log,
    approval: 'auto', termsVersion: config.termsVersion, defaultQuotaMb: 5,
  };
  const signup = (name: string, password: string, services = ['files']) =>
    submitSignup(deps, { name, services, termsVersion: config.termsVersion, password });
  /** What the service itself answers to these credentials: 207 it lets them in, 401 it does not. */
  const dav = async (login: string, password: string) => (await fetch(`${base}/${login}/`, {
    method: 'PROPFIND', headers: { depth: '0', authorization: `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}` },
  })).status;
  const state = (login: string) => (db.$client.prepare("select a.state, a.pending from accounts a join users u on u.id = a.user_id where u.login = ?").get(login) as { state: string; pending: string | null });
  const patch = (login: string, status: string) => app.inject({ method: 'PATCH', url: `/api/users/${login}`, payload: { status } });

  // Two people whose logins share a prefix, and a third whose account an administrator suspended.
  const lea = (await signup('Léa Martin', 'la phrase de Léa')).user;
  const lea2 = (await signup('Léa Martin', 'une autre Léa ici')).user;
  const marc = (await signup('Marc Dubois', 'le mot de Marc!')).user;
  t.same([lea.login, lea2.login, marc.login], ['lea.martin', 'lea.martin2', 'marc.dubois']);
  t.equal(await dav('lea.martin', 'la phrase de Léa'), 207, 'her account works at the service');
  t.equal(await dav('lea.martin2', 'une autre Léa ici'), 207);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/fichiers/accounts/marc.dubois/suspend' })).statusCode < 300, true);
  t.equal(await dav('marc.dubois', 'le mot de Marc!'), 401, 'marc suspended by an administrator');

  // Her browser session and her scripts' tokens (one made by her, one made by that token).
  const b = pageBrowser(app, { authorization: null });
  t.equal((await b.post('/login', { login: 'lea.martin', password: 'la phrase de Léa' }, { csrfFrom: '/login' })).statusCode, 303);
  t.equal((await b.get('/me')).statusCode, 200);
  const own = createApiToken(db, { id: 'user:lea.martin', roles: ['resident'] }, { name: 'mine', roles: ['resident'] });
  const child = createApiToken(db, { id: `token:${own.row.id}`, roles: ['resident'] }, { name: 'child', roles: ['resident'] });
  const api = (token: string) => app.inject({ url: '/api/me', headers: { authorization: `Bearer ${token}` } });
  t.equal((await api(own.token)).statusCode, 200);
  t.equal((await api(child.token)).statusCode, 200);

  const off = await patch('lea.martin', 'disabled');
  t.equal(off.statusCode, 200, off.body);
  t.equal(off.json().status, 'disabled');
  t.equal(await dav('lea.martin', 'la phrase de Léa'), 401, 'disabled: the service refuses her at once');
  t.same(state('lea.martin'), { state: 'suspended', pending: null });
  t.equal(await dav('lea.martin2', 'une autre Léa ici'), 207, 'the login sharing her prefix is untouched');
  t.equal((await b.get('/me')).statusCode, 303, 'her session ended');
  t.equal((await api(own.token)).statusCode, 401, 'her token stopped');
  t.equal((await api(child.token)).statusCode, 401, 'and the token her token made');
  t.equal((await b.post('/login', { login: 'lea.martin', password: 'la phrase de Léa' }, { csrfFrom: '/login' })).statusCode, 401, 'she cannot sign in');
  t.equal((await patch('lea.martin', 'disabled')).statusCode, 200, 'disabling again is harmless');

  const on = await patch('lea.martin', 'active');
  t.equal(on.statusCode, 200, on.body);
  t.equal(await dav('lea.martin', 'la phrase de Léa'), 207, 'enabled: her account works again');
  t.same(state('lea.martin'), { state: 'active', pending: null });
  t.equal((await api(own.token)).statusCode, 200, 'her token works again (it was never revoked)');

  // An account an administrator had suspended stays suspended through a disable and an enable.
  t.equal((await patch('marc.dubois', 'disabled')).statusCode, 200);
  t.equal((await patch('marc.dubois', 'active')).statusCode, 200);
  t.equal(state('marc.dubois').state, 'suspended', 'marc\'s account was not resumed by enabling him');
  t.equal(await dav('marc.dubois', 'le mot de Marc!'), 401);

  // Disabled while the service is stopped: the intent is kept and applied when the service is back.
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/fichiers/stop' })).statusCode < 300, true);
  await waitFor('files stopped', async () => (await app.inject('/api/instances/fichiers')).json().observed === 'stopped', 60_000, 500);
  t.equal((await patch('lea.martin2', 'disabled')).statusCode, 200, 'disabling does not wait for the service');
  t.match(JSON.parse(state('lea.martin2').pending ?? '{}'), { suspended: true }, 'the suspension is queued');
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/fichiers/start' })).statusCode < 300, true);
  await healthy();
  await waitFor('queued suspension applied', () => state('lea.martin2').state === 'suspended' && state('lea.martin2').pending === null, 60_000, 250);
  t.equal(await dav('lea.martin2', 'une autre Léa ici'), 401, 'applied once the service is back');
  t.equal(await dav('lea.martin', 'la phrase de Léa'), 207, 'and only hers');

  // A sign-up whose approval failed half-way (no pads instance yet) left a files account: rejecting removes it.
  const half = await signup('Chloé Bernard', 'la phrase de Chloé', ['files', 'pads']);
  t.equal(half.signup.status, 'failed');
  t.equal(await dav('chloe.bernard', 'la phrase de Chloé'), 207, 'the half-made account works at the service');
  const rejected = await app.inject({ method: 'POST', url: `/api/signups/${half.signup.id}/reject` });
  t.equal(rejected.statusCode, 200, rejected.body);
  t.equal(rejected.json().status, 'rejected');
  t.equal(await dav('chloe.bernard', 'la phrase de Chloé'), 401, 'rejected: the service refuses her');
  t.equal((db.$client.prepare("select count(*) n from accounts where username = 'chloe.bernard'").get() as { n: number }).n, 0, 'no account row left');
  const store = await execIn(`${config.hosterId}-fichiers`, ['cat', '/srv/files/.cattery/users.json']);
  t.notMatch(store.out, /chloe\.bernard/, 'nor in the service\'s own account store');
  t.match(store.out, /lea\.martin2/, '(which still holds the others)');
  t.not((await execIn(`${config.hosterId}-fichiers`, ['test', '-e', '/srv/files/chloe.bernard'])).code, 0, 'nor her folder');
  t.equal((await app.inject({ method: 'POST', url: `/api/signups/${half.signup.id}/approve` })).statusCode, 409, 'a rejected sign-up cannot be approved after');
});

const signupDepsOf = (rt: Runtime): SignupDeps => ({
  db: rt.db, catalog: rt.catalog, hosterId: rt.config.hosterId, engineFor: rt.reconciler.engineFor, log: rt.log,
  approval: 'auto', termsVersion: rt.config.termsVersion, defaultQuotaMb: 5,
});

// The same kind on every service open for sign-up, each checked the way a resident's client signs in
// (tests/services/probes.ts): IMAP for mail, WebDAV for files, the pad socket for pads.
t.test('every service open for sign-up: disable refuses, enable lets in, reject removes', async (t) => {
  const rt = await testRuntime(t, { signupApproval: 'auto', signupPerHour: 1000, healthTimeoutSeconds: 180, subnetPool: subnetPoolSlice(1) });
  const ids = openServices(rt.catalog).filter((m) => Object.keys(m.accounts?.operations ?? {}).length).map((m) => m.id).sort();
  t.ok(ids.length >= 3, `services: ${ids.join(', ')}`);
  for (const id of ids) t.ok(PROBES[id], `${id} has a probe`);
  const engine = connectEngine('unix:///var/run/docker.sock', { hosterId: rt.config.hosterId, timeoutSeconds: 600, log: pino({ level: 'silent' }) });
  await buildImages(engine, rt.catalog, { mirror: rt.config.debianMirror, workDir: buildWorkDir(rt.config.dataDir), only: ids, progress: () => undefined });
  const ctx: Record<string, ProbeCtx> = {};
  for (const id of ids) {
    const env = PROBES[id]!.env;
    const r = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: id, slug: `p-${id}`, ...(Object.keys(env).length ? { env } : {}) } });
    t.equal(r.statusCode, 202, r.body);
    ctx[id] = { container: `${rt.config.hosterId}-p-${id}`, ports: r.json().ports, env };
  }
  const observed = async (id: string) => (await rt.app.inject(`/api/instances/p-${id}`)).json().observed as string;
  for (const id of ids) await waitFor(`${id} healthy`, async () => (await observed(id)) === 'healthy', HEALTHY_WITHIN_MS, 500);
  const logins = async (login: string, pass: string, only = ids) =>
    Object.fromEntries(await Promise.all(only.map(async (id) => [id, await PROBES[id]!.login(ctx[id]!, login, pass)] as const)));
  const all = (v: boolean, only = ids) => Object.fromEntries(only.map((id) => [id, v]));
  const deps = signupDepsOf(rt);

  const pass = 'la phrase de Yanis';
  const { user } = await submitSignup(deps, { name: 'Yanis Roux', services: ids, termsVersion: rt.config.termsVersion, password: pass });
  const other = await submitSignup(deps, { name: 'Yanis Roux', services: ids, termsVersion: rt.config.termsVersion, password: 'un autre Yanis' });
  t.same(await logins(user.login, pass), all(true), 'signed up: every service lets him in');
  t.equal((await rt.app.inject({ method: 'PATCH', url: `/api/users/${user.login}`, payload: { status: 'disabled' } })).statusCode, 200);
  t.same(await logins(user.login, pass), all(false), 'disabled: no service lets him in');
  t.same(await logins(other.user.login, 'un autre Yanis'), all(true), `${other.user.login}, sharing his prefix, still gets in everywhere`);
  t.equal((await rt.app.inject({ method: 'PATCH', url: `/api/users/${user.login}`, payload: { status: 'active' } })).statusCode, 200);
  t.same(await logins(user.login, pass), all(true), 'enabled: every service lets him in again');

  // An approval that fails at the last service (its instance stopped) leaves the others' accounts: rejecting removes them.
  const last = ids[ids.length - 1]!;
  const made = ids.slice(0, -1);
  t.ok((await rt.app.inject({ method: 'POST', url: `/api/instances/p-${last}/stop` })).statusCode < 300);
  await waitFor(`${last} stopped`, async () => (await observed(last)) === 'stopped', 60_000, 500);
  const half = await submitSignup(deps, { name: 'Inès Faure', services: ids, termsVersion: rt.config.termsVersion, password: 'la phrase d’Inès' });
  t.equal(half.signup.status, 'failed', half.signup.lastError ?? '');
  t.same(await logins(half.user.login, 'la phrase d’Inès', made), all(true, made), `half made: ${made.join(', ')} let her in`);
  const rej = await rt.app.inject({ method: 'POST', url: `/api/signups/${half.signup.id}/reject` });
  t.equal(rej.statusCode, 200, rej.body);
  t.same(await logins(half.user.login, 'la phrase d’Inès', made), all(false, made), 'rejected: none of them does');
  t.equal((rt.db.$client.prepare('select count(*) n from accounts where user_id = ?').get(half.user.id) as { n: number }).n, 0, 'no account left');
});
