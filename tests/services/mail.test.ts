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
import fc from 'fast-check';
import { ImapFlow } from 'imapflow';
import { execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';
import { accessText } from '../../src/catalog/offer.js';
import { getInstance } from '../../src/orchestrator/instances.js';
import { allocateSubnet } from '../../src/orchestrator/subnets.js';
import { networkName } from '../../src/orchestrator/docker/container-spec.js';
import { dnsBeside, hostIn } from './beside.js';
import { smtpSession } from './smtp-client.js';

const DOMAIN = 'quartier.test';

t.test('mailboxes: send, read, refuse, suspend, quota, export, delete', async (t) => {
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180 });
  const { app, config } = rt;
  // Every DNS lookup the instance makes (SPF and DMARC of the generated senders' domains on port 25, reverse lookups
  // of clients) is answered on its own network, at once, by a DNS server of the test's own that holds only the root
  // zone: every name is NXDOMAIN. Through Docker's embedded DNS those lookups left the machine, and one slow answer
  // held an RCPT past the client's wait ("503 nested MAIL command" on the next try of the same session).
  const subnet = allocateSubnet(config.subnetPool, []);
  const resolver = hostIn(subnet, 14);
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: DOMAIN, MAIL_DNS_RESOLVER: resolver } } });
  t.equal(created.statusCode, 202, created.body);
  t.equal(getInstance(rt.db, 'courriel').config.subnet, subnet, 'the instance got the subnet the test predicted');
  const ports = created.json().ports as Record<string, number>;
  await dnsBeside(t, { name: `${config.hosterId}-knot`, network: networkName(config.hosterId, 'courriel'), address: resolver, label: config.hosterId, zones: {} });
  await waitFor('mail healthy', async () => (await app.inject('/api/instances/courriel')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);

  // The only trust anchor: the instance's own certificate, read out of its container; names as the cert says.
  const container = `${config.hosterId}-courriel`;
  const ca = (await execIn(container, ['cat', '/var/lib/cattery-mail/tls/cert.pem'])).out.replace(/^[^-]*/, '');
  t.match(ca, /BEGIN CERTIFICATE/, 'the instance made its own certificate');
  const tls = { ca, servername: `mail.${DOMAIN}` };
  const mode = await execIn(container, ['stat', '-c', '%a %U', '/var/lib/cattery-mail/tls/key.pem']);
  t.match(mode.out.trim(), /^600 root$/, 'its key is 0600, root only');
  // One way to sign in: the residents' passwd file (no PAM or system users, which also cost each sign-in 2 s).
  const drivers = (await execIn(container, ['doveconf', '-n'])).out.match(/^\s*driver = \S+/gm)?.map((l) => l.trim()) ?? [];
  t.same(drivers, ['driver = passwd-file', 'driver = passwd-file'], 'Dovecot\'s only passdb and userdb are the passwd file');

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

  // Kind: who may use an envelope sender in our domain (review A, finding 8). For generated senders, every form an
  // address at our domain can take (every resident, other names, case changes, subdomains, a trailing dot, quoted
  // local parts, source routes, percent hacks, address literals) and genuinely foreign ones next to it: a client on
  // port 25 (never logged in: no AUTH there) is refused for all of ours and accepted for foreign senders and for the
  // null sender (bounces from other servers); a resident logged in on submission is accepted only with their own
  // address, never with another one and never with the null sender. Judged at RCPT (Postfix checks senders there);
  // no message is sent, except one null-sender bounce on port 25 that must reach its mailbox.
  const residents = ((await app.inject('/api/instances/courriel/accounts')).json() as { username: string; state: string }[])
    .filter((x) => x.state === 'active').map((x) => x.username);
  t.same([...residents].sort(), ['alice', 'bob'], 'the residents at this point');
  const SUB_PASS: Record<string, string> = { alice: 'alice-secret-1', bob: 'bob-secret-22' };
  const smtp = async (port: number, login?: string) => {
    // 20 s a reply: every lookup the instance makes is answered on its own network (above), in milliseconds.
    const c = await smtpSession(port, { replyTimeoutMs: 20_000 });
    await c.cmd('EHLO peer.example');
    if (login !== undefined) {
      await c.starttls(tls);
      await c.cmd('EHLO client.example');
      const auth = await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${login}@${DOMAIN}\0${SUB_PASS[login]}`).toString('base64')}`);
      if (!auth.startsWith('235')) throw new Error(`AUTH as ${login}: ${auth}`);
    }
    let errors = 0;
    return {
      // The sender is taken at MAIL and judged at RCPT: the reply that decides, then the transaction is reset.
      try: async (sender: string, rcpt: string) => {
        let r = await c.cmd(`MAIL FROM:<${sender}>`);
        if (r.startsWith('250')) { r = await c.cmd(`RCPT TO:<${rcpt}>`); await c.cmd('RSET'); }
        if (!r.startsWith('250')) errors++;
        return r;
      },
      cmd: c.cmd,
      // Postfix slows a session down after 10 errors and drops it after 20: a new one is opened before that, and
      // instead of one whose reply did not come (never reused: a late reply would answer the next command).
      get worn() { return errors >= 8 || c.broken; },
      close: c.close,
    };
  };

  const swapCase = (x: string) => fc.array(fc.boolean(), { minLength: x.length, maxLength: x.length })
    .map((up) => [...x].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
  const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/);
  const tld = fc.stringMatching(/^[a-z]{2,6}$/);
  const foreignDomain = fc.oneof(
    fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), tld).map(([ls, x]) => [...ls, x].join('.')),
    // Near misses: our name inside a foreign one, as a prefix, glued to another label, with a dash.
    fc.constantFrom(`${DOMAIN}.other.example`, `x${DOMAIN}`, `other${DOMAIN}`, `${DOMAIN.replace('.', '-')}.example`, `${DOMAIN}x`, `xn--${DOMAIN}`),
  ).filter((d) => d !== DOMAIN && !d.endsWith(`.${DOMAIN}`));
  const ourDomain = fc.oneof(fc.constant(DOMAIN), fc.constant(`mail.${DOMAIN}`), fc.tuple(fc.array(label, { minLength: 1, maxLength: 2 })).map(([ls]) => `${ls.join('.')}.${DOMAIN}`));
  const literal = fc.oneof(fc.constant('[127.0.0.1]'), fc.nat(255).map((n) => `[192.0.2.${n}]`), fc.constant('[IPv6:::1]'));
  // A domain as a client may write it: any case, sometimes with the root's trailing dot.
  const written = (d: fc.Arbitrary<string>) => fc.tuple(d.chain(swapCase), fc.boolean()).map(([x, dot]) => (dot ? `${x}.` : x));
  const localName = fc.oneof(fc.constantFrom(...residents), fc.stringMatching(/^[a-z][a-z0-9]{0,6}(?:[._-][a-z0-9]{1,6})?$/), fc.constantFrom('postmaster', 'root', 'mailer-daemon'));
  const localPart = fc.oneof(
    { weight: 3, arbitrary: localName.chain(swapCase) },
    { weight: 1, arbitrary: localName.map((x) => `"${x}"`) },
    { weight: 1, arbitrary: fc.tuple(localName, fc.constantFrom(' x', '@other.example', `@${DOMAIN}`, '.', '..x')).map(([x, y]) => `"${x}${y}"`) },
  );
  // What Postfix makes of a sender, as far as these generators go: a source route is dropped, and for one of this
  // server's own destinations (here [127.0.0.1]) a quoted local part holding "@" or a percent hack names the real
  // address. Ours: at our domain or a subdomain, or at an address literal (one of them is this server).
  const resolveAddr = (addr: string): { local: string; dom: string } => {
    let a = addr.replace(/^@[^:]*:/, '');
    for (;;) {
      const at = a.lastIndexOf('@');
      const local = a.slice(0, at).replace(/^"([^"\\]*)"$/, '$1');
      const dom = a.slice(at + 1).toLowerCase().replace(/\.$/, '');
      if (dom === '[127.0.0.1]' && /[@%]/.test(local)) { a = local.includes('@') ? local : local.replace(/%(?=[^%]*$)/, '@'); continue; }
      return { local, dom };
    }
  };
  const ours = (addr: string) => { const { dom } = resolveAddr(addr); return dom === DOMAIN || dom.endsWith(`.${DOMAIN}`) || dom.startsWith('['); };
  const anyDomain = fc.oneof(written(ourDomain), written(foreignDomain), literal);
  const senderArb: fc.Arbitrary<string> = fc.oneof(
    fc.tuple(localPart, anyDomain).map(([l, d]) => `${l}@${d}`),
    // A source route is ignored: the address after it decides.
    fc.tuple(written(fc.oneof(ourDomain, foreignDomain)), localPart, anyDomain).map(([route, l, d]) => `@${route}:${l}@${d}`),
    // The percent hack: x%a@b is at b (Postfix applies it only when b is one of its own destinations).
    fc.tuple(localName, written(fc.oneof(ourDomain, foreignDomain)), anyDomain).map(([l, a, d]) => `${l}%${a}@${d}`),
  );
  const fixed25: [string, boolean][] = [
    ...residents.map((r): [string, boolean] => [`${r}@${DOMAIN}`, true]),
    [`Alice@${DOMAIN.toUpperCase()}.`, true], [`"alice"@${DOMAIN}`, true], [`@relay.example:alice@${DOMAIN}`, true],
    [`alice%other.example@${DOMAIN}`, true], [`alice@mail.${DOMAIN}`, true], ['alice@[127.0.0.1]', true],
    [`"alice@${DOMAIN}"@[127.0.0.1]`, true], [`alice%${DOMAIN}@[127.0.0.1]`, true],
    [`alice%${DOMAIN}@other.example`, false], [`"alice@${DOMAIN}"@other.example`, false], ['ami@other.example', false],
    [`ami@${DOMAIN}.other.example`, false],
  ];
  for (const [addr, expected] of fixed25) t.equal(ours(addr), expected, `the test's own judgement of <${addr}>`);
  // MAIL_SENDER_RUNS raises the number of generated senders (port 25; a quarter of it per resident on submission).
  const RUNS = Number(process.env.MAIL_SENDER_RUNS ?? 160);
  const started25 = Date.now();
  // One session for many senders (RSET between them), a new one once it is worn.
  const sessions = (port: number, login?: string) => {
    let c: Awaited<ReturnType<typeof smtp>> | undefined;
    return {
      try: async (sender: string, rcpt: string) => {
        if (c?.worn) { c.close(); c = undefined; }
        c ??= await smtp(port, login);
        return c.try(sender, rcpt);
      },
      close: () => c?.close(),
    };
  };
  const smtp25 = sessions(ports.smtp!);
  t.teardown(() => smtp25.close());
  const check25 = async (addr: string) => {
    const r = await smtp25.try(addr, `alice@${DOMAIN}`);
    if (ours(addr) && r.startsWith('250')) throw new Error(`port 25 accepted the sender <${addr}> (ours): ${r}`);
    if (!ours(addr) && !r.startsWith('250')) throw new Error(`port 25 refused the foreign sender <${addr}>: ${r}`);
    if (ours(addr) && !/^5\d\d /.test(r)) throw new Error(`port 25 did not refuse <${addr}> for good: ${r}`);
  };
  for (const [addr] of fixed25) await check25(addr);
  await fc.assert(fc.asyncProperty(senderArb, check25), { numRuns: RUNS });
  smtp25.close();
  t.pass(`port 25: ${fixed25.length} fixed and ${RUNS} generated senders, ours refused and foreign accepted (${Date.now() - started25} ms)`);

  // The null sender on port 25: bounces from other servers are taken, and delivered.
  const bounce = await smtp(ports.smtp!);
  try {
    t.match(await bounce.cmd('MAIL FROM:<>'), /^250/);
    t.match(await bounce.cmd(`RCPT TO:<alice@${DOMAIN}>`), /^250/, 'port 25 accepts the null sender');
    t.match(await bounce.cmd('DATA'), /^354/);
    t.match(await bounce.cmd(`From: MAILER-DAEMON@other.example\r\nTo: alice@${DOMAIN}\r\nSubject: From afar (null-sender-check)\r\n\r\nA report from another server.\r\n.`), /^250/, 'a bounce is queued');
  } finally { bounce.close(); }
  await waitFor('the bounce delivered', async () => (await execIn(container, ['grep', '-rlq', 'null-sender-check', `/var/mail/vhosts/${DOMAIN}/alice`])).code === 0, 30_000, 500);
  t.pass('a bounce from another server (null sender) reaches the mailbox over port 25');

  // Submission: each resident, logged in, with their own address only. Other spellings of it (case, a trailing dot,
  // a quoted plain local part, a source route, what Postfix resolves to it as above) may be taken; nothing else is.
  const canonical = (addr: string) => { const { local, dom } = resolveAddr(addr); return `${local}@${dom}`.toLowerCase(); };
  const started587 = Date.now();
  for (const who of residents) {
    const own = `${who}@${DOMAIN}`;
    const c = sessions(ports.submission!, who);
    const check587 = async (addr: string) => {
      const r = await c.try(addr, `${who === 'alice' ? 'bob' : 'alice'}@${DOMAIN}`);
      if (r.startsWith('250') && (addr === '' || canonical(addr) !== own)) throw new Error(`submission as ${who} accepted the sender <${addr}>: ${r}`);
      if (!r.startsWith('250') && !/^5\d\d /.test(r)) throw new Error(`submission as ${who}: <${addr}> neither accepted nor refused: ${r}`);
      return r;
    };
    try {
      t.match(await check587(own), /^250/, `${who} sends as ${own}`);
      t.match(await check587(''), /^5\d\d .*null sender/, `${who} cannot use the null sender`);
      for (const other of residents.filter((x) => x !== who)) t.match(await check587(`${other}@${DOMAIN}`), /^553/, `${who} cannot send as ${other}`);
      await fc.assert(fc.asyncProperty(fc.oneof(senderArb, fc.constant(''), written(fc.constant(DOMAIN)).chain((d) => swapCase(who).map((l) => `${l}@${d}`))), async (addr) => { await check587(addr); }), { numRuns: Math.ceil(RUNS / 4) });
    } finally { c.close(); }
  }
  t.pass(`submission: each resident only as their own address, never <> (${Date.now() - started587} ms)`);

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

  // The whole kind: every change to an account is seen by the very next login, while another resident keeps signing
  // in. Dovecot looks at its passwd file at most once a second; alice's logins keep that look fresh, so a change
  // answered within the second of an earlier look used to leave the old password (or a suspended account) working.
  const signIn = async (user: string, pass: string) => { const c = await imap(user, pass); await c.logout().catch(() => undefined); };
  let churn = true;
  let churned = 0;
  const churning = (async () => { while (churn) { await signIn('alice', 'alice-secret-1').then(() => { churned++; }, () => undefined); } })();
  let current = 'bob-new-secret';
  let stale = 0;
  const ROUNDS = 3;
  for (let i = 0; i < ROUNDS; i++) {
    const next = `bob-round-${i}-${Math.random().toString(36).slice(2, 8)}`;
    t.equal((await app.inject({ method: 'PATCH', url: '/api/instances/courriel/accounts/bob', payload: { password: next } })).statusCode, 200);
    if (await signIn('bob', current).then(() => true, () => false)) stale++;
    if (!(await signIn('bob', next).then(() => true, () => false))) stale++;
    t.equal((await app.inject({ method: 'POST', url: '/api/instances/courriel/accounts/bob/suspend' })).json().state, 'suspended');
    if (await signIn('bob', next).then(() => true, () => false)) stale++;
    t.equal((await app.inject({ method: 'POST', url: '/api/instances/courriel/accounts/bob/resume' })).json().state, 'active');
    if (!(await signIn('bob', next).then(() => true, () => false))) stale++;
    current = next;
  }
  churn = false;
  await churning;
  t.ok(churned > ROUNDS * 3, `alice signed in ${churned} times meanwhile`);
  t.equal(stale, 0, `${ROUNDS * 3} changes under steady logins: each seen by the very next login`);
  t.equal((await app.inject({ method: 'PATCH', url: '/api/instances/courriel/accounts/bob', payload: { password: 'bob-new-secret' } })).statusCode, 200);

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
