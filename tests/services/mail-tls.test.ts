// Each mail instance has its own key, made at its first start and kept across restarts (issue 9, item 5): two
// instances never share one, the image carries none, and a restart serves the same certificate.
import crypto from 'node:crypto';
import t from 'tap';
import { execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';

const KEY = '/var/lib/cattery-mail/tls/key.pem';
const CERT = '/var/lib/cattery-mail/tls/cert.pem';

t.test('mail: a key of its own per instance, kept across a restart', async (t) => {
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180 });
  const { app, config } = rt;
  const healthy = (slug: string) => waitFor(`${slug} healthy`, async () => (await app.inject(`/api/instances/${slug}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  for (const [slug, domain] of [['mail-a', 'a-quartier.test'], ['mail-b', 'b-quartier.test']]) {
    const r = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug, env: { MAIL_DOMAIN: domain } } });
    t.ok([201, 202].includes(r.statusCode), r.body);
  }
  await healthy('mail-a');
  await healthy('mail-b');
  const digest = async (slug: string, file: string) => {
    const r = await execIn(`${config.hosterId}-${slug}`, ['cat', file]);
    t.equal(r.code, 0, `${slug}: ${file} exists`);
    return crypto.createHash('sha256').update(r.out).digest('hex');
  };
  const keyA = await digest('mail-a', KEY);
  t.not(keyA, await digest('mail-b', KEY), 'two instances have different keys');
  const snakeoil = await execIn(`${config.hosterId}-mail-a`, ['sh', '-c', 'ls /etc/ssl/private/ /etc/dovecot/private/ 2>/dev/null | grep -c pem\\|key']);
  t.equal(snakeoil.out.trim(), '0', 'the image carries no shared key');
  const subject = await execIn(`${config.hosterId}-mail-a`, ['openssl', 'x509', '-in', CERT, '-noout', '-ext', 'subjectAltName']);
  t.match(subject.out, /DNS:mail\.a-quartier\.test/, 'the certificate names the instance\'s own domain');

  const certA = await digest('mail-a', CERT);
  await app.inject({ method: 'POST', url: '/api/instances/mail-a/stop?wait=true' });
  await waitFor('mail-a stopped', async () => (await app.inject('/api/instances/mail-a')).json().observed !== 'healthy', 60_000, 500);
  await app.inject({ method: 'POST', url: '/api/instances/mail-a/start' });
  await healthy('mail-a');
  t.equal(await digest('mail-a', KEY), keyA, 'the key survives a restart');
  t.equal(await digest('mail-a', CERT), certA, 'so does the certificate');
});
