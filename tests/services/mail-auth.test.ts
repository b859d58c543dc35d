// Mail the rest of the Internet accepts (issue 10), against the real image: every message a resident sends is DKIM
// signed (verified here by mailauth, a verifier of its own, from the records `dkim-show` says to publish), also after
// a rotation; a certificate installed with `tls-install` is served on 465, 993, 587 and 143 and verified against the
// test's own CA, without dropping an open IMAP session, and bad input leaves the old one in place; on port 25, SPF
// and DMARC are checked against a real DNS server (Debian's knot, in a container on the instance's own network).
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import t from 'tap';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { dkimSign, dkimVerify } from 'mailauth';
import { pino } from 'pino';
import { docker, execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';
import { allocateSubnet } from '../../src/orchestrator/subnets.js';
import { networkName } from '../../src/orchestrator/docker/container-spec.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { execWithInput } from '../../src/orchestrator/docker/exec.js';
import { getInstance } from '../../src/orchestrator/instances.js';
import { dnsBeside, hostIn } from './beside.js';
import { smtpSession as smtp } from './smtp-client.js';
import { testCa as makeCa } from './test-ca.js';

const DOMAIN = 'quartier.test';
const SLUG = 'courrier';
const HOST = `mail.${DOMAIN}`;

interface DkimShow { domain: string; keys: { selector: string; publicKey: string; active: boolean }[] }

/** The zones "the rest of the Internet" publishes, as RFC 1035 master files; `signedKey` is the base64 public key
 * that signed.test publishes for its selector s1. */
function zones(signedKey: string): Record<string, string> {
  const head = (z: string) => `$ORIGIN ${z}.\n$TTL 60\n@ SOA ns.${z}. hostmaster.${z}. 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\n`;
  return {
    // Ours: mail only from our MX (SPF), and unauthenticated mail refused (DMARC p=reject).
    [DOMAIN]: `${head(DOMAIN)}@ MX 10 mail\nmail A 192.0.2.25\n@ TXT "v=spf1 mx -all"\n_dmarc TXT "v=DMARC1; p=reject"\n`,
    // A foreign domain that publishes neither SPF nor DMARC: its mail is taken.
    'elsewhere.test': head('elsewhere.test'),
    // One that asks for quarantine of what fails DMARC.
    'quarantine.test': `${head('quarantine.test')}_dmarc TXT "v=DMARC1; p=quarantine"\n`,
    // One that sends from nowhere (SPF -all).
    'strict.test': `${head('strict.test')}@ TXT "v=spf1 -all"\n`,
    // One that signs its mail and asks receivers to refuse the rest: its TXT split in strings of at most 255 octets.
    'signed.test': `${head('signed.test')}_dmarc TXT "v=DMARC1; p=reject"\ns1._domainkey TXT ( ${(`v=DKIM1; k=rsa; p=${signedKey}`.match(/.{1,255}/g) ?? []).map((x) => `"${x}"`).join(' ')} )\n`,
  };
}

// ---- Small clients.
/** The certificate a port serves, verified against `ca` for HOST (never without verification). */
async function servedFingerprint(port: number, kind: 'implicit' | 'smtp' | 'imap', ca: string): Promise<string> {
  const opts: tls.ConnectionOptions = { ca, servername: HOST };
  let secure: tls.TLSSocket;
  if (kind === 'implicit') {
    secure = tls.connect({ host: '127.0.0.1', port, ...opts });
    await new Promise<void>((resolve, reject) => { secure.once('secureConnect', resolve); secure.once('error', reject); });
  } else if (kind === 'smtp') {
    const c = await smtp(port);
    await c.cmd('EHLO client.example');
    secure = await c.starttls(opts);
  } else {
    const plain = net.connect(port, '127.0.0.1');
    let got = '';
    let asked = false;
    await new Promise<void>((resolve, reject) => {
      plain.on('data', (d: Buffer) => {
        got += d.toString();
        if (!asked && /^\* OK.*\r\n/.test(got)) { asked = true; got = ''; plain.write('a STARTTLS\r\n'); }
        if (asked && /^a OK/m.test(got)) resolve();
        if (asked && /^a (NO|BAD)/m.test(got)) reject(new Error(`IMAP STARTTLS: ${got}`));
      });
      plain.once('error', reject);
    });
    plain.removeAllListeners('data');
    plain.on('error', () => undefined);
    secure = tls.connect({ socket: plain, ...opts });
    await new Promise<void>((resolve, reject) => { secure.once('secureConnect', resolve); secure.once('error', reject); });
  }
  // A reset after the handshake (the test hangs up first) must not surface as an uncaught 'error'.
  secure.on('error', () => undefined);
  if (!secure.authorized) throw new Error(`not authorized: ${String(secure.authorizationError)}`);
  const fp = secure.getPeerCertificate().fingerprint256;
  secure.destroy();
  return fp;
}

const fingerprintOf = (pem: string) => new crypto.X509Certificate(pem).fingerprint256;

t.test('mail: DKIM on every message sent, TLS with an installed certificate, SPF and DMARC on port 25', async (t) => {
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180 });
  const { app, config } = rt;
  const engine = connectEngine(config.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: 60, log: pino({ level: 'silent' }) });
  const container = `${config.hosterId}-${SLUG}`;
  const admin = async (args: string[], input = '') => {
    const r = await execWithInput(engine, container, ['/usr/local/bin/cattery-mail-admin', ...args], input);
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr };
  };

  // The instance's network is the first /28 of this runtime's pool: the DNS server takes its last address, given to
  // the instance as MAIL_DNS_RESOLVER when it is created.
  const started = Date.now();
  const subnet = allocateSubnet(config.subnetPool, []);
  const resolver = hostIn(subnet, 14);
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: SLUG, env: { MAIL_DOMAIN: DOMAIN, MAIL_DNS_RESOLVER: resolver } } });
  t.equal(created.statusCode, 202, created.body);
  t.equal(getInstance(rt.db, SLUG).config.subnet, subnet, 'the instance got the subnet the test predicted');
  const ports = created.json().ports as Record<string, number>;
  t.ok(ports.submissions && ports.imaps, `465 and 993 are published too: ${JSON.stringify(ports)}`);

  const signer = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  await dnsBeside(t, {
    name: `${config.hosterId}-knot`, network: networkName(config.hosterId, SLUG), address: resolver, label: config.hosterId,
    zones: zones(signer.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')),
  });

  await waitFor('mail healthy', async () => (await app.inject(`/api/instances/${SLUG}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  await waitFor('the instance resolves through the test DNS', async () => /192\.0\.2\.25/.test((await execIn(container, ['getent', 'hosts', HOST])).out), 30_000, 500);
  t.pass(`mail healthy and resolving through ${resolver} (${Date.now() - started} ms)`);

  const mk = async (username: string, password: string) => {
    const r = await app.inject({ method: 'POST', url: `/api/instances/${SLUG}/accounts`, payload: { username, password, quotaMb: 20 } });
    t.equal(r.statusCode, 201, r.body);
  };
  await mk('alice', 'alice-secret-1');
  await mk('bob', 'bob-secret-22');
  const selfMade = (await execIn(container, ['cat', '/var/lib/cattery-mail/tls/cert.pem'])).out.replace(/^[^-]*/, '');
  let ca = selfMade;
  const tlsTo = () => ({ ca, servername: HOST });
  const imap = async (user: string, pass: string) => {
    const c = new ImapFlow({ host: '127.0.0.1', port: ports.imaps!, secure: true, auth: { user: `${user}@${DOMAIN}`, pass }, logger: false, tls: tlsTo() });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  /** The raw messages of a mailbox, whose subject matches. */
  const messages = async (user: string, pass: string, mailbox: string, subject: string) => {
    const c = await imap(user, pass);
    try {
      const box = await c.mailboxOpen(mailbox).catch(() => undefined);
      if (!box || box.exists === 0) return [];
      const out: string[] = [];
      for await (const m of c.fetch('1:*', { envelope: true, source: true })) if (m.envelope?.subject === subject && m.source) out.push(m.source.toString());
      return out;
    } finally { await c.logout().catch(() => c.close()); }
  };
  const one = (user: string, pass: string, mailbox: string, subject: string) =>
    waitFor(`"${subject}" in ${user}'s ${mailbox}`, async () => (await messages(user, pass, mailbox, subject))[0], 30_000, 500);

  await t.test('DKIM: signed with the active key, verified from the published records, also after a rotation', async (t) => {
    const show = await admin(['dkim-show']);
    t.equal(show.code, 0, show.err);
    const first = JSON.parse(show.out) as DkimShow;
    t.same(Object.keys(first), ['domain', 'keys']);
    t.equal(first.domain, DOMAIN);
    t.equal(first.keys.length, 1, 'one key at first start');
    const k0 = first.keys[0]!;
    t.same(Object.keys(k0), ['selector', 'publicKey', 'active']);
    t.match(k0.selector, /^c\d{8}$/, 'the selector is named by date');
    t.equal(k0.active, true);
    const spki = crypto.createPublicKey({ key: Buffer.from(k0.publicKey, 'base64'), format: 'der', type: 'spki' });
    t.equal(spki.asymmetricKeyDetails?.modulusLength, 2048, 'RSA 2048, base64 DER SubjectPublicKeyInfo');
    const mode = await execIn(container, ['stat', '-c', '%a %U', `/var/lib/cattery-mail/dkim/${DOMAIN}/${k0.selector}.key`]);
    t.equal(mode.out.trim(), '600 opendkim', 'the private key is 0600, owned by opendkim');

    // What the association publishes: every listed key, at <selector>._domainkey.<domain> (RFC 6376 section 3.6.2).
    const published = new Map<string, string>();
    const publish = (s: DkimShow) => { for (const k of s.keys) published.set(`${k.selector}._domainkey.${s.domain}`, `v=DKIM1; k=rsa; p=${k.publicKey}`); };
    publish(first);
    const resolverFn = async (name: string, rrtype: string) => {
      const txt = rrtype === 'TXT' ? published.get(name.toLowerCase()) : undefined;
      if (!txt) throw Object.assign(new Error(`no ${rrtype} for ${name}`), { code: 'ENOTFOUND' });
      // A TXT record is split in strings of at most 255 octets (RFC 1035 section 3.3.14).
      return [txt.match(/.{1,255}/g) ?? []];
    };
    const verify = async (raw: string) => {
      const r = await dkimVerify(raw, { resolver: resolverFn });
      return r.results.map((x) => ({ domain: x.signingDomain, selector: x.selector, result: x.status.result }));
    };

    const send = (subject: string) => nodemailer.createTransport({ host: '127.0.0.1', port: ports.submission, secure: false, requireTLS: true, tls: tlsTo(), auth: { user: `alice@${DOMAIN}`, pass: 'alice-secret-1' } })
      .sendMail({ from: `alice@${DOMAIN}`, to: `bob@${DOMAIN}`, subject, text: 'Bonjour du quartier\nà bientôt' });
    await send('Signé une');
    const m1 = await one('bob', 'bob-secret-22', 'INBOX', 'Signé une');
    t.same(await verify(m1), [{ domain: DOMAIN, selector: k0.selector, result: 'pass' }], 'sent on 587: one signature, d= our domain, active selector, pass');

    // Mail made inside the container (sendmail: cron jobs, scripts) is signed too.
    const local = await execWithInput(engine, container, ['/usr/sbin/sendmail', '-f', `alice@${DOMAIN}`, `bob@${DOMAIN}`],
      `From: alice@${DOMAIN}\nTo: bob@${DOMAIN}\nSubject: Fait sur place\n\nlocal\n`);
    t.equal(local.exitCode, 0, local.stderr);
    t.same(await verify(await one('bob', 'bob-secret-22', 'INBOX', 'Fait sur place')), [{ domain: DOMAIN, selector: k0.selector, result: 'pass' }], 'locally originated mail is signed');

    const rot = await admin(['dkim-rotate']);
    t.equal(rot.code, 0, rot.err);
    const second = JSON.parse(rot.out) as DkimShow;
    t.equal(second.keys.length, 2, 'the new key and the previous one');
    const [k1, old] = second.keys as [DkimShow['keys'][0], DkimShow['keys'][0]];
    t.equal(k1.active, true);
    t.not(k1.selector, k0.selector);
    t.match(k1.selector, /^c\d{8}(-\d+)?$/);
    t.same(old, { ...k0, active: false }, 'the previous key stays listed, inactive, unchanged');
    t.same(JSON.parse((await admin(['dkim-show'])).out), second, 'dkim-show says the same');
    publish(second);

    await send('Signé deux');
    t.same(await verify(await one('bob', 'bob-secret-22', 'INBOX', 'Signé deux')), [{ domain: DOMAIN, selector: k1.selector, result: 'pass' }], 'after the rotation: the new selector, pass');
    t.same(await verify(m1), [{ domain: DOMAIN, selector: k0.selector, result: 'pass' }], 'mail signed before still verifies while the old record stays');

    // A second rotation keeps two keys: the oldest goes.
    const third = JSON.parse((await admin(['dkim-rotate'])).out) as DkimShow;
    t.same(third.keys.map((k) => [k.selector, k.active]), [[third.keys[0]!.selector, true], [k1.selector, false]], 'active and previous only');
  });

  await t.test('a resident sends as themself in the From: header too: another address of the domain is refused, never signed', async (t) => {
    // Over submission, logged in as alice: the header names someone else (the envelope is hers, which Postfix already
    // requires). Refused with 553 before OpenDKIM could sign it; nothing reaches bob.
    const forged = `forged-${crypto.randomBytes(4).toString('hex')}`;
    const asAlice = nodemailer.createTransport({ host: '127.0.0.1', port: ports.submission, secure: false, requireTLS: true, tls: tlsTo(), auth: { user: `alice@${DOMAIN}`, pass: 'alice-secret-1' } });
    const refused = await asAlice.sendMail({ envelope: { from: `alice@${DOMAIN}`, to: [`bob@${DOMAIN}`] }, from: `tresorier@${DOMAIN}`, to: `bob@${DOMAIN}`, subject: forged, text: 'Merci de virer 2000 euros.' })
      .then(() => 'sent', (err: Error & { responseCode?: number }) => `${err.responseCode} ${err.message}`);
    t.match(refused, /^553 .*From: header must be your own address/, 'From: tresorier@ as alice: 553');
    const named = `named-${crypto.randomBytes(4).toString('hex')}`;
    await asAlice.sendMail({ from: { name: 'Alice Dupont, quartier', address: `alice@${DOMAIN}` }, to: `bob@${DOMAIN}`, subject: named, text: 'ok' });
    t.ok(await one('bob', 'bob-secret-22', 'INBOX', named), 'her own address with a display name goes through');
    t.same(await messages('bob', 'bob-secret-22', 'INBOX', forged), [], 'the forged one reached nobody');

    // The whole kind, through the milter's own check (the same function, one run for all): every From: value that
    // names another address anywhere, more than one address, or a name that reads as an address, is refused; the
    // resident's own address alone or after a display name is accepted, whatever the case of its letters.
    const login = `alice@${DOMAIN}`;
    const other = fc.constantFrom(`tresorier@${DOMAIN}`, `bob@${DOMAIN}`, `alice@${DOMAIN}.evil.test`, `xalice@${DOMAIN}`, 'alice@ailleurs.test', `alice@mail.${DOMAIN}`);
    const name = fc.stringMatching(/^[A-Za-zÀ-ÿ .'-]{0,20}$/);
    const caseOf = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
    const own = fc.oneof(
      caseOf(login),
      fc.tuple(name, caseOf(login)).map(([n, a]) => `${n} <${a}>`),
      fc.tuple(name, caseOf(login)).map(([n, a]) => `"${n}, ${n}" <${a}>`),
      fc.tuple(name, caseOf(login)).map(([n, a]) => `=?utf-8?b?${Buffer.from(n).toString('base64')}?= <${a}>`),
      fc.tuple(name, caseOf(login)).map(([n, a]) => `${n}\r\n\t<${a}>`),
    );
    const hostile = fc.oneof(
      other,
      fc.tuple(name, other).map(([n, o]) => `${n} <${o}>`),
      other.map((o) => `"${login}" <${o}>`),
      other.map((o) => `${login} <${o}>`),
      other.map((o) => `"${o}" <${login}>`),
      other.map((o) => `=?utf-8?q?${o.replace('@', '=40')}?= <${login}>`),
      other.map((o) => `${login}, ${o}`),
      other.map((o) => `${o}, ${login}`),
      other.map((o) => `${o} (${login})`),
      other.map((o) => `<${login}> ${o}`),
      other.map((o) => `<${login}>, <${o}>`),
      other.map((o) => `undisclosed:${o};`),
      other.map((o) => `Alice <${login}>\r\n <${o}>`),
      other.map((o) => `Alice <${o}\u0000${login}>`),
    );
    const cases = [...fc.sample(own, 150).map((v) => [v, '1'] as const), ...fc.sample(hostile, 300).map((v) => [v, '0'] as const)];
    const run = await execWithInput(engine, container, ['/usr/local/bin/cattery-from-check', '--check', login], cases.map(([v]) => JSON.stringify(v)).join('\n') + '\n');
    t.equal(run.exitCode, 0, run.stderr);
    const got = run.stdout.toString().trim().split('\n');
    const wrong = cases.filter(([, want], i) => got[i] !== want).map(([v, want]) => `${want === '1' ? 'refused' : 'accepted'}: ${JSON.stringify(v)}`);
    t.same(wrong.slice(0, 10), [], `${cases.length} generated From: values, each judged as expected`);
  });

  await t.test('TLS: an installed certificate is served on every port, an open session survives, bad input is refused', async (t) => {
    const issuer = makeCa(t);
    const testCa = issuer.pem;
    const { cert: leaf, key: leafKey } = issuer.issue([HOST]);
    const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

    // Before: the instance's own certificate everywhere.
    const own = fingerprintOf(selfMade);
    for (const [port, kind] of [[ports.submissions!, 'implicit'], [ports.imaps!, 'implicit'], [ports.submission!, 'smtp'], [ports.imap!, 'imap'], [ports.smtp!, 'smtp']] as const) {
      t.equal(await servedFingerprint(port, kind, selfMade), own, `port ${port} (${kind}) serves the self-made certificate`);
    }
    const before = await imap('alice', 'alice-secret-1');
    t.teardown(() => before.close());
    await before.mailboxOpen('INBOX');
    const smtpBefore = await smtp(ports.submission!);
    t.teardown(() => smtpBefore.close());
    t.match(await smtpBefore.cmd('EHLO client.example'), /^250/);

    const installed = await admin(['tls-install'], JSON.stringify({ cert: leaf + testCa, key: leafKey }));
    t.equal(installed.code, 0, installed.err);
    const res = JSON.parse(installed.out) as { ok: boolean; notAfter: string; sha256: string };
    t.equal(res.ok, true);
    t.equal(res.sha256, fingerprintOf(leaf), 'it says which certificate it installed');
    t.ok(Date.parse(res.notAfter) > Date.now(), `notAfter ${res.notAfter}`);
    const modes = await execIn(container, ['stat', '-c', '%a %U %n', '/var/lib/cattery-mail/tls/key.pem', '/var/lib/cattery-mail/tls/cert.pem', '/var/lib/cattery-mail/tls/chain.pem']);
    t.same(modes.out.trim().split('\n').map((l) => l.split(' ').slice(0, 2).join(' ')), ['600 root', '600 root', '600 root'], 'written 0600, root only');

    const want = fingerprintOf(leaf);
    const everyPort = async (what: string) => {
      for (const [port, kind] of [[ports.submissions!, 'implicit'], [ports.imaps!, 'implicit'], [ports.submission!, 'smtp'], [ports.imap!, 'imap'], [ports.smtp!, 'smtp']] as const) {
        // Postfix's processes from before the reload finish their sessions first: new ones come within seconds.
        const fp = await waitFor(`${what} on ${port}`, async () => { const x = await servedFingerprint(port, kind, testCa); return x === want && x; }, 30_000, 500);
        t.equal(fp, want, `${what}: port ${port} (${kind}) serves the installed certificate, verified against the test CA for ${HOST}`);
      }
    };
    const installedAt = Date.now();
    await everyPort('installed');
    ca = testCa;

    // The floor: nothing below TLS 1.2, even for a client that would accept it.
    for (const port of [ports.submissions!, ports.imaps!]) {
      const old = tls.connect({ host: '127.0.0.1', port, ca: testCa, servername: HOST, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
      old.on('error', () => undefined);
      await t.rejects(new Promise((resolve, reject) => { old.once('secureConnect', resolve); old.once('error', reject); }), `port ${port} refuses TLS 1.1`);
      old.destroy();
    }

    const refused = async (input: string, why: RegExp, what: string) => {
      const r = await admin(['tls-install'], input);
      t.not(r.code, 0, `${what}: refused`);
      t.match(r.err, why, `${what}: ${r.err.trim()}`);
      t.equal(r.out, '', 'nothing on stdout');
    };
    await refused('garbage', /must be JSON/, 'not JSON');
    await refused(JSON.stringify({ cert: leaf }), /must be JSON/, 'no key');
    await refused(JSON.stringify({ cert: 'not a certificate', key: leafKey }), /no PEM certificate/, 'no certificate');
    await refused(JSON.stringify({ cert: leaf, key: otherKey }), /does not match/, 'another key');
    await refused(JSON.stringify({ cert: leaf.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA'), key: leafKey }), /cannot be read|does not match/, 'a damaged certificate');
    await refused(JSON.stringify({ cert: testCa, key: leafKey }), /does not match/, 'the CA with the leaf\'s key');
    await everyPort('after refused input');

    // Sessions opened before the install, still there well after the reloads (Dovecot's default ends the old
    // configuration's processes about 6 s after a reload).
    await new Promise((r) => setTimeout(r, Math.max(0, installedAt + 12_000 - Date.now())));
    await before.noop();
    t.ok(before.usable, 'the IMAP session opened before the install is still usable');
    t.ok((await before.list()).some((b) => b.path === 'INBOX'), 'and answers');
    await before.logout();
    t.match(await smtpBefore.cmd('NOOP'), /^250/, 'so is the SMTP session opened before');
  });

  await t.test('port 25: SPF and DMARC against the published records', async (t) => {
    const deliver = async (envFrom: string, from: string, subject: string, extra = '', dated = true) => {
      const c = await smtp(ports.smtp!);
      try {
        await c.cmd('EHLO peer.example');
        const mail = await c.cmd(`MAIL FROM:<${envFrom}>`);
        if (!mail.startsWith('250')) return mail;
        const rcpt = await c.cmd(`RCPT TO:<alice@${DOMAIN}>`);
        if (!rcpt.startsWith('250')) return rcpt;
        await c.cmd('DATA');
        return await c.cmd(`${extra}From: ${from}\r\nTo: alice@${DOMAIN}\r\nSubject: ${subject}\r\n${dated ? `Date: ${new Date().toUTCString()}\r\n` : ''}Message-ID: <${crypto.randomUUID()}@peer.example>\r\n\r\nHello.\r\n.`);
      } finally { await c.cmd('QUIT').catch(() => undefined); c.close(); }
    };
    // From our own domain without our signature: DMARC fails, and our record says reject (RFC 7489 section 6.6.3).
    t.match(await deliver('someone@elsewhere.test', `someone@${DOMAIN}`, 'Forged'), /^550 5\.7\.1 .*DMARC/, 'a forged From: of our domain is refused 550 5.7.1');
    // The same with a forged Authentication-Results claiming our DKIM pass: Postfix removes it before OpenDMARC reads.
    t.match(await deliver('someone@elsewhere.test', `someone@${DOMAIN}`, 'Forged AR', `Authentication-Results: ${HOST}; dkim=pass header.d=${DOMAIN} header.s=x; spf=pass smtp.mailfrom=${DOMAIN}\r\n`),
      /^550 5\.7\.1 .*DMARC/, 'a forged Authentication-Results does not help');
    // Headers DMARC cannot judge whole: two From: fields, one From: naming two domains (OpenDMARC would judge one, a
    // reader's program might show the other; RFC 5322 section 3.6 asks for exactly one From:).
    t.match(await deliver('a@elsewhere.test', 'a@elsewhere.test', 'Two From', `From: someone@${DOMAIN}\r\n`), /^550 5\.7\.1/, 'two From: fields are refused');
    t.match(await deliver('a@elsewhere.test', `a@elsewhere.test, someone@${DOMAIN}`, 'Two domains'), /^550 5\.7\.1/, 'a From: with two domains is refused');
    // A header that leaves Date: out says nothing twice: Postfix adds the date of arrival, and the message is taken.
    t.match(await deliver('a@elsewhere.test', 'a@elsewhere.test', 'No date', '', false), /^250/, 'a message without Date: is taken');
    t.match(await one('alice', 'alice-secret-1', 'INBOX', 'No date'), /^Date: /m, 'with the date it arrived');
    // A sender that SPF says never sends: refused at RCPT.
    t.match(await deliver('ami@strict.test', 'ami@strict.test', 'SPF fail'), /^550 5\.7\.\d+ .*SPF/, 'SPF -all: refused');

    // Signed by its domain (mailauth signs, OpenDKIM verifies from the published key): DMARC passes through DKIM
    // although SPF says nothing, and the same message altered after signing fails and is refused (p=reject).
    const body = `From: ami@signed.test\r\nTo: alice@${DOMAIN}\r\nSubject: Signed elsewhere\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${crypto.randomUUID()}@signed.test>\r\n\r\nHello.\r\n`;
    const signed = await dkimSign(body, { signatureData: [{ signingDomain: 'signed.test', selector: 's1', privateKey: signer.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() }] } as Parameters<typeof dkimSign>[1]);
    t.same(signed.errors, []);
    t.match(signed.signatures, /^DKIM-Signature: /, 'mailauth signed it');
    const raw25 = async (message: string) => {
      const c = await smtp(ports.smtp!);
      try {
        await c.cmd('EHLO peer.example');
        await c.cmd('MAIL FROM:<ami@signed.test>');
        await c.cmd(`RCPT TO:<alice@${DOMAIN}>`);
        await c.cmd('DATA');
        return await c.cmd(`${message.replace(/\r\n$/, '')}\r\n.`);
      } finally { c.close(); }
    };
    t.match(await raw25(signed.signatures + body), /^250/, 'a message signed by its domain is accepted');
    const inbound = await one('alice', 'alice-secret-1', 'INBOX', 'Signed elsewhere');
    const unfolded = inbound.replace(/\r?\n[ \t]+/g, ' ');
    t.match(unfolded, /^Authentication-Results: mail\.quartier\.test; +dkim=pass [^\r\n]*header\.d=signed\.test/m, 'OpenDKIM verified it: dkim=pass');
    t.match(unfolded, /dmarc=pass \(p=reject dis=none\) header\.from=signed\.test/, 'DMARC pass through the DKIM signature');
    t.match(await raw25(signed.signatures + body.replace('Hello.', 'Hello, changed.')), /^550 5\.7\.1 .*DMARC/, 'altered after signing: refused');

    t.match(await deliver('ami@elsewhere.test', 'ami@elsewhere.test', 'De loin'), /^250/, 'a foreign domain without DMARC: accepted');
    const far = await one('alice', 'alice-secret-1', 'INBOX', 'De loin');
    const ar = [...far.matchAll(/^Authentication-Results:((?:.*)(?:\r?\n[ \t].*)*)/gim)].map((m) => m[1]!.replace(/\s+/g, ' ').trim());
    t.ok(ar.length >= 2 && ar.every((x) => x.startsWith(`${HOST};`)), `only this host's Authentication-Results: ${JSON.stringify(ar)}`);
    t.ok(ar.some((x) => /dmarc=none/.test(x)) && ar.some((x) => /spf=none/.test(x)) && ar.some((x) => /dkim=none/.test(x)), 'dmarc, spf and dkim results recorded');

    t.match(await deliver('ami@quarantine.test', 'ami@quarantine.test', 'En quarantaine'), /^250/, 'p=quarantine: accepted');
    const junk = await one('alice', 'alice-secret-1', 'Junk', 'En quarantaine');
    t.match(junk, /Authentication-Results: mail\.quartier\.test; dmarc=fail \(p=quarantine/, 'marked dmarc=fail');
    t.same(await messages('alice', 'alice-secret-1', 'INBOX', 'En quarantaine'), [], 'and filed in Junk, not INBOX');
    for (const subject of ['Forged', 'Forged AR', 'Two From', 'Two domains', 'SPF fail']) {
      t.same(await messages('alice', 'alice-secret-1', 'INBOX', subject), [], `"${subject}" never arrived`);
    }
  });

  // What the daemons use (256 MB limit in the manifest): the cgroup's own count, and each process's RSS.
  const stats = await docker.getContainer(container).stats({ stream: false }) as { memory_stats: { usage?: number; max_usage?: number; stats?: Record<string, number> } };
  const usage = (stats.memory_stats.usage ?? 0) - (stats.memory_stats.stats?.inactive_file ?? stats.memory_stats.stats?.total_inactive_file ?? 0);
  const rss = await execIn(container, ['sh', '-c', 'for p in /proc/[0-9]*; do [ -r "$p/status" ] && awk -v c="$(cat "$p/comm")" \'/^VmRSS/ { print c, $2 }\' "$p/status"; done']);
  const perName = new Map<string, number>();
  for (const [name, kb] of rss.out.trim().split('\n').map((l) => l.split(' '))) perName.set(name!, (perName.get(name!) ?? 0) + Number(kb));
  const total = [...perName.values()].reduce((a, b) => a + b, 0);
  t.comment(`memory: cgroup ${(usage / 2 ** 20).toFixed(1)} MB now (peak ${((stats.memory_stats.max_usage ?? 0) / 2 ** 20).toFixed(1)} MB, cgroup v1 only, page cache included), RSS sum ${(total / 1024).toFixed(1)} MB: ${[...perName].sort((a, b) => b[1] - a[1]).map(([n, kb]) => `${n} ${(kb / 1024).toFixed(1)}`).join(', ')}`);
  t.ok(usage < 192 * 2 ** 20, 'well within the 256 MB limit');
});
