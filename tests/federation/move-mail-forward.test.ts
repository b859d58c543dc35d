// After a move between two hosters with different mail domains, mail sent to the old address reaches the new one
// (issue 14: "and (for mail) forward the old address to the new one for a period the association sets, with an
// auto-reply saying where the person moved"): A's real mail instance forwards alice@aville.test to
// alice@beville.test, the address B's signed receipt gave, for the association's period (governance forwardDays);
// a message sent over SMTP into A arrives in alice's mailbox at B over IMAP, and its sender (carol, at B) gets
// exactly one auto-reply for two messages. When the period is over, the federation's sweep deletes the account at A
// (journaled) and A refuses mail to the old address.
//
// Between the two: each instance resolves names through a DNS server of the test's own on its network (Knot, one per
// side, the same zones), and beville.test's MX is a relay on A's network that passes port 25 on to B's mail
// instance (a small TCP forwarder in a container attached to both networks: "the Internet" between two hosters).
// Cattery's own isolation is untouched: no instance joins the other's network.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ImapFlow } from 'imapflow';
import { and, eq } from 'drizzle-orm';
import { assignAccount, getAccount } from '../../src/accounts/accounts.js';
import { operations } from '../../src/db/schema.js';
import { createUser } from '../../src/identity/users.js';
import { sweepForwards, type OutPart } from '../../src/federation/moves-source.js';
import { fedMovesOut } from '../../src/federation/schema.js';
import { allocateSubnet } from '../../src/orchestrator/subnets.js';
import { networkName } from '../../src/orchestrator/docker/container-spec.js';
import { testCa } from '../services/test-ca.js';
import { dnsBeside, hostIn, removeNetwork, startBeside } from '../services/beside.js';
import { smtpSession } from '../services/smtp-client.js';
import { docker, execIn, HEALTHY_WITHIN_MS, OPERATOR, waitFor } from '../helpers.js';
import { api, cattery, pin, type Cattery } from './move-catteries.js';

const A_DOMAIN = 'aville.test';
const B_DOMAIN = 'beville.test';
const PASS_A = 'alice-secret-at-a';
const PASS_B = 'alice-new-secret-at-b';
const PASS_CAROL = 'carol-secret-at-b';
const SLUG = 'm-mail';

// A TCP relay: every connection to :25 goes on to the address given, both ways, until either side closes.
const RELAY = `
import socket, sys, threading
dst = (sys.argv[1], 25)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(("0.0.0.0", 25)); srv.listen(16)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    finally:
        try: b.shutdown(socket.SHUT_WR)
        except OSError: pass
while True:
    c, _ = srv.accept()
    try: u = socket.create_connection(dst, timeout=10)
    except OSError: c.close(); continue
    u.settimeout(None)
    for x, y in ((c, u), (u, c)): threading.Thread(target=pipe, args=(x, y), daemon=True).start()
`;

/** A one-part text message's body, its transfer encoding undone (quoted-printable or base64; 8bit as it is). */
function bodyOf(source: string): string {
  const at = source.search(/\r?\n\r?\n/);
  const headers = source.slice(0, at);
  const body = source.slice(at).replace(/^\r?\n\r?\n/, '');
  if (/^Content-Transfer-Encoding:\s*quoted-printable/mi.test(headers)) {
    return Buffer.from(body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  }
  if (/^Content-Transfer-Encoding:\s*base64/mi.test(headers)) return Buffer.from(body, 'base64').toString('utf8');
  return body;
}

const head = (z: string) => `$ORIGIN ${z}.\n$TTL 60\n@ SOA ns.${z}. hostmaster.${z}. 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\n`;

t.test('a moved resident\'s old address forwards to the new hoster, answers once, and goes when the period is over', async (t) => {
  const ca = testCa(t);
  const caDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-move-ca-'));
  t.teardown(() => fs.rmSync(caDir, { recursive: true, force: true }));
  const caFile = path.join(caDir, 'ca.pem');
  fs.writeFileSync(caFile, ca.pem);
  const [a, b] = await Promise.all([cattery(t, 'Chatons de Aville', ca, caFile, 0), cattery(t, 'Chatons de Béville', ca, caFile, 1)]);
  const started = Date.now();
  // The mail instance is each runtime's first: its network is the first /28 of the runtime's pool.
  const net = (x: Cattery) => ({ subnet: allocateSubnet(x.rt.config.subnetPool, []), name: networkName(x.rt.config.hosterId, SLUG) });
  const [na, nb] = [net(a), net(b)];
  const ports = new Map<Cattery, Record<string, number>>();
  for (const [x, domain, n] of [[a, A_DOMAIN, na], [b, B_DOMAIN, nb]] as const) {
    const r = await api(x, 'POST', '/api/instances', { service: 'mail', slug: SLUG, env: { MAIL_DOMAIN: domain, MAIL_DNS_RESOLVER: hostIn(n.subnet, 14) } });
    t.equal(r.status, 202, JSON.stringify(r.body));
    ports.set(x, r.body.ports);
  }
  const relayAddress = hostIn(na.subnet, 13);
  const zones = {
    [A_DOMAIN]: `${head(A_DOMAIN)}@ MX 10 mail\nmail A 192.0.2.25\n`,
    [B_DOMAIN]: `${head(B_DOMAIN)}@ MX 10 mx\nmx A ${relayAddress}\n`,
    'peer.test': head('peer.test'),
  };
  for (const [x, n] of [[a, na], [b, nb]] as const) {
    await dnsBeside(t, { name: `${x.rt.config.hosterId}-knot`, network: n.name, address: hostIn(n.subnet, 14), label: x.rt.config.hosterId, zones });
  }
  const container = (x: Cattery) => `${x.rt.config.hosterId}-${SLUG}`;
  await Promise.all([a, b].map((x) => waitFor(`mail healthy at ${x.url}`, async () => (await api(x, 'GET', `/api/instances/${SLUG}`)).body.observed === 'healthy', HEALTHY_WITHIN_MS, 500)));
  const bInfo = await docker.getContainer(container(b)).inspect();
  const bAddress = bInfo.NetworkSettings.Networks[nb.name]!.IPAddress;
  const relayName = `${a.rt.config.hosterId}-relay`;
  await startBeside(t, { name: relayName, image: bInfo.Config.Image, network: na.name, address: relayAddress, label: a.rt.config.hosterId, cmd: ['python3', '-c', RELAY, bAddress] });
  await docker.getNetwork(nb.name).connect({ Container: relayName });
  t.teardown(async () => { await docker.getContainer(relayName).remove({ force: true }).catch(() => undefined); await removeNetwork(nb.name); });
  t.comment(`two mail instances, their DNS and the relay up in ${Date.now() - started} ms`);

  const certOf = async (x: Cattery) => (await execIn(container(x), ['cat', '/var/lib/cattery-mail/tls/cert.pem'])).out.replace(/^[^-]*/, '');
  const certs = new Map<Cattery, string>([[a, await certOf(a)], [b, await certOf(b)]]);
  /** The messages of `user`'s INBOX at `x` (subject, sender, raw source), or null when the sign-in is refused. */
  const inbox = async (x: Cattery, domain: string, user: string, pass: string) => {
    const c = new ImapFlow({ host: '127.0.0.1', port: ports.get(x)!.imap!, secure: false, doSTARTTLS: true, auth: { user: `${user}@${domain}`, pass }, logger: false,
      tls: { ca: certs.get(x)!, servername: `mail.${domain}` } });
    c.on('error', () => undefined);
    try { await c.connect(); } catch { return null; }
    try {
      const box = await c.mailboxOpen('INBOX');
      const out: { subject: string; from: string; source: string }[] = [];
      if (box.exists > 0) {
        for await (const m of c.fetch('1:*', { envelope: true, source: true })) {
          out.push({ subject: m.envelope?.subject ?? '', from: m.envelope?.from?.[0]?.address ?? '', source: m.source?.toString('utf8') ?? '' });
        }
      }
      return out;
    } finally { await c.logout().catch(() => undefined); }
  };
  /** One message over port 25 into `x`, as another mail server delivers it; 'sent' or the reply that refused it. */
  const deliver = async (x: Cattery, from: string, to: string, subject: string) => {
    const s = await smtpSession(ports.get(x)!.smtp!);
    try {
      for (const [line, want] of [['EHLO peer.test', '250'], [`MAIL FROM:<${from}>`, '250'], [`RCPT TO:<${to}>`, '250'], ['DATA', '354'],
        [`From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@peer.test>\r\n\r\n${subject}\r\n.`, '250']] as const) {
        const r = await s.cmd(line);
        if (!r.startsWith(want)) return r;
      }
      return 'sent';
    } finally { s.close(); }
  };

  const bAtA = await pin(t, a, b);
  await pin(t, b, a);
  // The association at A decided a forward of 30 days (bounded: 0 to 365).
  const settings = (forwardDays: number) => a.rt.app.inject({ method: 'PATCH', url: '/api/governance/settings', headers: OPERATOR, payload: { forwardDays } });
  t.equal((await settings(400)).statusCode, 400, 'a forward period over a year is refused');
  t.equal((await settings(30)).json().forwardDays, 30);

  const alice = await createUser(a.rt.db, { login: 'alice', name: 'Alice Martin', roles: ['resident'] });
  t.equal((await api(a, 'POST', `/api/instances/${SLUG}/accounts`, { username: 'alice', password: PASS_A, quotaMb: 20 })).status, 201);
  assignAccount(a.rt.db, getAccount(a.rt.db, SLUG, 'alice').id, alice.id);
  t.equal((await api(b, 'POST', `/api/instances/${SLUG}/accounts`, { username: 'carol', password: PASS_CAROL, quotaMb: 20 })).status, 201, 'carol writes from B');
  t.equal(await deliver(a, 'voisin@peer.test', `alice@${A_DOMAIN}`, 'avant-le-depart'), 'sent');
  await waitFor('the first message at A', async () => (await inbox(a, A_DOMAIN, 'alice', PASS_A))?.length === 1, 30_000, 500);

  const start = await api(a, 'POST', '/api/moves', { peerId: bAtA, userId: alice.id, consent: 'Alice asked at the office' });
  t.equal(start.status, 201, JSON.stringify(start.body));
  const arrived = await api(b, 'POST', '/api/moves/arrivals', { source: a.url, code: start.body.code, password: PASS_B });
  t.equal(arrived.status, 200, JSON.stringify(arrived.body));
  t.same((await inbox(b, B_DOMAIN, 'alice', PASS_B))?.map((m) => m.subject), ['avant-le-depart'], 'her mail is at B');
  const received = a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.id, start.body.move.id)).get()!;
  t.equal((received.parts as OutPart[])[0]!.newAddress, `alice@${B_DOMAIN}`, 'B\'s signed receipt gave her new address');

  const confirmed = Date.now();
  t.equal((await api(a, 'POST', `/api/moves/${start.body.move.id}/confirm`, { userId: alice.id, consent: 'Alice checked her mail at B and asked' })).body.state, 'done');
  const part = (a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.id, start.body.move.id)).get()!.parts as OutPart[])[0]!;
  const until = Date.parse(part.forwardUntil!);
  t.ok(Math.abs(until - (confirmed + 30 * 86_400_000)) < 120_000, `forwarded for the association's 30 days (until ${part.forwardUntil})`);
  t.equal(getAccount(a.rt.db, SLUG, 'alice').state, 'forwarding', 'the account at A is a forward now');
  t.equal(await inbox(a, A_DOMAIN, 'alice', PASS_A), null, 'A lets nobody in as alice any more');
  t.equal((await execIn(container(a), ['sh', '-c', `find /var/mail/vhosts/${A_DOMAIN}/alice -path '*/cur/*' -o -path '*/new/*' | wc -l`])).out.trim(), '0', 'her messages are gone from A');

  // carol writes twice to the old address, over SMTP into A.
  for (const s of ['apres-1', 'apres-2']) t.equal(await deliver(a, `carol@${B_DOMAIN}`, `alice@${A_DOMAIN}`, s), 'sent', `${s} taken by A`);
  const atB = await waitFor('the forwarded messages in alice\'s mailbox at B', async () => {
    const got = await inbox(b, B_DOMAIN, 'alice', PASS_B);
    return got && got.length >= 3 ? got : undefined;
  }, 60_000, 1000);
  t.same(atB.map((m) => m.subject).sort(), ['apres-1', 'apres-2', 'avant-le-depart'], 'mail sent to the old address reaches B');
  t.ok(atB.filter((m) => m.subject.startsWith('apres')).every((m) => m.from === `carol@${B_DOMAIN}`), 'as carol wrote it');
  const replies = await waitFor('the auto-reply at carol', async () => {
    const got = await inbox(b, B_DOMAIN, 'carol', PASS_CAROL);
    return got && got.length >= 1 ? got : undefined;
  }, 60_000, 1000);
  await new Promise((r) => setTimeout(r, 3000));
  const all = (await inbox(b, B_DOMAIN, 'carol', PASS_CAROL))!;
  t.equal(all.length, 1, 'carol got exactly one auto-reply for two messages');
  t.equal(replies[0]!.from, `alice@${A_DOMAIN}`, 'from the old address');
  t.match(replies[0]!.source, /^Auto-Submitted: auto-replied/mi, 'marked as an automatic reply (RFC 3834)');
  const text = bodyOf(replies[0]!.source);
  t.match(text, new RegExp(`alice@${B_DOMAIN.replace('.', '\\.')}`), 'saying where she moved');
  t.match(text, /a déménagé chez un autre hébergeur/, 'in French');
  t.match(text, /has moved to another host/, 'and in English');

  // The period is over: the federation's sweep deletes the account at A, journaled, once.
  t.equal(await sweepForwards(a.rt.federation.moves, new Date()), 0, 'nothing ends before the period is over');
  t.equal(await sweepForwards(a.rt.federation.moves, new Date(until + 1000)), 1, 'the forward ends after it');
  t.equal((await api(a, 'GET', `/api/instances/${SLUG}/accounts/alice`)).status, 404, 'the account at A is gone');
  const journal = a.rt.db.select().from(operations).where(and(eq(operations.instanceSlug, SLUG), eq(operations.kind, 'account.delete'))).all();
  t.ok(journal.some((j) => j.status === 'done' && /forward period over/.test(j.actor)), 'journaled as the end of the forward');
  t.ok(a.rt.db.select().from(operations).where(and(eq(operations.instanceSlug, SLUG), eq(operations.kind, 'account.forward'))).all().some((j) => j.status === 'done'), 'the forward itself journaled');
  t.equal(await sweepForwards(a.rt.federation.moves, new Date(until + 2000)), 0, 'a second sweep has nothing to do');
  t.match(await deliver(a, `carol@${B_DOMAIN}`, `alice@${A_DOMAIN}`, 'trop-tard'), /^550/, 'A refuses mail to the old address after the period');
  t.equal(getAccount(b.rt.db, SLUG, 'alice').state, 'active', 'and alice at B is untouched');
});
