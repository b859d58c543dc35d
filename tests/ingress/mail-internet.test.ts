// Mail the rest of the Internet accepts (issue 10), end to end against real parts only. A second, independent mail
// server (Exim, tests/ingress/internet-mta.ts) plays "the rest of the Internet" with its own domain, ailleurs.test;
// both servers resolve through one DNS server (Knot, on the mail instance's network) that serves the zone cattery's
// own API gives for quartier.test, with the mail host's address being the mail container's on that network, and
// ailleurs.test's own zone (MX, SPF, DKIM key, DMARC p=reject). Proved here:
// 1. a resident's message, sent on submission with a certificate installed by tls-install and verified, reaches
//    ailleurs.test over TLS, where Exim's own verifiers say dkim=pass for d=quartier.test and spf=pass, and
//    Mail::DMARC says dmarc=pass under the policy cattery published;
// 2. ailleurs.test's mail to a resident is sent over TLS verified for mail.quartier.test (as an MTA-STS "enforce"
//    sender would), passes cattery's DKIM, SPF and DMARC checks, and lands in the INBOX (read over IMAPS);
// 3. mail claiming From: @quartier.test without quartier.test's signature meets exactly the DMARC policy cattery
//    publishes, both at cattery (from ailleurs.test's server, signed for ailleurs.test only) and at ailleurs.test
//    (from a host SPF does not list);
// 4. a bounce Postfix sends back to ailleurs.test (a message over camille's 1 MB quota) passes DMARC there too.
// The images beside cattery's (Knot, Exim) are built once from the Debian base and kept by the hash of their recipe.
import t from 'tap';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import crypto from 'node:crypto';
import { docker, execIn, HEALTHY_WITHIN_MS, testConfig, testRuntime, waitFor } from '../helpers.js';
import { allocateSubnet } from '../../src/orchestrator/subnets.js';
import { networkName } from '../../src/orchestrator/docker/container-spec.js';
import { getInstance } from '../../src/orchestrator/instances.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { execWithInput } from '../../src/orchestrator/docker/exec.js';
import { pino } from 'pino';
import { dnsBeside, hostIn } from '../services/beside.js';
import { smtpSession } from '../services/smtp-client.js';
import { testCa } from '../services/test-ca.js';
import { startInternetMta } from './internet-mta.js';
import { zoneFile } from './knot.js';

const DOMAIN = 'quartier.test';
const OTHER = 'ailleurs.test';
const SLUG = 'courrier';
const HOST = `mail.${DOMAIN}`;

interface ApiRecord { name: string; type: string; value: string }

/** The Authentication-Results fields written by `authserv`, unfolded, one string each. */
function authResults(raw: string, authserv: string): string[] {
  const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  return [...head.matchAll(/^Authentication-Results:\s*(.*)$/gim)].map((m) => m[1]!.replace(/\s+/g, ' ').trim())
    .filter((v) => v.toLowerCase().startsWith(`${authserv};`));
}
/** A regular expression's text for `s` taken literally. */
const lit = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** `method=result` followed, within the same resinfo, by `property` (comments such as "(2048-bit key; unprotected)"
 * may hold semicolons). */
const resinfo = (method: string, result: string, property: string) => new RegExp(`\\b${method}=${result}\\b(?:[^;(]|\\([^)]*\\))*${property}`);
const header = (raw: string, name: string) => {
  const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  return [...head.matchAll(new RegExp(`^${name}:\\s*(.*)$`, 'gim'))].map((m) => m[1]!.trim());
};

t.test('mail between a cattery mail instance and an independent server, through the DNS cattery generates', async (t) => {
  // The subnet pool is claimed once per test process: the runtime below gets this same one, so the instance's /28,
  // the mail container's address in it (the first after the gateway) and the test's own addresses are known before
  // cattery is configured with its public address.
  const subnet = allocateSubnet(testConfig(t).subnetPool, []);
  const mailIp = hostIn(subnet, 2);
  const dnsIp = hostIn(subnet, 14);
  const otherIp = hostIn(subnet, 13);
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180, domains: [DOMAIN], publicIpv4: mailIp });
  const { app, config } = rt;
  const started = Date.now();
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: SLUG, env: { MAIL_DOMAIN: DOMAIN, MAIL_DNS_RESOLVER: dnsIp } } });
  t.equal(created.statusCode, 202, 'the mail instance is asked for');
  t.equal(getInstance(rt.db, SLUG).config.subnet, subnet, 'the instance got the subnet the test predicted');
  const ports = created.json().ports as Record<string, number>;
  const container = `${config.hosterId}-${SLUG}`;
  const net = networkName(config.hosterId, SLUG);
  const ca = testCa(t);

  await waitFor('mail healthy', async () => (await app.inject(`/api/instances/${SLUG}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  const inspected = await docker.getContainer(container).inspect();
  t.equal(inspected.NetworkSettings.Networks[net]?.IPAddress, mailIp, `the mail container has ${mailIp}, the address cattery publishes`);
  // camille's mailbox holds 1 MB: a larger message taken on port 25 is refused by her mailbox afterwards, and
  // Postfix itself sends the bounce to the rest of the Internet.
  for (const [username, password, quotaMb] of [['alice', 'alice-secret-1', 20], ['camille', 'camille-secret-2', 1]] as const) {
    const r = await app.inject({ method: 'POST', url: `/api/instances/${SLUG}/accounts`, payload: { username, password, quotaMb } });
    t.equal(r.statusCode, 201, `${username}@${DOMAIN} made`);
  }
  // The mail host's certificate, as the front door hands it on (tls-install), from the test's CA.
  const engine = connectEngine(config.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: 60, log: pino({ level: 'silent' }) });
  const leaf = ca.issue([HOST]);
  const installed = await execWithInput(engine, container, ['/usr/local/bin/cattery-mail-admin', 'tls-install'], JSON.stringify({ cert: leaf.cert + ca.pem, key: leaf.key }));
  t.equal(installed.exitCode, 0, `tls-install: ${installed.stderr.trim() || 'ok'}`);

  // What cattery says to publish, from its own API, served as it is.
  const dns = await app.inject(`/api/dns/${DOMAIN}`);
  t.equal(dns.statusCode, 200, `GET /api/dns/${DOMAIN}`);
  const { records, snippet, dkimKnown } = dns.json() as { records: ApiRecord[]; snippet: string; dkimKnown: boolean };
  t.equal(dkimKnown, true, 'the mail instance told cattery its DKIM key');
  t.ok(records.some((r) => r.name === `${HOST}.` && r.type === 'A' && r.value === mailIp), `${HOST} A ${mailIp}`);
  const selector = records.find((r) => r.type === 'TXT' && r.name.endsWith(`._domainkey.${DOMAIN}.`))!.name.split('.')[0]!;
  const dmarcRecord = records.find((r) => r.name === `_dmarc.${DOMAIN}.` && r.type === 'TXT')!.value;
  const policy = /(?:^|;)\s*p=(none|quarantine|reject)\s*(?:;|$)/.exec(dmarcRecord)?.[1];
  t.ok(policy, `cattery publishes a DMARC policy: ${dmarcRecord}`);

  const other = await startInternetMta(t, {
    name: `${config.hosterId}-elsewhere`, network: net, address: otherIp, resolver: dnsIp, label: config.hosterId,
    domain: OTHER, mailboxes: ['bob'], ca,
  });
  await dnsBeside(t, {
    name: `${config.hosterId}-knot`, network: net, address: dnsIp, label: config.hosterId,
    zones: { [DOMAIN]: zoneFile(DOMAIN, snippet), [OTHER]: other.zone },
  });
  await waitFor('the instance resolves through the test DNS', async () => new RegExp(`^${lit(otherIp)}\\s`).test((await execIn(container, ['getent', 'hosts', other.host])).out), 30_000, 500);
  t.pass(`mail instance, DNS and ${other.host} up in ${Date.now() - started} ms`);

  const tlsTo = { ca: ca.pem, servername: HOST };
  // alice reads her mail over IMAPS, the certificate verified against the test's CA for mail.quartier.test: one
  // session for the whole test (a login costs a password hash, seconds on a loaded machine).
  const alice = new ImapFlow({ host: '127.0.0.1', port: ports.imaps!, secure: true, auth: { user: `alice@${DOMAIN}`, pass: 'alice-secret-1' }, logger: false, tls: tlsTo });
  alice.on('error', () => undefined);
  await alice.connect();
  t.teardown(() => alice.logout().catch(() => alice.close()));
  /** The raw messages of alice's `mailbox` whose subject is `subject`. */
  const messages = async (mailbox: string, subject: string) => {
    const box = await alice.mailboxOpen(mailbox).catch(() => undefined);
    if (!box || box.exists === 0) return [];
    const out: string[] = [];
    for await (const m of alice.fetch('1:*', { envelope: true, source: true })) if (m.envelope?.subject === subject && m.source) out.push(m.source.toString());
    return out;
  };
  const at = async (mailbox: string, subject: string) =>
    waitFor(`"${subject}" in alice's ${mailbox}`, async () => (await messages(mailbox, subject))[0], 60_000, 500);
  /** The message `id` (Message-ID) in bob@ailleurs.test's folder. */
  const atOther = (folder: 'INBOX' | 'Junk', id: string) =>
    waitFor(`${id} in bob@${OTHER}'s ${folder}`, async () => (await other.mailbox('bob', folder)).find((m) => header(m, 'Message-ID').includes(id)), 60_000, 1000);
  const explain = async () => `\n--- exim ---\n${(await other.log()).slice(-3000)}\n--- cattery mail ---\n${(await docker.getContainer(container).logs({ stdout: true, stderr: true, tail: 40 })).toString()}`;

  await t.test('a resident writes to the rest of the Internet: DKIM pass for our domain, SPF pass, DMARC pass, over TLS', async (t) => {
    const info = await nodemailer.createTransport({ host: '127.0.0.1', port: ports.submission, secure: false, requireTLS: true, tls: tlsTo, auth: { user: `alice@${DOMAIN}`, pass: 'alice-secret-1' } })
      .sendMail({ from: `Alice <alice@${DOMAIN}>`, to: `bob@${OTHER}`, subject: 'Fête de quartier', text: 'Samedi, place du marché.\n' }) as { messageId: string };
    const got = await atOther('INBOX', info.messageId).catch(async (err: Error) => { throw new Error(`${err.message}${await explain()}`); });
    const ar = authResults(got, other.host);
    t.comment(ar.join('\n'));
    t.ok(ar.some((x) => resinfo('dkim', 'pass', `header\\.d=${lit(DOMAIN)}\\b`).test(x) && resinfo('dkim', 'pass', `header\\.s=${lit(selector)}\\b`).test(x)), `${other.host} verified the DKIM signature: d=${DOMAIN}, s=${selector}, the key cattery published`);
    t.ok(ar.some((x) => resinfo('spf', 'pass', `smtp\\.mailfrom=(?:alice@)?${lit(DOMAIN)}\\b`).test(x)), `SPF pass for ${DOMAIN}: the sending address is the MX that "v=spf1 mx -all" names`);
    t.ok(ar.some((x) => new RegExp(`\\bdmarc=pass \\(p=${policy} dis=none\\) header\\.from=${lit(DOMAIN)}\\b`).test(x)), `DMARC pass under the policy cattery publishes (p=${policy}, strict alignment)`);
    const hop = header(got, 'Received').find((r) => r.includes(`by ${other.host}`)) ?? '';
    t.match(hop, new RegExp(`^from \\[${lit(mailIp)}\\] \\(helo=${lit(HOST)}\\)`), `the hop came from ${HOST} at ${mailIp}: ${hop}`);
    t.match(hop, /\bwith esmtps\s+\(TLS1\.[23]\) tls TLS_/, 'the hop used TLS 1.2 or 1.3');
    t.same(await other.mailbox('bob', 'Junk'), [], 'nothing in Junk');
  });

  await t.test('the rest of the Internet writes to a resident: verified TLS to our MX, DKIM, SPF and DMARC pass, in the INBOX', async (t) => {
    const id = `<${crypto.randomUUID()}@${OTHER}>`;
    const sent = await other.send(`bob@${OTHER}`, `From: Bob <bob@${OTHER}>\nTo: alice@${DOMAIN}\nSubject: Bonjour d'ailleurs\nMessage-ID: ${id}\nDate: ${new Date().toUTCString()}\n\nÀ bientôt.\n`);
    t.equal(sent.code, 0, `exim took the message${sent.err ? `: ${sent.err}` : ''}`);
    const got = await at('INBOX', "Bonjour d'ailleurs").catch(async (err: Error) => { throw new Error(`${err.message}${await explain()}`); });
    const ar = authResults(got, HOST);
    t.comment(ar.join('\n'));
    t.ok(ar.some((x) => resinfo('dkim', 'pass', `header\\.d=${lit(OTHER)}\\b`).test(x)), `OpenDKIM verified ${OTHER}'s signature`);
    t.ok(ar.some((x) => resinfo('spf', 'pass', `smtp\\.mailfrom=${lit(OTHER)}\\b`).test(x)), `SPF pass for ${OTHER}`);
    t.ok(ar.some((x) => new RegExp(`\\bdmarc=pass \\(p=reject dis=none\\) header\\.from=${lit(OTHER)}\\b`).test(x)), 'DMARC pass');
    const hop = header(got, 'Received').find((r) => r.includes(`by ${HOST}`) && r.includes(other.host)) ?? '';
    t.match(hop, /\(using TLSv1\.[23] with cipher /, `the hop used TLS: ${hop}`);
    const log = await other.log();
    t.match(log, new RegExp(`=> alice@${lit(DOMAIN)} R=remote T=remote_smtp H=${lit(HOST)} \\[${lit(mailIp)}\\][^\\n]* X=TLS1\\.[23][^\\n]* CV=yes`),
      `Exim delivered over TLS and verified ${HOST}'s certificate (the one tls-install put there) against the CA`);
    t.same(await messages('Junk', "Bonjour d'ailleurs"), [], 'not in Junk');
  });

  await t.test(`a From: @${DOMAIN} without ${DOMAIN}'s signature meets the DMARC policy cattery publishes`, async (t) => {
    // At cattery: from ailleurs.test's own server, SPF and DKIM valid for ailleurs.test only (a forgery of the
    // header From, the case DMARC exists for, RFC 7489 section 2.1).
    const sent = await other.send(`bob@${OTHER}`, `From: Le bureau <bureau@${DOMAIN}>\nTo: alice@${DOMAIN}\nSubject: Cotisation urgente\nDate: ${new Date().toUTCString()}\nMessage-ID: <${crypto.randomUUID()}@${OTHER}>\n\nPayez ici.\n`);
    t.equal(sent.code, 0, `exim took the message${sent.err ? `: ${sent.err}` : ''}`);
    if (policy === 'reject') {
      await waitFor('refused by cattery', async () => new RegExp(`\\*\\* alice@${lit(DOMAIN)}[^\\n]*550 5\\.7\\.1`).test(await other.log()), 60_000, 1000);
      t.pass('refused 550 5.7.1 (p=reject)');
    } else {
      const folder = policy === 'quarantine' ? 'Junk' : 'INBOX';
      const got = await at(folder, 'Cotisation urgente').catch(async (err: Error) => { throw new Error(`${err.message}${await explain()}`); });
      const ar = authResults(got, HOST);
      t.ok(ar.some((x) => new RegExp(`\\bdmarc=fail \\(p=${policy}\\b[^)]*\\) header\\.from=${lit(DOMAIN)}\\b`).test(x)), `cattery marked it dmarc=fail (p=${policy}): ${ar.join(' | ')}`);
      t.ok(ar.some((x) => resinfo('dkim', 'pass', `header\\.d=${lit(OTHER)}\\b`).test(x)), `although ${OTHER}'s own signature verifies (not aligned with ${DOMAIN})`);
      if (policy === 'quarantine') t.same(await messages('INBOX', 'Cotisation urgente'), [], 'filed in Junk, not in the INBOX');
    }

    // At the rest of the Internet: from a host that "v=spf1 mx -all" does not list (the test, through the
    // network's gateway), unsigned. Exim's SPF says fail, Mail::DMARC applies p= from cattery's record.
    const forgedId = `<${crypto.randomUUID()}@forger.example>`;
    const c = await smtpSession(other.smtpPort);
    try {
      t.match(await c.cmd('EHLO forger.example'), /^250/, 'EHLO');
      t.match(await c.cmd(`MAIL FROM:<bureau@${DOMAIN}>`), /^250/, 'MAIL FROM: an SPF fail alone refuses nothing');
      t.match(await c.cmd(`RCPT TO:<bob@${OTHER}>`), /^250/, 'RCPT TO');
      t.match(await c.cmd('DATA'), /^354/, 'DATA');
      const reply = await c.cmd(`From: Le bureau <bureau@${DOMAIN}>\r\nTo: bob@${OTHER}\r\nSubject: Faux bureau\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: ${forgedId}\r\n\r\nPayez ici.\r\n.`);
      if (policy === 'reject') {
        t.match(reply, /^550 5\.7\.1 DMARC/, `${other.host} refused it (p=reject)`);
      } else {
        t.match(reply, /^250/, `${other.host} took it (p=${policy})`);
        const got = await atOther(policy === 'quarantine' ? 'Junk' : 'INBOX', forgedId);
        const ar = authResults(got, other.host);
        t.ok(ar.some((x) => resinfo('spf', 'fail', `smtp\\.mailfrom=(?:bureau@)?${lit(DOMAIN)}\\b`).test(x)), `SPF fail: the sending host is not ${DOMAIN}'s MX`);
        t.ok(ar.some((x) => new RegExp(`\\bdmarc=fail \\(p=${policy} dis=${policy}\\) header\\.from=${lit(DOMAIN)}\\b`).test(x)), `dmarc=fail, disposition ${policy}: ${ar.join(' | ')}`);
        if (policy === 'quarantine') t.equal((await other.mailbox('bob', 'INBOX')).filter((m) => header(m, 'Message-ID').includes(forgedId)).length, 0, 'in Junk, not in the INBOX');
      }
    } finally { await c.cmd('QUIT').catch(() => undefined); c.close(); }
  });

  await t.test('a bounce cattery sends to the rest of the Internet passes DMARC there, in the INBOX', async (t) => {
    const id = `<${crypto.randomUUID()}@${OTHER}>`;
    const body = `${'Compte rendu du conseil de quartier, annexe. '.repeat(2).trim()}\n`.repeat(16_000);
    const sent = await other.send(`bob@${OTHER}`, `From: Bob <bob@${OTHER}>\nTo: camille@${DOMAIN}\nSubject: Le gros dossier\nMessage-ID: ${id}\nDate: ${new Date().toUTCString()}\n\n${body}`);
    t.equal(sent.code, 0, `exim took the message${sent.err ? `: ${sent.err}` : ''}`);
    const bounced = (m: string) => /^From:.*MAILER-DAEMON/im.test(m) && m.includes(id);
    const found = await waitFor('the bounce in bob\'s INBOX or Junk', async () => {
      for (const folder of ['INBOX', 'Junk'] as const) {
        const m = (await other.mailbox('bob', folder)).find(bounced);
        if (m) return { folder, m };
      }
      return undefined;
    }, 60_000, 1000).catch(async (err: Error) => { throw new Error(`${err.message}${await explain()}`); });
    const from = header(found.m, 'From')[0] ?? '';
    t.match(from, new RegExp(`MAILER-DAEMON@${lit(DOMAIN)}\\b`, 'i'), `the bounce comes from the domain itself: ${from}`);
    const ar = authResults(found.m, other.host);
    t.comment(ar.join('\n'));
    t.ok(ar.some((x) => resinfo('dkim', 'pass', `header\\.d=${lit(DOMAIN)}\\b`).test(x)), `signed for ${DOMAIN}, verified`);
    t.ok(ar.some((x) => new RegExp(`\\bdmarc=pass \\(p=${policy} dis=none\\) header\\.from=${lit(DOMAIN)}\\b`).test(x)), `DMARC pass under p=${policy}, strict alignment: ${ar.join(' | ')}`);
    t.equal(found.folder, 'INBOX', 'in the INBOX');
  });
});
