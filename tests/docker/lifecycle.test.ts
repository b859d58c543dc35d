// An instance of the probe service through its whole life, against the real engine.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { docker, execIn, testRuntime, waitFor } from '../helpers.js';

t.test('create → healthy → stop → upgrade keeps data → delete archives → purge leaves nothing', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  const name = `${config.hosterId}-alpha`;

  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'alpha' } });
  t.equal(created.statusCode, 202, created.body);
  t.equal(created.json().observed, 'pending');
  await waitFor('alpha healthy', async () => (await app.inject('/api/instances/alpha')).json().observed === 'healthy');

  const port = created.json().ports.http as number;
  const res = await fetch(`http://127.0.0.1:${port}/index.html`);
  t.equal((await res.text()).trim(), 'bonjour', 'the service answers on its published port');

  // Data in the volume; the container runs as 65534, so write as that user.
  const w = await execIn(name, ['/bin/sh', '-c', 'echo précieux > /data/note.txt']);
  t.equal(w.code, 0, w.out);

  const stopped = await app.inject({ method: 'POST', url: '/api/instances/alpha/stop?wait=true' });
  t.equal(stopped.statusCode, 200);
  t.equal(stopped.json().observed, 'stopped');
  t.equal((await docker.getContainer(name).inspect()).State.Running, false);

  await app.inject({ method: 'POST', url: '/api/instances/alpha/start' });
  const before = (await docker.getContainer(name).inspect()).Id;
  const up = await app.inject({ method: 'POST', url: '/api/instances/alpha/upgrade?wait=true' });
  t.equal(up.json().generation, 2);
  await waitFor('alpha healthy again', async () => (await app.inject('/api/instances/alpha')).json().observed === 'healthy');
  const after = await docker.getContainer(name).inspect();
  t.not(after.Id, before, 'upgrade recreated the container');
  t.equal(after.Config.Labels['cattery.generation'], '2');
  t.equal((await execIn(name, ['/bin/cat', '/data/note.txt'])).out.trim(), 'précieux', 'volume data survived the upgrade');

  const env = await app.inject({ method: 'PATCH', url: '/api/instances/alpha?wait=true', payload: { env: { PROBE_GREETING: 'salut' } } });
  t.equal(env.json().generation, 3);
  await waitFor('new greeting', async () => (await (await fetch(`http://127.0.0.1:${port}/index.html`)).text()).trim() === 'salut');

  const del = await app.inject({ method: 'DELETE', url: '/api/instances/alpha?wait=true' });
  t.equal(del.statusCode, 200, del.body);
  t.equal(del.json().observed, 'deleted');
  const backups = fs.readdirSync(path.join(config.dataDir, 'backups'));
  t.equal(backups.length, 1);
  const archiveDir = path.join(config.dataDir, 'backups', backups[0]!);
  t.ok(fs.statSync(path.join(archiveDir, 'data.tar.gz')).size > 0, 'volume archived');
  t.match(JSON.parse(fs.readFileSync(path.join(archiveDir, 'instance.json'), 'utf8')), { slug: 'alpha', service: 'probe' });
  const filters = { label: [`cattery.hoster=${config.hosterId}`] };
  t.same(await docker.listContainers({ all: true, filters }), [], 'no container left');
  t.same((await docker.listVolumes({ filters })).Volumes ?? [], [], 'no volume left');
  t.equal((await app.inject('/api/instances/alpha')).statusCode, 404);

  const ops = await app.inject('/api/instances/alpha/operations');
  t.ok(ops.json().some((o: { kind: string }) => o.kind === 'deleted'), 'the journal outlives the instance');

  // Purge: no archive, nothing with the labels left.
  await app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'probe', slug: 'beta' } });
  const purge = await app.inject({ method: 'DELETE', url: '/api/instances/beta?purge=true&wait=true' });
  t.equal(purge.json().observed, 'deleted');
  t.equal(fs.readdirSync(path.join(config.dataDir, 'backups')).length, 1, 'purge wrote no archive');
  t.same(await docker.listContainers({ all: true, filters }), []);
  t.same(await docker.listNetworks({ filters }), []);
  t.same((await docker.listVolumes({ filters })).Volumes ?? [], []);
  t.notMatch(execFileSync('iptables', ['-w', '5', '-S', 'DOCKER-USER']).toString(), `cattery:${config.hosterId}`, 'nor any isolation rule of its networks');
});
