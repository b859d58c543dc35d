// The mail service end to end: Postfix and Dovecot in a container built from Debian, accounts made by cattery,
// real SMTP submission and IMAP clients.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import t from 'tap';
import tar from 'tar-fs';
import nodemailer from 'nodemailer';
import net from 'node:net';
import { ImapFlow } from 'imapflow';
import { execIn, testRuntime, waitFor } from '../helpers.js';
import { accessText } from '../../src/catalog/offer.js';
import { getInstance } from '../../src/orchestrator/instances.js';

const DOMAIN = 'quartier.test';

t.test('mailboxes: send, read, refuse, suspend, quota, export, delete', async (t) => {
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180 });
  const { app, config } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: DOMAIN } } });
  t.equal(created.statusCode, 202, created.body);
  const ports = created.json().ports as Record<string, number>;
  await waitFor('mail healthy', async () => (await app.inject('/api/instances/courriel')).json().observed === 'healthy', 120_000, 500);

  // The only trust anchor: the instance's own certificate, read out of its container; names as the cert says.
  const container = `${config.hosterId}-courriel`;
  const ca = (await execIn(container, ['cat', '/var/lib/cattery-mail/tls/cert.pem'])).out.replace(/^[^-]*/, '');
  t.match(ca, /BEGIN CERTIFICATE/, 'the instance made its own certificate');
  const tls = { ca, servername: `mail.${DOMAIN}` };
  const mode = await execIn(container, ['stat', '-c', '%a %U', '/var/lib/cattery-mail/tls/key.pem']);
  t.match(mode.out.trim(), /^600 root$/, 'its key is 0600, root only');

  // Before TLS: 25 and 587 advertise no AUTH (587 refuses it outright), IMAP announces LOGINDISABLED and refuses LOGIN.
  const talk = (port: number, lines: string[]) => new Promise<string>((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = '';
    sock.on('data', (d) => { out += d.toString(); });
    sock.on('error', reject);
    let i = 0;
    const next = () => { if (i < lines.length) { sock.write(`${lines[i++]}\r\n`); setTimeout(next, 500); } else setTimeout(() => { sock.destroy(); resolve(out); }, 500); };
    setTimeout(next, 700);
  });
  const probeAuth = Buffer.from(`\0alice@${DOMAIN}\0whatever-pass`).toString('base64');
  const on25 = await talk(ports.smtp!, ['EHLO peer.test', `AUTH PLAIN ${probeAuth}`, 'QUIT']);
  t.notMatch(on25, /250[- ]AUTH/, `port 25 offers no AUTH: ${on25}`);
  t.match(on25, /250[- ]STARTTLS/, 'port 25 offers STARTTLS to other servers');
  t.notMatch(on25, /\n235/, 'port 25 accepts no authentication');
  const on587 = await talk(ports.submission!, ['EHLO client.test', `AUTH PLAIN ${probeAuth}`, 'QUIT']);
  t.notMatch(on587, /250[- ]AUTH/, 'submission does not advertise AUTH before STARTTLS');
  t.match(on587, /530 5\.7\.0 Must issue a STARTTLS/, 'submission refuses AUTH before STARTTLS');
  const on143 = await talk(ports.imap!, ['a CAPABILITY', `b LOGIN alice@${DOMAIN} whatever-pass`, 'c LOGOUT']);
  t.match(on143, /LOGINDISABLED/, 'IMAP announces LOGINDISABLED before STARTTLS');
  t.match(on143, /b NO \[PRIVACYREQUIRED\]/, 'IMAP refuses LOGIN before STARTTLS');

  const mk = (username: string, password: string, quotaMb = 50) =>
    app.inject({ method: 'POST', url: '/api/instances/courriel/accounts', payload: { username, password, quotaMb } });
  const a = await mk('alice', 'alice-secret-1');
  t.equal(a.statusCode, 201, a.body);
  t.equal(a.json().state, 'active');
  t.equal((await mk('bob', 'bob-secret-22')).statusCode, 201);
  t.equal((await mk('bob', 'bob-secret-22')).statusCode, 200, 'creating an existing account is not an error');

  const send = (user: string, pass: string, to: string, subject: string, extra: Partial<nodemailer.SendMailOptions> = {}) =>
    nodemailer.createTransport({ host: '127.0.0.1', port: ports.submission, secure: false, requireTLS: true, tls, auth: { user: `${user}@${DOMAIN}`, pass } })
      .sendMail({ from: `${user}@${DOMAIN}`, to, subject, text: 'Bonjour du quartier', ...extra });
  const imap = async (user: string, pass: string) => {
    const c = new ImapFlow({ host: '127.0.0.1', port: ports.imap, secure: false, auth: { user: `${user}@${DOMAIN}`, pass }, logger: false, doSTARTTLS: true, tls });
    // A refused login closes the connection: imapflow then reports it as an 'error' event as well as a rejection.
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  const subjects = async (user: string, pass: string) => {
    const c = await imap(user, pass);
    try {
      await c.mailboxOpen('INBOX');
      const out: string[] = [];
      for await (const msg of c.fetch('1:*', { envelope: true })) out.push(msg.envelope?.subject ?? '');
      return out;
    } catch { return []; } finally { if (c.usable) await c.logout().catch(() => undefined); else c.close(); }
  };

  await send('alice', 'alice-secret-1', `bob@${DOMAIN}`, 'Réunion de quartier');
  await waitFor('delivered to bob', async () => (await subjects('bob', 'bob-secret-22')).includes('Réunion de quartier'), 30_000, 500);
  t.pass('alice → bob delivered over submission, read over IMAP');

  // The login the resident is shown on "my services" is exactly the one that works, on both protocols.
  const shown = accessText(rt.catalog, getInstance(rt.db, 'courriel'), 'alice', '127.0.0.1', 'fr');
  const login = /Identifiant : (\S+?) /.exec(shown)?.[1] ?? '';
  t.equal(login, `alice@${DOMAIN}`, `the access text shows the whole address as the login: ${shown}`);
  t.match(shown, /STARTTLS/);
  const shownImap = new ImapFlow({ host: '127.0.0.1', port: ports.imap, secure: false, auth: { user: login, pass: 'alice-secret-1' }, logger: false, tls });
  shownImap.on('error', () => undefined);
  await shownImap.connect();
  t.ok(shownImap.usable, 'IMAP accepts the shown login');
  await shownImap.logout();
  await nodemailer.createTransport({ host: '127.0.0.1', port: ports.submission, secure: false, requireTLS: true, tls, auth: { user: login, pass: 'alice-secret-1' } })
    .sendMail({ from: login, to: `bob@${DOMAIN}`, subject: 'Avec l identifiant affiche', text: 'x' });
  t.pass('submission accepts the shown login');

  // Senders are bound to their login: alice cannot send as bob (nodemailer's envelope sender is the From address unless told otherwise).
  await t.rejects(send('alice', 'alice-secret-1', `bob@${DOMAIN}`, 'usurpation', { from: `bob@${DOMAIN}` }), /5\.7\.1|not owned/i, 'MAIL FROM another local address is refused');
  await t.rejects(send('alice', 'alice-secret-1', `bob@${DOMAIN}`, 'usurpation', { envelope: { from: `bob@${DOMAIN}`, to: `bob@${DOMAIN}` } }), /5\.7\.1|not owned/i, 'an envelope sender of another local address is refused');

  await t.rejects(imap('bob', 'wrong-password'), 'a wrong password is refused');
  await t.rejects(send('alice', 'wrong-password', `bob@${DOMAIN}`, 'x'), 'submission refuses a wrong password');

  const s = await app.inject({ method: 'POST', url: '/api/instances/courriel/accounts/bob/suspend' });
  t.equal(s.json().state, 'suspended');
  await t.rejects(imap('bob', 'bob-secret-22'), 'a suspended account cannot log in');
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/courriel/accounts/bob/resume' })).json().state, 'active');
  t.ok((await subjects('bob', 'bob-secret-22')).length >= 1, 'resumed: login works again');

  const pw = await app.inject({ method: 'PATCH', url: '/api/instances/courriel/accounts/bob', payload: { password: 'bob-new-secret' } });
  t.equal(pw.statusCode, 200, pw.body);
  await t.rejects(imap('bob', 'bob-secret-22'), 'the old password no longer works');
  t.ok((await subjects('bob', 'bob-new-secret')).length >= 1, 'the new one does');

  // Over quota: a 1 MB mailbox refuses a 2 MB message, and Postfix tells the sender.
  t.equal((await app.inject({ method: 'PATCH', url: '/api/instances/courriel/accounts/bob', payload: { quotaMb: 1 } })).json().quotaMb, 1);
  await send('alice', 'alice-secret-1', `bob@${DOMAIN}`, 'Trop gros', { attachments: [{ filename: 'big.bin', content: Buffer.alloc(2 * 1024 * 1024, 7) }] });
  await waitFor('bounce to alice', async () => (await subjects('alice', 'alice-secret-1')).some((x) => /Undelivered|Delivery Status|returned/i.test(x)), 30_000, 500);
  t.notOk((await subjects('bob', 'bob-new-secret')).includes('Trop gros'), 'the over-quota message was not delivered');

  const usage = await app.inject('/api/instances/courriel/accounts/bob?usage=true');
  t.ok(usage.json().usageItems >= 1 && usage.json().usageBytes > 0, `usage read: ${usage.body}`);

  const exp = await app.inject('/api/instances/courriel/accounts/bob/export');
  t.equal(exp.statusCode, 200);
  t.equal(exp.headers['content-type'], 'application/x-tar');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-export-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await pipeline(Readable.from(exp.rawPayload), tar.extract(dir));
  const files = fs.readdirSync(path.join(dir, 'bob', 'cur')).concat(fs.readdirSync(path.join(dir, 'bob', 'new')));
  t.ok(files.some((f) => fs.readFileSync(path.join(dir, 'bob', fs.existsSync(path.join(dir, 'bob', 'cur', f)) ? 'cur' : 'new', f), 'utf8').includes('Subject: =?UTF-8?Q?R=C3=A9union')
    || fs.readFileSync(path.join(dir, 'bob', fs.existsSync(path.join(dir, 'bob', 'cur', f)) ? 'cur' : 'new', f), 'utf8').includes('union de quartier')), 'the export holds the message as a Maildir file');

  const del = await app.inject({ method: 'DELETE', url: '/api/instances/courriel/accounts/bob' });
  t.equal(del.statusCode, 204);
  t.equal((await app.inject({ method: 'DELETE', url: '/api/instances/courriel/accounts/bob' })).statusCode, 204, 'deleting a deleted account is not an error');
  await t.rejects(imap('bob', 'bob-new-secret'), 'a deleted account cannot log in');
  const gone = await execIn(`${config.hosterId}-courriel`, ['test', '-e', `/var/mail/vhosts/${DOMAIN}/bob`]);
  t.not(gone.code, 0, 'the maildir is gone');
  t.equal((await app.inject('/api/instances/courriel/accounts/bob')).statusCode, 404);

  // Changes the service cannot apply now are kept and finished later: intent first, retried on the timer.
  t.equal((await mk('dora', 'dora-secret-333')).statusCode, 201);
  t.equal((await mk('emile', 'emile-secret-44')).statusCode, 201);
  await app.inject({ method: 'POST', url: '/api/instances/courriel/stop?wait=true' });
  const later = await app.inject({ method: 'POST', url: '/api/instances/courriel/accounts/emile/suspend' });
  t.equal(later.statusCode, 202, later.body);
  t.same(later.json().pending, { suspended: true });
  t.equal(later.json().state, 'active', 'not suspended yet');
  const deferred = await app.inject({ method: 'DELETE', url: '/api/instances/courriel/accounts/dora' });
  t.equal(deferred.statusCode, 202, deferred.body);
  t.equal(deferred.json().state, 'deleting');
  t.match(deferred.json().lastError, /not running/);
  await app.inject({ method: 'POST', url: '/api/instances/courriel/start' });
  await waitFor('dora deleted by the retry', async () => (await app.inject('/api/instances/courriel/accounts/dora')).statusCode === 404, 120_000, 500);
  t.equal((await execIn(`${config.hosterId}-courriel`, ['test', '-e', `/var/mail/vhosts/${DOMAIN}/dora`])).code === 0, false, 'dora\'s maildir is gone');
  await waitFor('emile suspended by the retry', async () => (await app.inject('/api/instances/courriel/accounts/emile')).json().state === 'suspended', 60_000, 500);
  t.equal((await app.inject('/api/instances/courriel/accounts/emile')).json().pending, null);
  await t.rejects(imap('emile', 'emile-secret-44'), 'the suspension took effect in the service');

  // Hostile input: refused before anything reaches the container, nothing stored.
  const before = rt.db.$client.prepare('select count(*) n from accounts').get();
  for (const [username, password, quotaMb] of [
    ['a;rm -rf /', 'long-enough-1', 10], ['$(reboot)', 'long-enough-1', 10], ['../../etc', 'long-enough-1', 10], ['x'.repeat(200), 'long-enough-1', 10],
    ['carol', 'short', 10], ['carol', 'p'.repeat(500), 10], ['carol', 'line\nbreak-pass', 10], ['carol', 'long-enough-1', -1], ['carol', 'long-enough-1', 1e12],
  ] as [string, string, number][]) {
    const r = await mk(username, password, quotaMb);
    t.equal(r.statusCode, 400, `${JSON.stringify(username).slice(0, 30)} / ${password.length} chars / ${quotaMb}: ${r.json().message}`);
    t.equal(r.json().code, 'CATTERY_ERR_VALIDATION');
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/instances/courriel/accounts/..%2F..%2Fetc' })).statusCode, 400, 'path traversal in a URL');
  t.same(rt.db.$client.prepare('select count(*) n from accounts').get(), before, 'nothing stored');
});
