// The hardening is read back from `docker inspect`, not trusted from the spec; two instances cannot reach each other.
import t from 'tap';
import { docker, execIn, testRuntime, waitFor } from '../helpers.js';

t.test('hardened HostConfig, one network per instance, no cross-instance traffic', async (t) => {
  const rt = await testRuntime(t);
  const { app, config } = rt;
  for (const slug of ['iso-a', 'iso-b']) {
    const r = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug } });
    t.equal(r.statusCode, 202, r.body);
  }
  await waitFor('both healthy', async () => {
    const list = (await app.inject('/api/instances')).json() as { observed: string }[];
    return list.length === 2 && list.every((i) => i.observed === 'healthy');
  });
  const a = await docker.getContainer(`${config.hosterId}-iso-a`).inspect();
  const b = await docker.getContainer(`${config.hosterId}-iso-b`).inspect();
  const h = a.HostConfig;
  t.same(h.CapDrop, ['ALL']);
  t.same(h.CapAdd ?? [], []);
  t.ok(h.SecurityOpt?.includes('no-new-privileges:true'));
  t.equal(h.Privileged, false);
  t.equal(h.ReadonlyRootfs, true);
  t.equal(h.Memory, 32 * 1024 * 1024);
  t.equal(h.NanoCpus, 0.25e9);
  t.equal(h.PidsLimit, 32);
  t.match(h.Tmpfs, { '/tmp': /size=4m/ });
  t.notOk(h.PidMode, 'no host pid namespace');
  t.notOk(h.IpcMode === 'host' || h.UTSMode === 'host' || h.UsernsMode === 'host');
  t.equal(h.NetworkMode, `${config.hosterId}-iso-a`);
  t.same(h.Binds ?? [], [], 'no bind mount');
  t.ok((a.Mounts ?? []).every((m) => m.Type === 'volume'), 'only named volumes');
  t.notOk((a.Mounts ?? []).some((m) => m.Source?.includes('docker.sock')));
  const bindings = Object.values(h.PortBindings ?? {}).flat() as { HostIp: string }[];
  t.ok(bindings.length > 0 && bindings.every((p) => p.HostIp === '127.0.0.1'), 'ports only on the configured address');
  t.equal(a.Config.User, '65534:65534');
  t.equal(a.Config.Labels['cattery.hoster'], config.hosterId);
  t.equal(a.Config.Labels['cattery.instance'], 'iso-a');
  t.equal(a.Config.Labels['cattery.generation'], '1');
  t.notOk(a.Config.Env.some((e) => e.startsWith('PROBE_SECRET=') && e.length < 'PROBE_SECRET='.length + 24), 'secret generated');

  const ipB = Object.values(b.NetworkSettings.Networks)[0]!.IPAddress;
  t.ok(ipB, 'b has an address');
  // busybox's nc, not its wget: the static wget crashes resolving a bare address without NSS in a scratch image.
  // busybox's timeout around it all: nc's -w bounds the connect, not a connection whose packets are then dropped.
  const get = (ip: string) => ['/bin/timeout', '8', '/bin/sh', '-c', `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 8080`];
  const selfCheck = await execIn(b.Id, get(ipB));
  t.equal(selfCheck.code, 0, 'b answers on its own network (the probe itself works)');
  t.match(selfCheck.out, /bonjour/);
  const cross = await execIn(a.Id, get(ipB));
  t.not(cross.code, 0, `a cannot reach b (${cross.out.trim()})`);
  t.notMatch(cross.out, /bonjour/);
  // Secrets never leave through the API.
  t.notMatch((await app.inject('/api/instances/iso-a')).body, /PROBE_SECRET|secrets/);
});
