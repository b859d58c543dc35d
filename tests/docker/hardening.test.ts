// The hardening is read back from `docker inspect`, not trusted from the spec; two instances cannot reach each other.
import { execFileSync } from 'node:child_process';
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

  // Cattery's own rule stands in front of Docker's (orchestrator/firewall.ts). To prove it alone holds, Docker's
  // isolation drop for b's bridge is taken out for a moment (what the failure seen under load looked like).
  const bridge = (c: typeof a) => `br-${Object.values(c.NetworkSettings.Networks)[0]!.NetworkID.slice(0, 12)}`;
  const rules = execFileSync('iptables', ['-w', '5', '-S', 'DOCKER-USER']).toString();
  for (const c of [a, b]) {
    t.ok(rules.split('\n').some((r) => r.includes(`-i ${bridge(c)} ! -o ${bridge(c)}`) && r.includes(`cattery:${config.hosterId}`) && r.endsWith('-j DROP')),
      `DOCKER-USER drops what leaves ${bridge(c)} for another instance`);
  }
  const dockerRule = ['DOCKER-ISOLATION-STAGE-2', '-o', bridge(b), '-j', 'DROP'];
  execFileSync('iptables', ['-w', '5', '-D', ...dockerRule]);
  try {
    const alone = await execIn(a.Id, get(ipB));
    t.notMatch(alone.out, /bonjour/, 'without Docker\'s rule, cattery\'s own still keeps a from b');
  } finally {
    execFileSync('iptables', ['-w', '5', '-I', ...dockerRule]);
  }
  // Secrets never leave through the API.
  t.notMatch((await app.inject('/api/instances/iso-a')).body, /PROBE_SECRET|secrets/);
});
