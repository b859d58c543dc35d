// An account asked for while its instance is coming up is queued (202) and made once the instance is up, with the
// password its owner knows then: after a create, a start, a restart; and when the owner changes their password (or
// signs in) before the instance is up, the queued create takes the new one. Checked on a service that records what
// its create operation was given, on the real engine.
import t from 'tap';
import { OK_OP, busyboxService, runtimeWithService } from '../test-service.js';
import { docker, execIn, waitFor } from '../helpers.js';
import { pageBrowser } from '../page-browser.js';

const ok = OK_OP;
// The create keeps what it was given, one file per account, so the test can read which password the account got.
const record = ['/bin/sh', '-c', 'in=$(cat); u=$(echo "$in" | sed -n \'s/.*"username":"\\([a-z0-9._-]*\\)".*/\\1/p\'); echo "$in" > "/data/create-$u"; echo \'{"ok":true}\''];
const manifest = busyboxService('recorder', {
  name: { fr: 'Service qui note', en: 'Recording service' },
  description: { fr: 'Il note ce que reçoit la création d’un compte.', en: 'It records what an account creation receives.' },
  openForSignup: true,
  // Slow to become healthy (about 8 s after each start), so that "coming up" lasts long enough to ask meanwhile.
  health: { command: ['/bin/sh', '-c', 'test -e /tmp/up || { sleep 6; touch /tmp/up; exit 1; }; wget -q -O /dev/null http://127.0.0.1:8080/index.html'], intervalSeconds: 1, timeoutSeconds: 10, retries: 10, startPeriodSeconds: 15 },
  accounts: {
    adapter: 'exec',
    operations: { create: { exec: record }, setPassword: { exec: ok }, suspend: { exec: ok }, resume: { exec: ok }, setQuota: { exec: ok }, delete: { exec: ok }, usage: { exec: ok }, export: { exec: ok } },
  },
});

t.test('queued creates: after a create, a start and a restart, with the owner\'s newest password', async (t) => {
  const { rt, config } = await runtimeWithService(t, manifest, { config: { signupApproval: 'auto' } });
  const { app } = rt;
  const container = `${config.hosterId}-rec`;
  const given = async (u: string) => (await execIn(container, ['cat', `/data/create-${u}`])).out;
  const state = async (u: string) => (await app.inject(`/api/instances/rec/accounts/${u}`)).json().state;

  // A resident signs up while the instance is created: her account is queued with her password.
  t.equal((await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'recorder', slug: 'rec' } })).statusCode, 202);
  const b = pageBrowser(app, { authorization: null });
  const signup = await b.post('/signup', { name: 'Zoé Martin', services: ['recorder'], password: 'sa première phrase', password2: 'sa première phrase', terms: config.termsVersion }, { csrfFrom: '/signup' });
  t.equal(signup.statusCode, 201, signup.body.slice(0, 300));
  t.equal(await state('zoe.martin'), 'pending', 'queued while the instance comes up');
  // She signs in and changes her password before the instance is up: the queued create takes the new one.
  t.equal((await b.post('/login', { login: 'zoe.martin', password: 'sa première phrase' }, { csrfFrom: '/login' })).statusCode, 303);
  t.equal((await b.post('/me/password', { current: 'sa première phrase', password: 'sa nouvelle phrase', password2: 'sa nouvelle phrase' }, { csrfFrom: '/me' })).statusCode, 200);
  await waitFor('queued create applied', async () => (await state('zoe.martin')) === 'active', 120_000, 500);
  t.match(await given('zoe.martin'), /"password":"sa nouvelle phrase"/, 'the account was made with her newest password');

  for (const [what, act] of [['restart', 'restart'], ['start', 'start']] as const) {
    if (act === 'start') t.equal((await app.inject({ method: 'POST', url: '/api/instances/rec/stop?wait=true' })).statusCode, 200);
    t.equal((await app.inject({ method: 'POST', url: `/api/instances/rec/${act}` })).statusCode, 202);
    const u = `after-${what}`;
    const r = await app.inject({ method: 'POST', url: '/api/instances/rec/accounts', payload: { username: u, password: 'une phrase longue', quotaMb: 10 } });
    t.ok([201, 202].includes(r.statusCode), `an account asked for right after a ${what}: queued or made, never failed (${r.statusCode} ${r.body.slice(0, 200)})`);
    await waitFor(`${u} active`, async () => (await state(u)) === 'active', 120_000, 500);
    t.match(await given(u), /"password":"une phrase longue"/);
  }
  t.ok((await docker.getContainer(container).inspect()).State.Running);
});
