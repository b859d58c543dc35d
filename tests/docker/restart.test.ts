// Restart is an intent like the others (a pending operation): carried out once by a pass, closed by its id, with
// no clock compared between cattery and the engine; a refusal is the request's own answer; ?wait=true answers once
// the restarted instance has converged; restarts asked in a burst, or while a pass is acting, are neither lost nor
// left open.
import t from 'tap';
import { docker, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';

t.test('restart: once per intent, closed, waited for, refused when not meant to run', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const name = `${config.hosterId}-rst`;
  t.equal((await app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'probe', slug: 'rst' } })).statusCode, 201);
  const startedAt = async () => (await docker.getContainer(name).inspect()).State.StartedAt;
  const ops = async () => (await app.inject('/api/instances/rst/operations')).json() as { kind: string; status: string }[];

  const before = await startedAt();
  const waited = await app.inject({ method: 'POST', url: '/api/instances/rst/restart?wait=true' });
  t.equal(waited.statusCode, 200, waited.body);
  t.equal(waited.json().observed, 'healthy', '?wait=true answers once the restarted instance is healthy again');
  const after = await startedAt();
  t.not(after, before, 'the container was restarted');
  t.same((await ops()).filter((o) => o.kind === 'restart' && o.status !== 'done'), [], 'the intent is closed');

  // A burst of restarts, without waiting: each intent is closed, and the container is restarted at least once but
  // is not left restarting (the intents do not keep each other due).
  const burst = await Promise.all(Array.from({ length: 5 }, () => app.inject({ method: 'POST', url: '/api/instances/rst/restart' })));
  t.same(burst.map((r) => r.statusCode), [202, 202, 202, 202, 202]);
  await waitFor('burst closed', async () => (await ops()).every((o) => o.kind !== 'restart' || o.status === 'done'), 60_000, 250);
  await waitFor('healthy after the burst', async () => (await app.inject('/api/instances/rst')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 250);
  const settled = await startedAt();
  t.not(settled, after, 'restarted by the burst');
  await new Promise((r) => setTimeout(r, 4000));
  t.equal(await startedAt(), settled, 'and not restarted again once the intents are closed');
  const restarted = (await ops()).filter((o) => o.kind === 'restarted').length;
  t.ok(restarted >= 2 && restarted <= 6, `${restarted} restarts carried out for 6 intents, none twice for the same one`);

  // Not meant to run: refused at once, with and without ?wait=true, and nothing is journaled.
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/rst/stop?wait=true' })).statusCode, 200);
  const count = (await ops()).length;
  for (const q of ['', '?wait=true']) {
    const r = await app.inject({ method: 'POST', url: `/api/instances/rst/restart${q}` });
    t.equal(r.statusCode, 409, `restart${q} of a stopped instance: ${r.body}`);
  }
  t.equal((await ops()).length, count, 'a refused restart writes no intent');
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/nosuch/restart' })).statusCode, 404);
});
