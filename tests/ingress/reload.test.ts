// The front door while it changes: 20 instances added and removed (each a new configuration loaded into Caddy) while
// a client keeps requesting an instance that stays.
import https from 'node:https';
import t from 'tap';
import { waitFor } from '../helpers.js';
import { busyboxService, serviceCatalog } from '../test-service.js';
import { DOMAIN, get, startDoor } from './door.js';

const N = 20;

// The 20 instances added and removed: the probe's web server without its health check. The door serves an instance
// that runs, healthy or not (ingress.ts servedRows), and this test never waits for them to be healthy; the probe's
// check, every second in each of 20 containers, cost about one core of the test machine in engine execs alone.
const churn = busyboxService('churn', {
  name: { fr: 'Sonde sans contrôle de santé', en: 'Probe without a health check' },
  description: { fr: 'Des instances ajoutées et retirées derrière la porte.', en: 'Instances added and removed behind the door.' },
  http: { port: 'http', maxBodyMb: 1, timeoutSeconds: 10, websocket: false },
  health: undefined,
});

/** One keep-alive client, as a browser is: an idempotent GET that meets a connection the server closed between two
 * requests (the keep-alive race of RFC 9112 §9.3.1) is sent once more on a new one; anything else is a failure. */
function keepAliveClient(port: number, host: string, ca: string) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 2, ca, servername: host });
  let ok = 0; let failed = 0; let retried = 0; const errors: string[] = [];
  const once = () => new Promise<number>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/index.html', headers: { host }, agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
    req.end();
  });
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        let status: number;
        try { status = await once(); } catch (err) {
          if (!(err as { reused?: boolean }).reused) throw err;
          retried++;
          status = await once();
        }
        if (status === 200) ok++; else { failed++; errors.push(String(status)); }
      } catch (err) { failed++; errors.push((err as Error).message); }
    }
  })();
  return { stop: async () => { running = false; await loop; agent.destroy(); return { ok, failed, retried, errors }; } };
}

t.test('adding and removing 20 instances loses no request to one that stays', async (t) => {
  const names = [`stay.${DOMAIN}`, ...Array.from({ length: N }, (_, i) => `p${i}.${DOMAIN}`)];
  const { rt, ca, ports } = await startDoor(t, names, { catalogDirs: [await serviceCatalog(t, churn)] });
  const made = await rt.app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'probe', slug: 'stay', env: { PROBE_GREETING: 'toujours' } } });
  t.equal(made.statusCode, 201, made.body);
  t.equal((await rt.app.inject({ method: 'PUT', url: '/api/instances/stay/hostnames', payload: { hostnames: [`stay.${DOMAIN}`] } })).statusCode, 200);
  await waitFor('stay over HTTPS', () => get(ports.https, `stay.${DOMAIN}`, ca.rootPem).then((a) => a.status === 200), 300_000, 250);

  const client = keepAliveClient(ports.https, `stay.${DOMAIN}`, ca.rootPem);
  const hashes = new Set<string>();
  const applied = async () => (await rt.app.inject({ url: '/api/ingress' })).json()[0].appliedHash as string;
  // Each change is waited for until the door has loaded a configuration with it (an addition's own door pass, started
  // by the change of names; a removal's, at the end of the reconcile pass it wakes), not for a whole reconcile pass
  // each: the containers are made and removed by the passes meanwhile, the door joining and leaving their networks.
  let last = await applied();
  const nextConfiguration = async (what: string) => {
    last = await waitFor(what, async () => { const h = await applied(); return h !== last ? h : undefined; }, 120_000, 100);
    hashes.add(last);
  };
  for (let i = 0; i < N; i++) {
    const slug = `p${i}-probe`;
    const r = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'churn', slug, desired: 'running' } });
    t.equal(r.statusCode, 202, `${slug} asked for`);
    t.equal((await rt.app.inject({ method: 'PUT', url: `/api/instances/${slug}/hostnames`, payload: { hostnames: [`p${i}.${DOMAIN}`] } })).statusCode, 200);
    await nextConfiguration(`the door's configuration with p${i}.${DOMAIN}`);
  }
  const some = await waitFor('a new instance through the door', () => get(ports.https, `p3.${DOMAIN}`, ca.rootPem).then((a) => a.status === 200), 300_000, 250);
  t.ok(some, 'a new instance is served, with its own certificate');
  for (let i = 0; i < N; i++) {
    t.equal((await rt.app.inject({ method: 'DELETE', url: `/api/instances/p${i}-probe` })).statusCode, 202);
    await nextConfiguration(`the door's configuration without p${i}.${DOMAIN}`);
  }
  await waitFor('every added instance gone', async () => (await rt.app.inject({ url: '/api/instances' })).json().length === 1, 120_000, 500);
  await rt.reconciler.trigger('test');
  const result = await client.stop();
  t.ok(hashes.size >= N, `${hashes.size} configurations applied while the client ran`);
  t.ok(result.ok > 50, `${result.ok} requests answered (${result.retried} sent again after a keep-alive close)`);
  t.equal(result.failed, 0, `no request lost: ${result.errors.slice(0, 5).join('; ')}`);
  const door = (await rt.app.inject({ url: '/api/ingress' })).json()[0];
  t.same(door.hostnames.map((h: { hostname: string }) => h.hostname), [`stay.${DOMAIN}`], 'only the one that stays is served');
  t.equal(door.lastError, null);
});
