// The mail host's certificate comes from the front door: Caddy obtains it by ACME (the name is the mail instance's,
// with no web site), cattery hands it to the mail instance, and mail clients verify IMAPS, submissions and
// STARTTLS against the association's CA for mail.<domain>. No -k anywhere.
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { waitFor } from '../helpers.js';
import { DOMAIN, startDoor } from './door.js';

const MAIL_HOST = `mail.${DOMAIN}`;

/** A TLS handshake on 127.0.0.1:port for MAIL_HOST, verified against `ca`; resolves with the server's first line. */
function implicitTls(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: MAIL_HOST, ca, timeout: 10_000 }, () => undefined);
    s.once('data', (b: Buffer) => { s.end(); resolve(b.toString().split('\r\n')[0] ?? ''); });
    s.on('timeout', () => s.destroy(new Error('timeout')));
    s.once('error', reject);
  });
}

/** SMTP STARTTLS on 587, then the same verification. */
function startTls(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const plain = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    let step = 0;
    plain.on('data', (b: Buffer) => {
      buf += b.toString();
      if (step === 0 && /^220 .*\r\n$/m.test(buf)) { step = 1; buf = ''; plain.write('EHLO door.test\r\n'); }
      else if (step === 1 && /^250 /m.test(buf)) { step = 2; buf = ''; plain.write('STARTTLS\r\n'); }
      else if (step === 2 && /^220 /m.test(buf)) {
        step = 3;
        plain.removeAllListeners('data');
        const s = tls.connect({ socket: plain, servername: MAIL_HOST, ca }, () => { const san = s.getPeerCertificate().subjectaltname; s.end(); resolve(String(san ?? '')); });
        s.once('error', reject);
      }
    });
    plain.once('error', reject);
    plain.setTimeout(10_000, () => plain.destroy(new Error('timeout')));
  });
}

t.test('the mail instance serves the certificate the front door obtained for its host', async (t) => {
  const { rt, ca } = await startDoor(t, [MAIL_HOST, `cattery.${DOMAIN}`, `autoconfig.${DOMAIN}`, `mta-sts.${DOMAIN}`]);
  const made = await rt.app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: DOMAIN } } });
  t.equal(made.statusCode, 201, 'mail instance healthy');
  const ports = made.json().ports as Record<string, number>;
  t.equal((await rt.app.inject({ method: 'PUT', url: '/api/instances/courriel/hostnames', payload: { hostnames: [MAIL_HOST] } })).statusCode, 200);

  const banner = await waitFor('IMAPS with the door\'s certificate', () => implicitTls(ports.imaps!, ca.rootPem).catch(() => undefined), 300_000, 500);
  t.match(banner, /^\* OK/, 'IMAPS on 993 verifies against the ACME CA for mail.<domain>');
  t.match(await implicitTls(ports.submissions!, ca.rootPem), /^220 /, 'submissions on 465 too');
  t.equal(await startTls(ports.submission!, ca.rootPem), `DNS:${MAIL_HOST}`, 'and submission on 587 after STARTTLS');
  const door = (await rt.app.inject({ url: '/api/ingress' })).json()[0];
  t.same(door.hostnames, [{ hostname: MAIL_HOST, instance: 'courriel', service: 'mail' }]);
});
