// The front door against real parts: Debian's Caddy as the ingress, a real ACME CA (tests/ingress/acme.ts), real
// instances behind it. Clients verify certificates against the CA's root: never -k, never rejectUnauthorized: false.
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { docker, waitFor } from '../helpers.js';
import { DOMAIN, get, plainGet, startDoor } from './door.js';
import { loadCaddyConfig } from '../../src/ingress/caddy-admin.js';

t.test('the front door serves instances over HTTPS with certificates from the association\'s ACME CA', async (t) => {
  const { rt, ca, ports, hosterId, clients } = await startDoor(t, [`probe.${DOMAIN}`, `www.probe.${DOMAIN}`, `cattery.${DOMAIN}`, `autoconfig.${DOMAIN}`, `mta-sts.${DOMAIN}`]);

  const made = await rt.app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'probe', slug: 'probe', env: { PROBE_GREETING: 'bonjour-door' } } });
  t.equal(made.statusCode, 201, made.body);
  const set = await rt.app.inject({ method: 'PUT', url: '/api/instances/probe/hostnames', payload: { hostnames: [`Probe.${DOMAIN}.`, `www.probe.${DOMAIN}`] } });
  t.equal(set.statusCode, 200, set.body);
  t.same(set.json().hostnames, [`probe.${DOMAIN}`, `www.probe.${DOMAIN}`], 'stored lower-case, without the final dot');

  const page = await waitFor('the instance over HTTPS', () => get(ports.https, `probe.${DOMAIN}`, ca.rootPem).then((a) => (a.status === 200 ? a : undefined)), 120_000, 250);
  t.match(page.body, /bonjour-door/, 'the instance answers through the door, its certificate verified against the CA root');
  t.equal(page.headers['strict-transport-security'], 'max-age=31536000', 'HSTS');

  const redirect = await plainGet(ports.http, `probe.${DOMAIN}`, '/index.html?x=1');
  t.equal(redirect.status, 308, 'plain HTTP is sent to HTTPS');
  t.equal(redirect.headers.location, `https://probe.${DOMAIN}/index.html?x=1`);

  await t.rejects(get(ports.https, `unknown.${DOMAIN}`, ca.rootPem), 'a name nobody asked for gets no certificate');

  // A client that opens connections and says nothing, or half a request head, is let go (read_header_timeout, 10 s):
  // on both ports, silent before TLS and silent after a partial head. Without a deadline each one held ~37 KB.
  const closedWithin = (port: number, first: string) => new Promise<number>((resolve, reject) => {
    const started = Date.now();
    const s = net.connect(port, '127.0.0.1', () => { if (first) s.write(first); });
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => { clearTimeout(guard); resolve(Date.now() - started); });
    const guard = setTimeout(() => { s.destroy(); reject(new Error(`port ${port}: still open after 60 s`)); }, 60_000);
  });
  const held = await Promise.all([closedWithin(ports.https, ''), closedWithin(ports.http, ''), closedWithin(ports.http, `GET / HTTP/1.1\r\nHost: probe.${DOMAIN}\r\n`)]);
  t.ok(held.every((ms) => ms < 60_000), `silent and half-sent connections are closed by the door (${held.map((ms) => Math.round(ms / 1000)).join(', ')} s)`);

  const big = await get(ports.https, `probe.${DOMAIN}`, ca.rootPem, { method: 'POST', path: '/index.html', body: Buffer.alloc(2 * 1024 * 1024, 97), headers: { 'content-type': 'text/plain' } });
  t.equal(big.status, 413, 'a body over the manifest\'s maxBodyMb stops at the door');

  // cattery's own pages behind the same door, with the client's address as the door saw it.
  const own = await waitFor('cattery behind the door', () => get(ports.https, `cattery.${DOMAIN}`, ca.rootPem, { path: '/healthz?door=1', headers: { 'x-forwarded-for': '203.0.113.9' } })
    .then((a) => (a.status === 200 ? a : undefined)), 120_000, 1000);
  t.equal(own.status, 200);
  const client = clients.at(-1) ?? '';
  t.ok(net.isIP(client), `cattery sees the client's address as the door saw it (${client})`);
  t.not(client, '203.0.113.9', 'not the one the client wrote in X-Forwarded-For');
  const me = await get(ports.https, `cattery.${DOMAIN}`, ca.rootPem, { path: '/api/ingress', headers: { authorization: `Bearer ${rt.config.adminToken}`, 'x-forwarded-for': '203.0.113.9' } });
  t.equal(me.status, 200, me.body);
  const door = (JSON.parse(me.body) as { appliedHash: string | null; lastError: string | null; hostnames: { hostname: string }[] }[])[0]!;
  t.ok(door.appliedHash, 'the applied configuration is on record');
  t.equal(door.lastError, null);
  t.same(door.hostnames.map((h) => h.hostname), [`probe.${DOMAIN}`, `www.probe.${DOMAIN}`]);

  // A configuration Caddy refuses leaves the previous one serving, and says why.
  const socket = path.join(rt.config.dataDir, 'ingress', 'local', 'admin.sock');
  await t.rejects(loadCaddyConfig(socket, { apps: { http: { servers: { x: { listen: [':443'], routes: [{ handle: [{ handler: 'no_such_handler' }] }] } } } } }),
    { code: 'CATTERY_ERR_INGRESS' });
  const still = await get(ports.https, `probe.${DOMAIN}`, ca.rootPem);
  t.equal(still.status, 200, 'the old configuration still serves after a refusal');

  // Caddy restarted in the same container boots its bare configuration (deploy/ingress/boot.json): the next pass
  // sees a Caddy it did not load and loads the plan again (cattery remembers what it loaded by container and start).
  await docker.getContainer(`${hosterId}--ingress`).restart({ t: 5 });
  // (Its host ports are chosen by Docker again at the restart here: the test asks for port 0.)
  await waitFor('the door serving again after a restart of Caddy', async () => {
    Object.assign(ports, rt.ingress.ports(1));
    return get(ports.https, `probe.${DOMAIN}`, ca.rootPem).then((a) => a.status === 200, () => false);
  }, 60_000, 500);
  t.pass('a restarted Caddy is given the plan again');

  // Deleting the instance takes its names off the door (and its network away, with the door let go first).
  const del = await rt.app.inject({ method: 'DELETE', url: '/api/instances/probe?wait=true' });
  t.equal(del.statusCode, 200, del.body);
  await waitFor('the name gone from the door', () => get(ports.https, `probe.${DOMAIN}`, ca.rootPem).then((a) => a.status !== 200, () => true), 60_000, 500);
  const door2 = await docker.getContainer(`${hosterId}--ingress`).inspect();
  t.notOk(Object.keys(door2.NetworkSettings.Networks).some((n) => n === `${hosterId}-probe`), 'the door left the deleted instance\'s network');
});
