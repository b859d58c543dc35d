// An instance whose health check fails still runs its container: every account operation is tried there, not
// refused or left for later. On a loaded machine a check that is late makes an instance "unhealthy" for a while, and a
// resident disabled by an administrator must be refused by the service at once. Checked for every operation, on a
// service whose health the test turns off, on the real engine.
import t from 'tap';
import { busyboxService, runtimeWithService } from '../test-service.js';
import { execIn, HEALTHY_WITHIN_MS, waitFor } from '../helpers.js';

// Each operation appends its name and input to a log in the volume, and answers ok (export: a tar of that log).
const logged = (op: string) => ['/bin/sh', '-c', `in=$(cat); echo "${op} $in" >> /data/ops; echo '{"ok":true,"bytes":1,"items":1}'`];
const exportOp = ['/bin/sh', '-c', 'cat >/dev/null; echo "export" >> /data/ops; cd /data && tar -cf - ops'];
const manifest = busyboxService('sickly', {
  name: { fr: 'Service malade', en: 'Sickly service' },
  description: { fr: 'Sa vérification de santé échoue quand le test le veut.', en: 'Its health check fails when the test says so.' },
  health: { command: ['/bin/sh', '-c', 'test ! -e /tmp/sick && wget -q -O /dev/null http://127.0.0.1:8080/index.html'], intervalSeconds: 1, timeoutSeconds: 2, retries: 1, startPeriodSeconds: 0 },
  accounts: {
    adapter: 'exec',
    operations: {
      create: { exec: logged('create') }, setPassword: { exec: logged('setPassword') }, suspend: { exec: logged('suspend') },
      resume: { exec: logged('resume') }, setQuota: { exec: logged('setQuota') }, delete: { exec: logged('delete') },
      usage: { exec: logged('usage') }, export: { exec: exportOp },
    },
  },
});

t.test('every account operation reaches an unhealthy instance', async (t) => {
  const { rt, config } = await runtimeWithService(t, manifest);
  const { app } = rt;
  const container = `${config.hosterId}-sick`;
  const observed = async () => (await app.inject('/api/instances/sick')).json().observed as string;
  t.equal((await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'sickly', slug: 'sick' } })).statusCode, 202);
  await waitFor('sick healthy', async () => (await observed()) === 'healthy', HEALTHY_WITHIN_MS, 250);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/sick/accounts', payload: { username: 'ana', password: 'le mot de passe d’Ana', quotaMb: 5 } })).statusCode, 201);

  t.equal((await execIn(container, ['touch', '/tmp/sick'], '65534')).code, 0);
  await waitFor('sick unhealthy', async () => (await observed()) === 'unhealthy', HEALTHY_WITHIN_MS, 250);
  const ops = async () => (await execIn(container, ['cat', '/data/ops'])).out.split('\n').filter(Boolean).map((l) => l.split(' ')[0]);
  const steps: [string, () => Promise<{ statusCode: number; body: string }>, number][] = [
    ['create', () => app.inject({ method: 'POST', url: '/api/instances/sick/accounts', payload: { username: 'bea', password: 'le mot de passe de Béa', quotaMb: 5 } }), 201],
    ['setPassword', () => app.inject({ method: 'PATCH', url: '/api/instances/sick/accounts/ana', payload: { password: 'un autre mot de passe' } }), 200],
    ['setQuota', () => app.inject({ method: 'PATCH', url: '/api/instances/sick/accounts/ana', payload: { quotaMb: 7 } }), 200],
    ['suspend', () => app.inject({ method: 'POST', url: '/api/instances/sick/accounts/ana/suspend' }), 200],
    ['resume', () => app.inject({ method: 'POST', url: '/api/instances/sick/accounts/ana/resume' }), 200],
    ['usage', () => app.inject('/api/instances/sick/accounts/ana?usage=true'), 200],
    ['export', () => app.inject('/api/instances/sick/accounts/ana/export'), 200],
    ['delete', () => app.inject({ method: 'DELETE', url: '/api/instances/sick/accounts/bea' }), 204],
  ];
  // cattery's own timer may ask for usage meanwhile: each step looks for its operation among the lines it added.
  for (const [op, call, code] of steps) {
    const before = (await ops()).length;
    const r = await call();
    t.equal(r.statusCode, code, `${op} on the unhealthy instance${r.statusCode === code ? '' : `: ${r.body.slice(0, 200)}`}`);
    t.ok((await ops()).slice(before).includes(op), `${op} ran in the container`);
  }
  t.equal(await observed(), 'unhealthy', 'all of it while the instance was unhealthy');
  const ana = (await app.inject('/api/instances/sick/accounts/ana')).json();
  t.same([ana.state, ana.quotaMb, ana.pending ?? null], ['active', 7, null], 'nothing left pending');

  // And it comes back by itself once its check passes.
  t.equal((await execIn(container, ['rm', '/tmp/sick'], '65534')).code, 0);
  await waitFor('sick healthy again', async () => (await observed()) === 'healthy', HEALTHY_WITHIN_MS, 250);
});
