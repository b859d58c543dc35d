// The mail service's `forward` operation (a resident who moved to another hoster, issue 14), against the real image:
// generated hostile terms (address, date, message) are refused, by cattery and by the service itself, with a clear
// error and nothing changed; a generated message full of Sieve syntax stays one string of the vacation reply, and the
// compiled script holds one vacation and one redirect to the given address, nothing else; then a real forward: the
// old sign-in refused, its data gone, mail to the old address delivered to the new one, the sender answered once, the
// neighbours whose names share a prefix untouched; delete (the end of the period) ends it.
import fc from 'fast-check';
import t from 'tap';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { pino } from 'pino';
import { checkForward, forwardAccount, getAccount } from '../../src/accounts/accounts.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { execWithInput } from '../../src/orchestrator/docker/exec.js';
import { allocateSubnet } from '../../src/orchestrator/subnets.js';
import { networkName } from '../../src/orchestrator/docker/container-spec.js';
import { docker, execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';
import { dnsBeside, hostIn } from './beside.js';
import { smtpSession } from './smtp-client.js';

const DOMAIN = 'quartier.test';
const SLUG = 'courriel';
const SEED = Number(process.env.FORWARD_SEED ?? Date.now() % 2 ** 31);
const inDays = (n: number) => new Date(Date.now() + n * 86_400_000);
const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

// ---- Generated hostile terms: each one alone makes the forward wrong, the rest being valid.
const INJECT = ['\n', '\r', '\r\n', '\0', '"', '\\', ';', ' ', '$', '`', '(', ')', '<', '>', ',', '{', '}', '#', '\t', '\u2028', '\u0085', 'é', '*', '/', ':'];
const local = fc.stringMatching(/^[a-z][a-z0-9._+-]{0,10}[a-z0-9]$/).filter((s) => !s.includes('..'));
const badTo = fc.oneof(
  fc.tuple(local, fc.constantFrom(...INJECT), fc.constantFrom('', 'x', '\nBcc: evil@elsewhere.test', '";\ndiscard;#'))
    .map(([l, c, tail]) => `${l}${c}${tail}@beville.test`),
  fc.tuple(local, fc.constantFrom(...INJECT)).map(([l, c]) => `${l}@bev${c}ille.test`),
  fc.constantFrom('', '@beville.test', 'alice@', 'alice', 'alice@@beville.test', 'a@b@beville.test', '.alice@beville.test',
    'alice.@beville.test', 'al..ice@beville.test', 'alice@Beville.test', 'alice@beville', 'alice@.beville.test', 'alice@beville..test',
    'alice@-beville.test', 'alice@beville.test.', `${'a'.repeat(65)}@beville.test`, `alice@${'b'.repeat(250)}.test`,
    'alice@beville.test\n', ' alice@beville.test', 'alice@[127.0.0.1]', '"a b"@beville.test'),
  fc.string({ maxLength: 40 }).filter((s) => !/^[a-z0-9._+-]+@[a-z0-9.-]+$/.test(s)),
);
const badUntil = fc.oneof(
  fc.integer({ min: 1, max: 5000 }).map((n) => iso(inDays(-n / 10))),
  fc.integer({ min: 367, max: 100_000 }).map((n) => iso(inDays(n))),
  fc.constantFrom('', 'tomorrow', '2027-13-01T00:00:00Z', '2027-02-30T25:00:00Z', '2027-01-01', '2027-01-01T00:00:00',
    '2027-01-01T00:00:00+02:00', '@1800000000', '2027-01-01T00:00:00Z\n', '$(date)', '2027-01-01T00:00:00Z;id'),
  fc.string({ maxLength: 30 }),
);
const FORBIDDEN = ['\0', '\u0001', '\u0007', '\b', '\t', '\r', '\u000b', '\u000c', '\u001b', '\u007f', '\u0085', '\u009b', '\u00ad', '\u200b',
  '\u200e', '\u200f', '\u2028', '\u2029', '\u202a', '\u202e', '\u2066', '\u2069', '\ufeff', '\ufffd', '\ud800'];
const badMessage = fc.oneof(
  fc.tuple(fc.string({ maxLength: 30 }), fc.constantFrom(...FORBIDDEN), fc.string({ maxLength: 30 })).map(([a, c, b]) => `${a}${c}${b}`),
  fc.integer({ min: 2001, max: 4000 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 901, max: 1500 }).map((n) => 'y'.repeat(n)),
  fc.integer({ min: 301, max: 600 }).map((n) => '€'.repeat(n)),
  fc.integer({ min: 61, max: 120 }).map((n) => 'z\n'.repeat(n)),
  fc.constantFrom('', ' ', '\n', ' \n \n'),
);
type Terms = { to: unknown; until: unknown; message: unknown };
const hostile: fc.Arbitrary<{ terms: Terms; what: string }> = fc.oneof(
  badTo.map((to) => ({ terms: { to, until: iso(inDays(30)), message: 'Nouvelle adresse' }, what: `to ${JSON.stringify(to)}` })),
  badUntil.map((until) => ({ terms: { to: 'dupont@beville.test', until, message: 'Nouvelle adresse' }, what: `until ${JSON.stringify(until)}` })),
  badMessage.map((message) => ({ terms: { to: 'dupont@beville.test', until: iso(inDays(30)), message }, what: `message ${JSON.stringify(message).slice(0, 60)}` })),
  fc.constantFrom<Terms>({ to: 42, until: iso(inDays(30)), message: 'x' }, { to: ['a@b.test'], until: iso(inDays(30)), message: 'x' },
    { to: 'dupont@beville.test', until: 1_900_000_000, message: 'x' }, { to: 'dupont@beville.test', until: iso(inDays(30)), message: ['x'] },
    { to: 'dupont@beville.test', until: iso(inDays(30)), message: { text: 'x' } }, { to: null, until: null, message: null })
    .map((terms) => ({ terms, what: `types ${JSON.stringify(terms)}` })),
);
/** Messages a Sieve parser would take for code if they were not escaped: every one is valid plain text. */
const sieveish = fc.array(fc.oneof(
  fc.constantFrom('"', '\\', '\\"', '";', '"; discard; #', '";\nredirect "evil@elsewhere.test";\n#', '${hex:41}', '${x}', 'text:', '\n.\n',
    '\n.', '/*', '*/', '#', '}', '{', 'é', '€', '😀', ' ', '\n', 'vacation', 'stop;', 'keep;', 'require ["fileinto"];', '\\\\', '\\n'),
  fc.stringMatching(/^[a-zA-Z0-9 .,'!?-]{1,12}$/),
), { minLength: 1, maxLength: 30 }).map((xs) => xs.join('')).filter((m) => /[^ \n]/.test(m) && m.length <= 2000 && !m.split('\n').some((l) => Buffer.byteLength(l) > 900) && m.split('\n').length <= 60);

t.test('mail forward: hostile terms refused, no Sieve injection, mail forwarded and answered once, ended by delete', async (t) => {
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180 });
  const { app, config } = rt;
  const subnet = allocateSubnet(config.subnetPool, []);
  const resolver = hostIn(subnet, 14);
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: SLUG, env: { MAIL_DOMAIN: DOMAIN, MAIL_DNS_RESOLVER: resolver } } });
  t.equal(created.statusCode, 202, created.body);
  const ports = created.json().ports as Record<string, number>;
  // Every lookup the instance makes is answered at once on its own network (NXDOMAIN): nothing leaves the machine.
  await dnsBeside(t, { name: `${config.hosterId}-knot`, network: networkName(config.hosterId, SLUG), address: resolver, label: config.hosterId, zones: {} });
  await waitFor('mail healthy', async () => (await app.inject(`/api/instances/${SLUG}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  const container = `${config.hosterId}-${SLUG}`;
  const ca = (await execIn(container, ['cat', '/var/lib/cattery-mail/tls/cert.pem'])).out.replace(/^[^-]*/, '');
  const tls = { ca, servername: `mail.${DOMAIN}` };
  const engine = connectEngine(config.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: 60, log: pino({ level: 'silent' }) });
  const op = async (name: string, input: unknown) => {
    const r = await execWithInput(engine, container, ['/usr/local/bin/cattery-account', name], JSON.stringify(input));
    return { code: r.exitCode, out: JSON.parse(r.stdout.toString() || '{}') as { ok?: boolean; error?: string } };
  };

  // dupont moves away; his neighbours by name stay; carol writes to him; keeper is where his mail goes here.
  const PASS: Record<string, string> = { dupont: 'dupont-secret-1', 'marie.dupont': 'marie-secret-1', 'dupont.m': 'dupontm-secret', dupon: 'dupon-secret-1', carol: 'carol-secret-1', keeper: 'keeper-secret-1', cible: 'cible-secret-1' };
  for (const [u, p] of Object.entries(PASS)) {
    const r = await app.inject({ method: 'POST', url: `/api/instances/${SLUG}/accounts`, payload: { username: u, password: p, quotaMb: 20 } });
    t.equal(r.statusCode, 201, r.body);
  }
  const imap = async (user: string) => {
    const c = new ImapFlow({ host: '127.0.0.1', port: ports.imap!, secure: false, auth: { user: `${user}@${DOMAIN}`, pass: PASS[user]! }, logger: false, doSTARTTLS: true, tls });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  /** Subjects and bodies in a mailbox, or null when the sign-in is refused. */
  const inbox = async (user: string): Promise<{ subject: string; from: string; text: string; autoSubmitted: string }[] | null> => {
    let c: ImapFlow;
    try { c = await imap(user); } catch { return null; }
    try {
      const box = await c.mailboxOpen('INBOX');
      const out: { subject: string; from: string; text: string; autoSubmitted: string }[] = [];
      if (box.exists === 0) return out;
      for await (const m of c.fetch('1:*', { envelope: true, source: true })) {
        const src = m.source?.toString('utf8') ?? '';
        out.push({ subject: m.envelope?.subject ?? '', from: m.envelope?.from?.[0]?.address ?? '', text: src, autoSubmitted: /^Auto-Submitted:\s*(\S+)/mi.exec(src)?.[1] ?? '' });
      }
      return out;
    } finally { await c.logout().catch(() => undefined); }
  };
  /** One message to `to` over port 25, as another server delivers it. */
  const deliver = async (from: string, to: string, subject: string) => {
    const s = await smtpSession(ports.smtp!);
    try {
      for (const [line, want] of [['EHLO peer.test', '250'], [`MAIL FROM:<${from}>`, '250'], [`RCPT TO:<${to}>`, '250'], ['DATA', '354'],
        [`From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@peer.test>\r\n\r\n${subject}\r\n.`, '250']] as const) {
        const r = await s.cmd(line);
        if (!r.startsWith(want)) return r;
      }
      return 'sent';
    } finally { s.close(); }
  };
  for (const u of ['dupont', 'marie.dupont', 'dupont.m', 'dupon']) t.equal(await deliver('voisin@peer.test', `${u}@${DOMAIN}`, `avant-${u.replace(/\./g, '-')}`), 'sent');
  await waitFor('the first messages delivered', async () => (await execIn(container, ['sh', '-c', `ls /var/mail/vhosts/${DOMAIN}/*/new | grep -c ,S=`])).out.trim() === '4', 30_000, 200);

  // ---- Hostile terms: cattery refuses them first; the service, asked directly, refuses them too; nothing changes.
  let n = 0;
  const property = async (name: string, run: () => Promise<void>) => {
    try { await run(); } catch (err) { t.fail(`${name}: ${(err as Error).message}`); }
  };
  await property('hostile terms', () => fc.assert(fc.asyncProperty(hostile, async ({ terms, what }) => {
    n++;
    // Cattery takes a Date (it writes the text itself): an until whose text is only badly written is the service's
    // to refuse; one that is no date or out of range is refused by both.
    const until = typeof terms.until === 'string' ? new Date(terms.until) : (terms.until as Date);
    const dateOnly = what.startsWith('until') && until instanceof Date && until.getTime() > Date.now() + 60_000 && until.getTime() < inDays(366).getTime();
    if (!dateOnly) {
      let code: unknown;
      try { checkForward({ to: terms.to as string, until, message: terms.message as string }); } catch (err) { code = (err as { code?: unknown }).code; }
      if (code !== 'CATTERY_ERR_VALIDATION') throw new Error(`cattery did not refuse ${what}`);
    }
    const r = await op('forward', { username: 'dupont', ...terms });
    if (r.code === 0 || r.out.ok !== false || typeof r.out.error !== 'string' || !/^(to|until|message|input)[: ]/.test(r.out.error)) {
      throw new Error(`the service did not refuse ${what} clearly: exit ${r.code}, ${JSON.stringify(r.out)}`);
    }
  }), { seed: SEED, numRuns: 30, endOnFailure: true, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: true }));
  t.pass(`${n} generated hostile terms refused by cattery and by the service (seed ${SEED})`);
  t.match((await op('forward', { username: 'dupont', to: `Dupont@${DOMAIN}`, until: iso(inDays(30)), message: 'x' })).out.error, /own address/, 'a forward to the account itself (a loop) is refused');
  t.match((await op('forward', { username: 'nobody', to: 'nobody@beville.test', until: iso(inDays(30)), message: 'x' })).out.error, /no such account/, 'so is one of an account that does not exist');
  t.equal((await execIn(container, ['sh', '-c', 'ls -A /var/lib/cattery-mail/forward 2>/dev/null | wc -l'])).out.trim(), '0', 'no forward was written');
  const still = await inbox('dupont');
  t.same(still?.map((m) => m.subject), ['avant-dupont'], 'dupont still signs in and keeps his message after every refusal');
  await t.rejects(forwardAccount(rt.accounts, SLUG, 'dupont', { to: 'dupont@beville.test', until: inDays(400), message: 'x' }, 'test'),
    { code: 'CATTERY_ERR_VALIDATION' }, 'a period past 366 days is refused by cattery');

  // ---- Sieve injection: generated messages full of Sieve syntax, each accepted and compiled into exactly one vacation
  // whose reason is the whole message (Pigeonhole stores line ends as CRLF and sieve-dump shows them as "??"), one
  // redirect to the given address, and nothing else.
  // sieve-dump shows a long string's first 80 octets or so, then "...": the length above counts every octet.
  const shownAs = (shown: string, full: string) => shown === full || (shown.endsWith('...') && full.startsWith(shown.slice(0, -3).replace(/\ufffd+$/, '').slice(0, -1)));
  let m = 0;
  await property('Sieve syntax', () => fc.assert(fc.asyncProperty(sieveish, async (message) => {
    m++;
    const r = await op('forward', { username: 'cible', to: 'cible@beville.test', until: iso(inDays(30)), message });
    if (r.code !== 0 || r.out.ok !== true) throw new Error(`a plain message was refused: ${JSON.stringify(message)} → ${JSON.stringify(r.out)}`);
    const dump = (await execIn(container, ['sieve-dump', `/var/lib/cattery-mail/forward/cible@${DOMAIN}.svbin`])).out;
    const ops = dump.split('\n').map((l) => /^[0-9a-f]{8}: +\d+: (\S.*)$/.exec(l)?.[1]?.trim()).filter((x) => x !== undefined);
    // A long string is shown cut, '...' in place of its closing quote.
    const reason = /^[0-9a-f]{8}:\s+reason: STR\[(\d+)\] "(.*)$/m.exec(dump);
    if (reason && !reason[2]!.endsWith('...')) reason[2] = reason[2]!.replace(/"$/, '');
    const want = message.replace(/\n/g, '\r\n');
    if (JSON.stringify(ops) !== JSON.stringify(['VACATION', 'REDIRECT', '[End of code]'])
      || !reason || Number(reason[1]) !== Buffer.byteLength(want) || !shownAs(reason[2]!, message.replace(/\n/g, '??'))
      || !dump.includes('address: STR[18] "cible@beville.test"')) {
      throw new Error(`message ${JSON.stringify(message)} changed the script: ${JSON.stringify(ops)} ${JSON.stringify(reason?.slice(1))} want ${Buffer.byteLength(want)}`);
    }
  }), { seed: SEED, numRuns: 12, endOnFailure: true, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: true }));
  t.pass(`${m} generated messages full of Sieve syntax stayed one string each`);
  t.equal((await op('delete', { username: 'cible' })).code, 0);

  // ---- A real forward, as a move's confirmation asks for it.
  const message = "dupont@quartier.test a déménagé. Nouvelle adresse :\nkeeper@quartier.test\n\nHe moved. New address:\nkeeper@quartier.test";
  const acc = await forwardAccount(rt.accounts, SLUG, 'dupont', { to: `keeper@${DOMAIN}`, until: inDays(90), message }, 'test');
  t.equal(acc.state, 'forwarding', 'the account is now a forward');
  t.equal(await inbox('dupont'), null, 'dupont can no longer sign in');
  t.equal((await execIn(container, ['sh', '-c', `ls -A /var/mail/vhosts/${DOMAIN}/dupont/new 2>/dev/null | wc -l`])).out.trim(), '0', 'his messages are gone from here');
  for (const u of ['marie.dupont', 'dupont.m', 'dupon']) {
    t.same((await inbox(u))?.map((x) => x.subject), [`avant-${u.replace(/\./g, '-')}`], `${u} (a name sharing a prefix) signs in and keeps its message`);
  }
  // Nothing else brings the sign-in back: cattery refuses, and so does the service asked directly.
  t.equal((await app.inject({ method: 'PATCH', url: `/api/instances/${SLUG}/accounts/dupont`, payload: { password: 'new-secret-123' } })).statusCode, 409, 'no new password for a forward');
  for (const name of ['setPassword', 'resume', 'create', 'setQuota', 'export']) {
    const r = await op(name, { username: 'dupont', password: 'new-secret-123', quotaMb: 20 });
    t.equal(r.out.ok, false, `the service refuses ${name} on a forwarded address`);
  }

  // carol writes twice (logged in, as a resident of the same server would): both reach keeper, she is answered once.
  const carol = nodemailer.createTransport({ host: '127.0.0.1', port: ports.submission!, secure: false, requireTLS: true, tls, auth: { user: `carol@${DOMAIN}`, pass: PASS.carol! } });
  for (const s of ['apres-1', 'apres-2']) await carol.sendMail({ from: `carol@${DOMAIN}`, to: `dupont@${DOMAIN}`, subject: s, text: s });
  // A list's message and an automatic one are forwarded, never answered.
  await carol.sendMail({ from: `carol@${DOMAIN}`, to: `dupont@${DOMAIN}`, subject: 'liste', text: 'liste', headers: { 'List-Id': '<quartier.lists.test>', Precedence: 'list' } });
  await carol.sendMail({ from: `carol@${DOMAIN}`, to: `dupont@${DOMAIN}`, subject: 'robot', text: 'robot', headers: { 'Auto-Submitted': 'auto-generated' } });
  const kept = await waitFor('the forwarded messages at keeper', async () => {
    const got = await inbox('keeper');
    return got && got.length >= 4 ? got : undefined;
  }, 30_000, 500).catch(async (err: Error) => {
    const logs = await docker.getContainer(container).logs({ stdout: true, stderr: true, tail: 60 }) as unknown as Buffer;
    t.comment(logs.toString('utf8').replace(/[\x00-\x08]/g, ''));
    t.comment(JSON.stringify((await inbox('keeper'))?.map((x) => x.subject)));
    throw err;
  });
  t.same(kept.map((x) => x.subject).sort(), ['apres-1', 'apres-2', 'liste', 'robot'], 'every message to the old address reached the new one');
  t.ok(kept.every((x) => x.from === `carol@${DOMAIN}`), 'as carol wrote them');
  const replies = await waitFor('the auto-reply at carol', async () => {
    const got = await inbox('carol');
    return got && got.length >= 1 ? got : undefined;
  }, 30_000, 500);
  await new Promise((r) => setTimeout(r, 2000));
  const all = (await inbox('carol'))!;
  t.equal(all.length, 1, `carol got exactly one auto-reply for four messages: ${all.map((x) => x.subject).join(', ')}`);
  t.equal(replies[0]!.from, `dupont@${DOMAIN}`, 'from the old address');
  t.equal(replies[0]!.autoSubmitted, 'auto-replied', 'marked Auto-Submitted: auto-replied (RFC 3834)');
  t.match(replies[0]!.subject, /Nouvelle adresse \/ New address/);
  t.match(replies[0]!.text, /keeper@quartier\.test/, 'saying where he moved');

  // ---- The end of the period: delete removes the forward; mail to the old address is then refused.
  t.equal((await app.inject({ method: 'DELETE', url: `/api/instances/${SLUG}/accounts/dupont` })).statusCode, 204);
  t.throws(() => getAccount(rt.db, SLUG, 'dupont'), { code: 'CATTERY_ERR_NOT_FOUND' });
  t.equal((await execIn(container, ['sh', '-c', 'ls -A /var/lib/cattery-mail/forward | wc -l'])).out.trim(), '0', 'the forward is gone');
  t.match(await deliver('voisin@peer.test', `dupont@${DOMAIN}`, 'trop-tard'), /^550/, 'mail to the old address is refused after the period');
  t.same((await inbox('keeper'))!.map((x) => x.subject).sort(), ['apres-1', 'apres-2', 'liste', 'robot'], 'and nothing more reaches the new one');
});
