// Dues-gated services end to end, with the real mail service: a member's dues lapse; during the grace their page
// announces the suspension and IMAP still works; past the grace the upkeep timer suspends their mailbox (IMAP login
// refused) while mail keeps arriving; recording a payment resumes it at once, with the mail received meanwhile there.
// An account the association did not suspend (bob's, no member behind it) is never touched.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import { execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';
import { allocateSubnet } from '../../src/orchestrator/subnets.js';
import { networkName } from '../../src/orchestrator/docker/container-spec.js';
import { assignAccount, getAccount } from '../../src/accounts/accounts.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { addDays, today } from '../../src/governance/dues.js';
import { pendingSuspension } from '../../src/governance/dues-gate.js';
import { createMailer, queueReminders, sendReminders } from '../../src/governance/reminders.js';
import { dnsBeside, hostIn } from '../services/beside.js';

const DOMAIN = 'quartier.test';

t.test('lapsed dues suspend a members-only mailbox past the grace; a payment resumes it, mail kept', async (t) => {
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180 });
  const { app, config, db } = rt;
  const subnet = allocateSubnet(config.subnetPool, []);
  const resolver = hostIn(subnet, 14);
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: DOMAIN, MAIL_DNS_RESOLVER: resolver } } });
  t.equal(created.statusCode, 202, created.body);
  const ports = created.json().ports as Record<string, number>;
  await dnsBeside(t, { name: `${config.hosterId}-knot`, network: networkName(config.hosterId, 'courriel'), address: resolver, label: config.hosterId, zones: {} });
  await waitFor('mail healthy', async () => (await app.inject('/api/instances/courriel')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  const ca = (await execIn(`${config.hosterId}-courriel`, ['cat', '/var/lib/cattery-mail/tls/cert.pem'])).out.replace(/^[^-]*/, '');
  const tls = { ca, servername: `mail.${DOMAIN}` };

  const imapLogin = async (user: string, pass: string) => {
    const c = new ImapFlow({ host: '127.0.0.1', port: ports.imap!, secure: false, doSTARTTLS: true, tls, auth: { user: `${user}@${DOMAIN}`, pass }, logger: false });
    c.on('error', () => undefined);
    await c.connect();
    try {
      await c.mailboxOpen('INBOX');
      const subjects: string[] = [];
      for await (const m of c.fetch('1:*', { envelope: true })) subjects.push(m.envelope?.subject ?? '');
      return subjects;
    } catch { return []; } finally { await c.logout().catch(() => undefined); }
  };
  const send = (subject: string) => nodemailer.createTransport({ host: '127.0.0.1', port: ports.submission, secure: false, requireTLS: true, tls, auth: { user: `bob@${DOMAIN}`, pass: 'bob-secret-22' } })
    .sendMail({ from: `bob@${DOMAIN}`, to: `camille@${DOMAIN}`, subject, text: 'Bonjour' });

  // Camille is a resident with a mailbox and a member of the association; Bob's mailbox has no member behind it.
  const camille = await createUser(db, { login: 'camille', name: 'Camille Dupont', roles: ['resident'] });
  const mk = (username: string, password: string) => app.inject({ method: 'POST', url: '/api/instances/courriel/accounts', payload: { username, password, quotaMb: 50 } });
  t.equal((await mk('camille', 'camille-secret-1')).statusCode, 201);
  t.equal((await mk('bob', 'bob-secret-22')).statusCode, 201);
  assignAccount(db, getAccount(db, 'courriel', 'camille').id, camille.id);
  await app.inject({ method: 'PUT', url: '/api/governance/categories/mensuelle', payload: { nameFr: 'Au mois', nameEn: 'Monthly', amountCents: 300, period: 'days', periodDays: 30 } });
  const member = (await app.inject({ method: 'POST', url: '/api/members', payload: { kind: 'person', name: 'Camille Dupont', userId: camille.id, category: 'mensuelle' } })).json();
  await app.inject({ method: 'POST', url: `/api/members/${member.id}/admit` });
  // Paid 40 days ago for 30 days: the period ended 11 days ago; with 30 days of grace, Camille is in grace.
  const paid = await app.inject({ method: 'POST', url: `/api/members/${member.id}/payments`, payload: { amountCents: 300, method: 'cash', paidOn: addDays(today(), -40) } });
  t.equal(paid.statusCode, 201, paid.body);
  t.equal(paid.json().member.dues.status, 'grace');
  t.equal((await app.inject({ method: 'PUT', url: '/api/services/mail/settings', payload: { membersOnly: true } })).statusCode, 200);

  await send('Avant');
  await waitFor('the first message', async () => (await imapLogin('camille', 'camille-secret-1')).includes('Avant'), 30_000, 500);
  const notice = pendingSuspension({ db }, member.id);
  t.same(notice, { on: addDays(today(), 19), services: ['mail'] }, 'during the grace, "my services" can say which services stop, and when');
  const cookie = `cattery_session=${createSession(db, { idleMinutes: 60, maxHours: 1 }, camille.id, 'password')}`;
  const mine = await app.inject({ url: '/me', headers: { cookie, 'accept-language': 'fr' } });
  t.match(mine.body, /si la cotisation n’est pas payée d’ici le .*ces services seront suspendus : Courriel/s, 'and "my services" says it, in French');
  await new Promise((r) => setTimeout(r, 2 * config.reconcileIntervalSeconds * 1000 + 1000));
  t.equal(getAccount(db, 'courriel', 'camille').state, 'active', 'in grace, nothing is suspended');

  // The grace shortened to 5 days: Camille's dues have lapsed past it; the upkeep timer suspends the mailbox.
  t.equal((await app.inject({ method: 'PATCH', url: '/api/governance/settings', payload: { graceDays: 5 } })).statusCode, 200);
  await waitFor('the mailbox suspended by the dues gate', () => getAccount(db, 'courriel', 'camille').state === 'suspended', 60_000, 500);
  await t.rejects(imapLogin('camille', 'camille-secret-1'), 'past the grace, IMAP login is refused');
  t.equal(getAccount(db, 'courriel', 'bob').state, 'active', 'bob\'s mailbox (no member behind it) is untouched');
  await send('Pendant la suspension');
  const ops = (await app.inject('/api/instances/courriel/operations')).json() as { kind: string; actor: string; status: string }[];
  t.ok(ops.some((o) => o.kind === 'account.suspend' && o.actor === 'governance:dues' && o.status === 'done'), 'the suspension is journaled as the dues gate\'s');
  t.notOk(ops.some((o) => /delete/.test(o.kind)), 'nothing is deleted');
  // Idempotent: more passes change nothing.
  await new Promise((r) => setTimeout(r, 2 * config.reconcileIntervalSeconds * 1000 + 1000));
  t.equal(((await app.inject('/api/instances/courriel/operations')).json() as { kind: string }[]).filter((o) => o.kind === 'account.suspend').length, 1, 'suspended once');

  // The reminder after the end of the period goes by email, through the association's own mail server (its
  // certificate verified against the instance's own CA), to the address the member gave.
  fs.writeFileSync(path.join(config.dataDir, 'mail-ca.pem'), ca);
  const mailer = createMailer({ smtpUrl: `smtp://bob%40${DOMAIN}:bob-secret-22@127.0.0.1:${ports.submission}`, from: `bob@${DOMAIN}`, caFile: path.join(config.dataDir, 'mail-ca.pem') }, { servername: `mail.${DOMAIN}` });
  t.equal((await app.inject({ method: 'PATCH', url: `/api/members/${member.id}`, payload: { email: `camille@${DOMAIN}` } })).statusCode, 200);
  queueReminders(db, true);
  queueReminders(db, true);
  const sent = await sendReminders(db, mailer, config.publicUrl, rt.log);
  t.same(sent, { sent: 1, failed: 0 }, 'one reminder, sent once');
  t.same(await sendReminders(db, mailer, config.publicUrl, rt.log), { sent: 0, failed: 0 }, 'never twice');

  // The treasurer records a payment: the mailbox is resumed in the same request, the mail received meanwhile there.
  const renewed = await app.inject({ method: 'POST', url: `/api/members/${member.id}/payments`, payload: { amountCents: 300, method: 'transfer', reference: 'VIR-2026-118' } });
  t.equal(renewed.statusCode, 201, renewed.body);
  t.same(renewed.json().resumed, ['courriel/camille'], 'the payment resumed the mailbox');
  t.equal(getAccount(db, 'courriel', 'camille').state, 'active');
  const after = await imapLogin('camille', 'camille-secret-1');
  t.ok(after.includes('Avant') && after.includes('Pendant la suspension'), `the mail is all there: ${after.join(', ')}`);
  t.ok(after.includes('Votre cotisation est arrivée à échéance'), 'the reminder arrived in the mailbox');
  const history = (await app.inject(`/api/members/${member.id}`)).json().history.map((h: { kind: string }) => h.kind);
  t.ok(history.includes('dues.suspend') && history.includes('dues.resume'), 'the member\'s journal has the suspension and the resumption');
});
