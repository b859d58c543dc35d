// How cattery reaches a server's engine (orchestrator/docker/engine.ts): a TLS endpoint (tcp://HOST:2376, https://) is
// only ever reached with that host's client certificate and CA, over a real TLS handshake that verifies both sides
// (a loopback server asking for a client certificate signed by the test's CA, as `dockerd --tlsverify` does); plain TCP
// to another machine is refused at registration unless said on purpose.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { connectEngine, dockerOptions, isPlainRemoteEndpoint, isTlsEndpoint, ping } from '../../src/orchestrator/docker/engine.js';
import { checkEndpoint } from '../../src/orchestrator/servers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-engine-tls-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
/** A CA, and a certificate it signs for `name` (server or client). */
function ca(name: string): void {
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`);
}
function signed(name: string, by: string, ext: string): void {
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.pem`, '-CAkey', `${by}-key.pem`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
}
ca('ca');
ca('other-ca');
signed('server', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
signed('client', 'ca', 'extendedKeyUsage=clientAuth\n');
signed('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
const read = (f: string) => fs.readFileSync(path.join(dir, f));
const log = pino({ level: 'silent' });

/** `<certsDir>/127.0.0.1/` with the given client certificate and CA. */
function certsDir(client: string, caFile: string): string {
  const root = fs.mkdtempSync(path.join(dir, 'certs-'));
  fs.mkdirSync(path.join(root, '127.0.0.1'), { mode: 0o700 });
  fs.copyFileSync(path.join(dir, `${caFile}.pem`), path.join(root, '127.0.0.1', 'ca.pem'));
  fs.copyFileSync(path.join(dir, `${client}.pem`), path.join(root, '127.0.0.1', 'cert.pem'));
  fs.copyFileSync(path.join(dir, `${client}-key.pem`), path.join(root, '127.0.0.1', 'key.pem'));
  return root;
}

t.test('a TLS engine is reached with its client certificate, and verified against its CA', async (t) => {
  const server = https.createServer({ key: read('server-key.pem'), cert: read('server.pem'), ca: read('ca.pem'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(req.url === '/_ping' ? 'OK' : '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  const endpoint = `https://127.0.0.1:${port}`;
  const engineWith = (certs: string) => connectEngine(endpoint, { hosterId: 'tabcdef01', timeoutSeconds: 5, log, certsDir: certs });
  await ping(engineWith(certsDir('client', 'ca')));
  t.pass('the handshake verified both sides: the engine answered');
  await t.rejects(ping(engineWith(certsDir('stranger', 'ca'))), 'a client certificate of another CA is refused by the engine');
  await t.rejects(ping(engineWith(certsDir('client', 'other-ca'))), 'an engine the CA file does not vouch for is refused by cattery');
});

t.test('every TLS endpoint, generated: no connection without the certificate files', async (t) => {
  const host = fc.oneof(fc.ipV4(), fc.domain());
  fc.assert(fc.property(host, fc.constantFrom('tcp://H:2376', 'https://H:2376', 'https://H:8443'), (h, form) => {
    const endpoint = form.replace('H', h);
    if (!isTlsEndpoint(endpoint)) return false;
    try { dockerOptions(endpoint, path.join(dir, 'no-such-folder')); return false; } catch (err) {
      return (err as { code?: string }).code === 'CATTERY_ERR_VALIDATION' && (err as Error).message.includes('ca.pem');
    }
  }), { numRuns: 200 });
  t.throws(() => dockerOptions('tcp://mairie.example.org:2376'), { code: 'CATTERY_ERR_VALIDATION' }, 'no certificate folder at all: refused too');
  const o = dockerOptions(`https://127.0.0.1:2376`, certsDir('client', 'ca')) as { protocol?: string; ca?: unknown; cert?: unknown; key?: unknown };
  t.same([o.protocol, !!o.ca, !!o.cert, !!o.key], ['https', true, true, true]);
});

t.test('plain TCP: to this host allowed, to another machine refused unless said on purpose', async (t) => {
  // Names that begin like a loopback address are other machines too (127.0.0.1.example.org).
  const remote = fc.oneof(fc.ipV4().filter((ip) => !ip.startsWith('127.')), fc.domain().filter((d) => d !== 'localhost'),
    fc.tuple(fc.ipV4(), fc.domain()).map(([ip, d]) => `127.${ip.split('.').slice(1).join('.')}.${d}`));
  fc.assert(fc.property(remote, fc.integer({ min: 1, max: 65535 }).filter((p) => p !== 2376), (h, port) => {
    const endpoint = `tcp://${h}:${port}`;
    if (!isPlainRemoteEndpoint(endpoint)) return false;
    try { checkEndpoint(endpoint, false); return false; } catch (err) { if ((err as { code?: string }).code !== 'CATTERY_ERR_VALIDATION') return false; }
    checkEndpoint(endpoint, true);
    return true;
  }), { numRuns: 300 });
  for (const ok of ['unix:///var/run/docker.sock', 'tcp://127.0.0.1:2375', 'tcp://localhost:2375', 'tcp://mairie.example.org:2376']) {
    t.doesNotThrow(() => checkEndpoint(ok, false), ok);
  }
  // A TLS endpoint's host names a folder under engine-certs/, never a way out of it.
  for (const host of ['..', '.']) t.throws(() => dockerOptions(`tcp://${host}:2376`, path.join(dir, 'engine-certs')), { code: 'CATTERY_ERR_VALIDATION' }, `host "${host}"`);
});
