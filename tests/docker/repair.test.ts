// Level-triggered repair: what is removed behind cattery's back comes back; what is not cattery's is never touched.
import t from 'tap';
import { docker, testRuntime, waitFor } from '../helpers.js';
import { serviceImageRef } from '../../src/orchestrator/docker/images.js';

t.test('a container removed behind cattery\'s back is recreated; a foreign one is left alone', async (t) => {
  const rt = await testRuntime(t);
  const { app, config, catalog } = rt;
  const image = serviceImageRef(catalog.services.get('probe')!);
  // A container of someone else's, same image, even a name cattery might like: no hoster label.
  const foreign = await docker.createContainer({ name: `${config.hosterId}-foreign`, Image: image, Cmd: ['/bin/sleep', '300'], Labels: { 'cattery.instance': 'foreign' } });
  t.teardown(() => foreign.remove({ force: true }).catch(() => undefined));
  await foreign.start();

  await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'phoenix' } });
  await waitFor('phoenix healthy', async () => (await app.inject('/api/instances/phoenix')).json().observed === 'healthy');
  const name = `${config.hosterId}-phoenix`;
  const first = (await docker.getContainer(name).inspect()).Id;
  await docker.getContainer(name).remove({ force: true });
  const second = await waitFor('recreated', async () => {
    const info = await docker.getContainer(name).inspect().catch(() => null);
    return info && info.Id !== first && info.State.Running ? info.Id : undefined;
  });
  t.not(second, first, 'a new container stands in its place');
  const ops = (await app.inject('/api/instances/phoenix/operations')).json() as { kind: string }[];
  t.ok(ops.some((o) => o.kind === 'container-missing'), 'the repair is journaled');

  // Stopped behind our back while it should run: started again.
  await docker.getContainer(name).stop({ t: 1 });
  await waitFor('running again', async () => (await docker.getContainer(name).inspect()).State.Running);

  await rt.reconciler.trigger('test');
  const f = await foreign.inspect();
  t.equal(f.State.Running, true, 'the foreign container still runs');
  t.equal(f.Id, foreign.id);

  // A name clash with a foreign object is an error on the instance, not an adoption.
  const clash = await docker.createNetwork({ Name: `${config.hosterId}-clash`, Labels: {} });
  t.teardown(() => clash.remove().catch(() => undefined));
  await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'clash' } });
  const inst = await waitFor('clash error', async () => {
    const r = (await app.inject('/api/instances/clash')).json();
    return r.lastError ? r : undefined;
  });
  t.match(inst.lastError, /not managed by cattery/);
  t.ok(await clash.inspect(), 'the foreign network is still there');
});
