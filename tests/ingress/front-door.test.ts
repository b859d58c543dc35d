// The front door against real parts: Debian's Caddy as the ingress, a real ACME CA (tests/ingress/acme.ts), real
// instances behind it. Clients verify certificates against the CA's root: never -k, never rejectUnauthorized: false.
import fs from 'node:fs';
import net from 'node:net';
import https from 'node:https';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { Writable } from 'node:stream';
import pino from 'pino';
import { asOperator, docker, removeHosterObjects, testConfig, waitFor } from '../helpers.js';
import { createRuntime } from '../../src/runtime.js';
import { ACME_DIRECTORY, startAcmeCa, wireAcmeCa } from './acme.js';
import { loadCaddyConfig } from '../../src/ingress/caddy-admin.js';

const DOMAIN = 'asso.test';

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

function get(port: number, host: string, ca: string, opts: { path?: string; headers?: Record<string, string>; method?: string; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, servername: host, ca, path: opts.path ?? '/', method: opts.method ?? 'GET',
      headers: { host, ...(opts.headers ?? {}) }, timeout: 10_000, agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function plainGet(port: number, host: string, p = '/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, headers: { host }, timeout: 10_000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' }));
    }).on('error', reject);
  });
}

t.test('the front door serves instances over HTTPS with certificates from the association\'s ACME CA', async (t) => {
  const scratch = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'cattery-acme-'));
  t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }));
  const hosterId = `t${Math.random().toString(16).slice(2, 10)}`;
  const ca = await startAcmeCa(t, hosterId, scratch);
  const config = testConfig(t, {
    hosterId, domains: [DOMAIN], publicUrl: `https://cattery.${DOMAIN}`, logLevel: 'info',
    ingress: { enabled: true, bindAddress: '127.0.0.1', httpPort: 0, httpsPort: 0, acmeDirectory: ACME_DIRECTORY, acmeRootFile: ca.rootFile, hstsSeconds: 31536000 },
  });
  // The addresses cattery's request log gives its clients: what it keys limits and throttles on.
  const clients: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      const rec = JSON.parse(line) as { req?: { url?: string; remoteAddress?: string } };
      if (rec.req?.url === '/healthz?door=1') clients.push(rec.req.remoteAddress ?? '');
    }
    done();
  } });
  const rt = await createRuntime(config, pino({ level: 'info' }, sink), { maxBackoffSeconds: 2 });
  rt.start(config.reconcileIntervalSeconds);
  asOperator(rt.app);
  t.teardown(async () => { await rt.close(); await removeHosterObjects(hosterId); });
  const ports = await waitFor('the front door', () => { const p = rt.ingress.ports(1); return p.https ? p : undefined; }, 90_000);
  await wireAcmeCa(ca, hosterId, [`probe.${DOMAIN}`, `www.probe.${DOMAIN}`, `cattery.${DOMAIN}`, `autoconfig.${DOMAIN}`, `mta-sts.${DOMAIN}`, `other.${DOMAIN}`]);

  const made = await rt.app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'probe', slug: 'probe', env: { PROBE_GREETING: 'bonjour-door' } } });
  t.equal(made.statusCode, 201, made.body);
  const set = await rt.app.inject({ method: 'PUT', url: '/api/instances/probe/hostnames', payload: { hostnames: [`Probe.${DOMAIN}.`, `www.probe.${DOMAIN}`] } });
  t.equal(set.statusCode, 200, set.body);
  t.same(set.json().hostnames, [`probe.${DOMAIN}`, `www.probe.${DOMAIN}`], 'stored lower-case, without the final dot');

  const page = await waitFor('the instance over HTTPS', () => get(ports.https, `probe.${DOMAIN}`, ca.rootPem).then((a) => (a.status === 200 ? a : undefined)), 120_000, 1000);
  t.match(page.body, /bonjour-door/, 'the instance answers through the door, its certificate verified against the CA root');
  t.equal(page.headers['strict-transport-security'], 'max-age=31536000', 'HSTS');

  const redirect = await plainGet(ports.http, `probe.${DOMAIN}`, '/index.html?x=1');
  t.equal(redirect.status, 308, 'plain HTTP is sent to HTTPS');
  t.equal(redirect.headers.location, `https://probe.${DOMAIN}/index.html?x=1`);

  await t.rejects(get(ports.https, `unknown.${DOMAIN}`, ca.rootPem), 'a name nobody asked for gets no certificate');

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

  // Deleting the instance takes its names off the door (and its network away, with the door let go first).
  const del = await rt.app.inject({ method: 'DELETE', url: '/api/instances/probe?wait=true' });
  t.equal(del.statusCode, 200, del.body);
  await waitFor('the name gone from the door', () => get(ports.https, `probe.${DOMAIN}`, ca.rootPem).then((a) => a.status !== 200, () => true), 60_000, 500);
  const door2 = await docker.getContainer(`${hosterId}--ingress`).inspect();
  t.notOk(Object.keys(door2.NetworkSettings.Networks).some((n) => n === `${hosterId}-probe`), 'the door left the deleted instance\'s network');
});
