// No request stops a service: malformed request lines, targets, headers and bodies, generated with fast-check and
// written on raw sockets, to every catalog service with an HTTP port and to cattery's own listening server. After
// each batch every target must still answer its health check, and no container may have restarted (a process that
// died and was brought back by Docker's restart policy counts as a failure). Bounded: a few hundred requests per
// target, every socket with a deadline.
import net from 'node:net';
import t from 'tap';
import fc from 'fast-check';
import type { AddressInfo } from 'node:net';
import { docker, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';

const PER_TARGET = 240;
const BATCH = 40;
const SOCKET_MS = 1500;

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const pct = fc.oneof(fc.constant('%'), fc.constant('%E0'), fc.constant('%00'), fc.constant('%ZZ'), fc.constant('%c0%af'), fc.constant('%2e%2e'), fc.constant('%2F'), fc.constant('%ff%fe'));
const seg = fc.oneof(fc.constantFrom('alice', 'public', 'private', 'p', '_cattery', 'api', '..', '.', ''), fc.stringMatching(/^[A-Za-z0-9._~-]{0,8}$/), pct);
const path = fc.array(seg, { maxLength: 6 }).map((s) => `/${s.join('/')}`);
const target = fc.oneof(
  path,
  path.map((p) => `${p}?${'a=%'.repeat(3)}`),
  fc.constantFrom('http://[', 'http://[::1', 'http://x:99999/', 'https://', 'ftp://x/', '*', 'x.example:443', '//', '///a', '?', '#', 'http://a@b@c/', 'http://%41/'),
  path.map((p) => `http://127.0.0.1${p}`),
  fc.integer({ min: 9_000, max: 70_000 }).map((n) => `/${'a'.repeat(n)}`),
  fc.string({ maxLength: 30 }).map((s) => `/${s}`),
);
const b64 = (s: string) => Buffer.from(s).toString('base64');
const header = fc.oneof(
  fc.constantFrom('Content-Length: -1', 'Content-Length: abc', 'Content-Length: 99999999999999999999', 'Content-Length: 4000000000',
    'Content-Length: 5\r\nContent-Length: 7', 'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip, chunked', 'Transfer-Encoding: chunked\r\nContent-Length: 3',
    'Host:', 'Host: a\r\nHost: b', 'Expect: 100-continue', 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==',
    'Upgrade: websocket\r\nConnection: Upgrade', 'Destination: /%E0', 'Destination: http://[', 'Destination: /alice/x', 'Overwrite: T', 'Depth: infinity', 'Depth: -7',
    'If: (<opaquelocktoken:x>', 'If: <%E0> (["e"])', 'Authorization: Basic', 'Authorization: Basic ####', 'Authorization: Basic =', 'Authorization: Bearer x',
    `Authorization: Basic ${b64('alice')}`, `Authorization: Basic ${b64(':')}`, `Authorization: Basic ${b64('alice:')}`, `Authorization: Basic ${b64('a'.repeat(2000))}`,
    `Authorization: basic ${b64('alice:alice-secret-1')}`, `Authorization: Basic ${b64('alice:alice-secret-1')}`, 'Cookie: \u0000', 'X: \u00ff\u00fe'),
  fc.tuple(token, fc.string({ maxLength: 40 })).map(([k, v]) => `${k}: ${v.replace(/[\r\n]/g, ' ')}`),
  fc.integer({ min: 8_000, max: 40_000 }).map((n) => `X-Huge: ${'h'.repeat(n)}`),
  fc.integer({ min: 1, max: 200 }).map((n) => Array.from({ length: n }, (_, i) => `X-${i}: v`).join('\r\n')),
  fc.string({ maxLength: 20 }),
);
const body = fc.oneof(fc.constant(''), fc.string({ maxLength: 200 }), fc.constantFrom('0\r\n\r\n', 'zz\r\n', '5\r\nabc', '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:">', '<a>'.repeat(500)),
  fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u).toString('latin1')));
const method = fc.oneof(fc.constantFrom('GET', 'PUT', 'POST', 'COPY', 'MOVE', 'PROPFIND', 'PROPPATCH', 'LOCK', 'UNLOCK', 'MKCOL', 'DELETE', 'OPTIONS', 'HEAD', 'CONNECT', 'TRACE'), token, fc.constant(''));
const version = fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9', '', 'HTTP/1.1 extra');
const compose = (r: { method: string; target: string; version: string; headers: string[]; body: string; eol: string }) =>
  `${r.method} ${r.target} ${r.version}${r.eol}Host: 127.0.0.1${r.eol}${r.headers.join(r.eol)}${r.headers.length ? r.eol : ''}${r.eol}${r.body}`;
const METHODS = ['GET', 'PUT', 'POST', 'COPY', 'MOVE', 'PROPFIND', 'PROPPATCH', 'LOCK', 'UNLOCK', 'MKCOL', 'DELETE', 'OPTIONS', 'HEAD'];
// Most requests are well formed but for one or two hostile parts, so that the hostile part reaches the service's
// own code (a request line the HTTP parser refuses never does); the rest are hostile everywhere.
const wellFormed = fc.record({ method: fc.constantFrom(...METHODS), target, version: fc.constant('HTTP/1.1'), headers: fc.array(header, { maxLength: 2 }), body, eol: fc.constant('\r\n') }).map(compose);
const anyShape = fc.record({ method, target, version, headers: fc.array(header, { maxLength: 5 }), body, eol: fc.constantFrom('\r\n', '\n', '\r') }).map(compose);
const request = fc.oneof({ arbitrary: wellFormed, weight: 3 }, { arbitrary: anyShape, weight: 1 });
/** Every hostile target the generator knows, in a well-formed request with every method: each one reaches the
 * handlers at least once per run, whatever the sample draws (the absolute-form `http://[` that once stopped pads,
 * the `/%E0` that once stopped files). */
const HOSTILE_TARGETS = ['http://[', 'http://[::1', 'http://x:99999/', 'https://', 'ftp://x/', '*', 'x.example:443', '//', '///a', '?', '#', 'http://a@b@c/',
  'http://%41/', '/%', '/%E0', '/%00', '/%ZZ', '/%c0%af', '/%2e%2e/%2e%2e', '/alice/%2F..%2F', '/%ff%fe', '/alice/%E0', '/private/%E0', '/public/%'];
const enumerated = METHODS.flatMap((m) => HOSTILE_TARGETS.map((tg) => compose({ method: m, target: tg, version: 'HTTP/1.1', headers: m === 'PUT' || m === 'POST' ? ['Content-Length: 2'] : [], body: m === 'PUT' || m === 'POST' ? 'ab' : '', eol: '\r\n' })));

/** Write one request and wait for the answer, the close, or the deadline; never throws. */
function send(port: number, raw: string): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = () => { s.destroy(); resolve(); };
    s.setTimeout(SOCKET_MS, done);
    s.on('error', done);
    s.on('close', done);
    s.on('data', () => undefined);
    s.on('connect', () => s.write(Buffer.from(raw, 'latin1'), () => s.end()));
  });
}

async function healthy(port: number, path: string): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(3000) });
    return r.status < 500;
  } catch { return false; }
}

t.test('no request stops an HTTP service of the catalog, nor cattery itself', async (t) => {
  const rt = await testRuntime(t);
  const { app, config, catalog } = rt;
  const http = [...catalog.services.values()].filter((s) => s.manifest.ports.some((p) => p.name === 'http' && p.protocol === 'tcp'));
  t.ok(http.some((s) => s.manifest.id === 'files') && http.some((s) => s.manifest.id === 'pads'), `services with an http port: ${http.map((s) => s.manifest.id).join(', ')}`);

  const targets: { name: string; port: number; health: string; container?: string }[] = [];
  // Values for the variables a service cannot start without (webmail: where its mail server is; never reached here).
  const REQUIRED: Record<string, string> = { MAIL_DOMAIN: 'asso.example', WEBMAIL_IMAP_HOST: 'mail.asso.example', WEBMAIL_SMTP_HOST: 'mail.asso.example' };
  for (const svc of http) {
    const slug = `fz-${svc.manifest.id}`;
    const env = Object.fromEntries(Object.entries(svc.manifest.environment)
      .filter(([, d]) => 'required' in d && d.required).map(([k]) => [k, REQUIRED[k] ?? '']));
    const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: svc.manifest.id, slug, env } });
    t.equal(created.statusCode, 202, created.body);
    targets.push({ name: svc.manifest.id, port: created.json().ports.http, health: '/', container: `${config.hosterId}-${slug}` });
  }
  for (const x of targets) {
    await waitFor(`${x.name} healthy`, async () => (await app.inject(`/api/instances/fz-${x.name}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  }
  // An account in the services that have them, so that authenticated requests reach the deeper handlers too.
  for (const x of targets.filter((x) => catalog.services.get(x.name)?.manifest.accounts)) {
    const r = await app.inject({ method: 'POST', url: `/api/instances/fz-${x.name}/accounts`, payload: { username: 'alice', password: 'alice-secret-1', quotaMb: 1 } });
    t.equal(r.statusCode, 201, `${x.name}: account ${r.body}`);
  }
  await app.listen({ host: '127.0.0.1', port: 0 });
  targets.push({ name: 'cattery', port: (app.server.address() as AddressInfo).port, health: '/healthz' });

  const started = new Map<string, { startedAt: string; restarts: number }>();
  const state = async (name: string) => {
    const i = await docker.getContainer(name).inspect();
    return { startedAt: i.State.StartedAt, restarts: i.RestartCount };
  };
  for (const x of targets) if (x.container) started.set(x.container, await state(x.container));

  const samples = [...enumerated, ...fc.sample(request, { numRuns: PER_TARGET, seed: Number(process.env.FUZZ_SEED ?? 20261202) })];
  for (const x of targets) {
    for (let i = 0; i < samples.length; i += BATCH) {
      await Promise.all(samples.slice(i, i + BATCH).map((raw) => send(x.port, raw)));
      const ok = await healthy(x.port, x.health);
      if (!ok) t.fail(`${x.name} stopped answering after batch ${i / BATCH} (first request: ${JSON.stringify(samples[i]!.slice(0, 200))})`);
      if (x.container) {
        const now = await state(x.container);
        const before = started.get(x.container)!;
        if (now.restarts !== before.restarts || now.startedAt !== before.startedAt) {
          t.fail(`${x.name} restarted during batch ${i / BATCH}: ${JSON.stringify(samples.slice(i, i + BATCH).map((s) => s.slice(0, 120)))}`);
          started.set(x.container, now);
        }
      }
      if (!ok) break;
    }
    t.ok(await healthy(x.port, x.health), `${x.name} answers its health check after ${samples.length} hostile requests`);
  }
  // The instances are still healthy in cattery's own eyes.
  for (const x of targets.filter((x) => x.container)) {
    t.equal((await app.inject(`/api/instances/fz-${x.name}`)).json().observed, 'healthy', `${x.name} observed healthy`);
  }
});
