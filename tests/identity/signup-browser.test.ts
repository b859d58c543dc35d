// Sign-up as residents and mediators do it, in Chromium: a resident alone with JavaScript off, an administrator
// approving, the mailbox receiving mail; a mediator's sign-up with consent recorded and the printed sheet; and on
// every page, axe-core finds no WCAG 2.1 AA violation and the page stays under 100 KB with nothing from elsewhere.
import t from 'tap';
import nodemailer from 'nodemailer';
import { ImapFlow } from 'imapflow';
import type { BrowserContext, Page } from 'playwright-core';
import { createUser } from '../../src/identity/users.js';
import { execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';
import { PAGE_BUDGET as BUDGET, axeViolations, launchChromium as launch, weighPage } from '../chromium.js';
import { freePort } from './provider.js';

const DOMAIN = 'quartier.test';

/** Go to a page the way a person does, counting every byte it pulls (tests/chromium.ts) and every origin it asks. */
async function visit(page: Page, url: string, _base: string, seen: { bytes: number; foreign: string[] }) {
  const w = await weighPage(page, url);
  seen.bytes = w.bytes;
  seen.foreign.push(...w.foreign);
}

async function axe(context: BrowserContext, url: string, cookies: Awaited<ReturnType<BrowserContext['cookies']>>, html?: string) {
  // A page of its own with JavaScript on (axe is a script) and CSP bypassed for it; the same cookies as the person.
  await context.addCookies(cookies);
  const page = await context.newPage();
  if (html !== undefined) {
    await page.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: html }));
  }
  await page.goto(url);
  const result = (await axeViolations(page)).map((v) => `${v.id}: ${v.nodes.join(', ')}`);
  await page.close();
  return result;
}

t.test('residents sign up alone or with a mediator; every page accessible and light', async (t) => {
  const port = await freePort();
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180, port, publicUrl: `http://127.0.0.1:${port}` });
  const created = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: DOMAIN } } });
  t.equal(created.statusCode, 202, created.body);
  const ports = created.json().ports as Record<string, number>;
  // The mail instance comes up while the resident signs up and the administrator opens her page: nothing before the
  // approval reaches it (a self sign-up only records a pending request). Awaited before the approval.
  const mailHealthy = waitFor('mail healthy', async () => (await rt.app.inject('/api/instances/courriel')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  mailHealthy.catch(() => undefined); // awaited below; a rejection meanwhile is not an unhandled one
  const base = await rt.app.listen({ host: '127.0.0.1', port });
  await createUser(rt.db, { login: 'admin', name: 'Administratrice', roles: ['admin'], password: 'admin-password-long' });
  await createUser(rt.db, { login: 'camille', name: 'Camille Aidante', roles: ['mediator'], password: 'mediatrice-password' });

  // IMAP takes a login only after STARTTLS; the one trust anchor is the instance's own certificate (read once the
  // instance is healthy, below).
  let ca = '';
  const imapSubjects = async (login: string, pass: string) => {
    const c = new ImapFlow({ host: '127.0.0.1', port: ports.imap!, secure: false, auth: { user: `${login}@${DOMAIN}`, pass }, logger: false, doSTARTTLS: true, tls: { ca, servername: `mail.${DOMAIN}` } });
    c.on('error', () => undefined);
    await c.connect();
    try {
      const box = await c.mailboxOpen('INBOX');
      const out: string[] = [];
      if (box.exists === 0) return out;
      for await (const msg of c.fetch('1:*', { envelope: true })) out.push(msg.envelope?.subject ?? '');
      return out;
    } finally { if (c.usable) await c.logout().catch(() => undefined); else c.close(); }
  };

  const browser = await launch(t);
  const weights: Record<string, number> = {};
  const seen = { bytes: 0, foreign: [] as string[] };
  const axeContext = await browser.newContext({ bypassCSP: true, locale: 'fr-FR' });
  const violations: Record<string, string[]> = {};
  const audit = async (name: string, ctx: BrowserContext, page: Page, url = page.url()) => {
    weights[name] = seen.bytes;
    violations[name] = await axe(axeContext, url, await ctx.cookies(), url === page.url() ? await page.content() : undefined);
  };

  // ── A resident alone, JavaScript off ──
  const resident = await browser.newContext({ javaScriptEnabled: false, locale: 'fr-FR' });
  const r = await resident.newPage();
  await visit(r, `${base}/`, base, seen);
  await audit('home', resident, r, `${base}/`);
  t.match(await r.locator('h1').textContent(), /Services en ligne/);
  await visit(r, `${base}/terms`, base, seen);
  await audit('terms', resident, r, `${base}/terms`);
  await visit(r, `${base}/signup`, base, seen);
  await audit('signup', resident, r, `${base}/signup`);
  await r.getByLabel('Votre nom et prénom').fill('Inès Garnier');
  await r.getByLabel('Courriel', { exact: true }).check();
  await r.getByLabel('Choisissez un mot de passe').fill('ma phrase secrète');
  await r.getByLabel('Écrivez-le une deuxième fois').fill('une autre phrase');
  await r.getByLabel(/J’ai lu et j’accepte/).check();
  await r.getByRole('button', { name: 'Envoyer ma demande' }).click();
  t.match(await r.locator('[role=alert]').textContent(), /ne sont pas les mêmes/, 'a mistake is explained next to the field');
  weights['signup (errors)'] = 0;
  violations['signup (errors)'] = await axe(axeContext, r.url(), await resident.cookies(), await r.content());
  await r.getByLabel('Choisissez un mot de passe').fill('ma phrase secrète');
  await r.getByLabel('Écrivez-le une deuxième fois').fill('ma phrase secrète');
  await r.getByLabel(/J’ai lu et j’accepte/).check();
  await r.getByRole('button', { name: 'Envoyer ma demande' }).click();
  t.match(await r.locator('main').textContent(), /Votre identifiant est : ines\.garnier/);
  t.match(await r.locator('main').textContent(), /va la vérifier/);
  const signup = rt.db.$client.prepare("select s.status, s.channel, s.terms_version, s.services from signups s join users u on u.id = s.user_id where u.login = 'ines.garnier'").get();
  t.same(signup, { status: 'pending', channel: 'self', terms_version: '2026-11', services: '["mail"]' });

  // ── The administrator approves ──
  const adminCtx = await browser.newContext({ javaScriptEnabled: false, locale: 'fr-FR' });
  const a = await adminCtx.newPage();
  await visit(a, `${base}/login`, base, seen);
  await audit('login', adminCtx, a, `${base}/login`);
  await a.getByLabel('Identifiant').fill('admin');
  await a.getByLabel('Mot de passe').fill('admin-password-long');
  await a.getByRole('button', { name: 'Se connecter' }).click();
  await visit(a, `${base}/admin`, base, seen);
  await audit('admin', adminCtx, a, `${base}/admin`);
  t.match(await a.locator('table').first().textContent(), /Inès Garnier/);
  await mailHealthy;
  ca = (await execIn(`${rt.config.hosterId}-courriel`, ['cat', '/var/lib/cattery-mail/tls/cert.pem'])).out.replace(/^[^-]*/, '');
  await a.getByRole('button', { name: 'Accepter Inès Garnier' }).click();
  await a.waitForURL(`${base}/admin`);
  t.match(await a.locator('main').textContent(), /Aucune demande en attente/);
  t.match(rt.db.$client.prepare("select state from accounts where username = 'ines.garnier'").get() as { state: string }, { state: 'active' }, 'the mailbox exists');

  // The mailbox receives mail at once; the resident's own password reaches it at her next sign-in.
  await nodemailer.createTransport({ host: '127.0.0.1', port: ports.smtp!, secure: false, ignoreTLS: true })
    .sendMail({ from: `mairie@example.org`, to: `ines.garnier@${DOMAIN}`, subject: 'Bienvenue au quartier', text: 'Bonjour' });
  await r.goto(`${base}/login`);
  await r.getByLabel('Identifiant').fill('ines.garnier');
  await r.getByLabel('Mot de passe').fill('ma phrase secrète');
  await r.getByRole('button', { name: 'Se connecter' }).click();
  await visit(r, `${base}/me`, base, seen);
  await audit('me', resident, r, `${base}/me`);
  t.match(await r.locator('main').textContent(), new RegExp(`ines\\.garnier@${DOMAIN.replace('.', '\\.')}`), 'my services say how to reach the mailbox');
  await waitFor('mail received', async () => (await imapSubjects('ines.garnier', 'ma phrase secrète')).includes('Bienvenue au quartier'), 30_000, 500);
  t.pass('the approved mailbox received mail, read with the password the resident chose');

  // ── A mediator signs someone up ──
  const medCtx = await browser.newContext({ javaScriptEnabled: false, locale: 'fr-FR' });
  const m = await medCtx.newPage();
  await m.goto(`${base}/login?next=/mediator`);
  await m.getByLabel('Identifiant').fill('camille');
  await m.getByLabel('Mot de passe').fill('mediatrice-password');
  await m.getByRole('button', { name: 'Se connecter' }).click();
  await visit(m, `${base}/mediator`, base, seen);
  await audit('mediator', medCtx, m, `${base}/mediator`);
  await m.getByLabel('Votre nom et prénom').fill('Joseph N’Diaye');
  await m.getByLabel('Courriel', { exact: true }).check();
  await m.getByLabel(/La personne a lu/).check();
  await m.getByRole('button', { name: 'Inscrire et imprimer la feuille' }).click();
  const login = (await m.locator('#sheet-login').textContent())!.trim();
  const first = (await m.locator('#sheet-password').textContent())!.trim();
  t.equal(login, 'joseph.ndiaye');
  t.match(first, /^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/);
  t.match(await m.locator('.sheet').textContent(), /il faudra choisir votre propre mot de passe/);
  t.match(await m.locator('.sheet').textContent(), new RegExp(`joseph\\.ndiaye@${DOMAIN.replace('.', '\\.')}`));
  violations.sheet = await axe(axeContext, m.url(), await medCtx.cookies(), await m.content());
  const printed = await m.pdf?.({ format: 'A4' }).catch(() => undefined);
  if (printed) t.ok(printed.length > 1000, 'the sheet prints');
  const consent = rt.db.$client.prepare("select s.channel, s.mediator_login, s.terms_version, s.consent_at, s.status, u.must_change_password from signups s join users u on u.id = s.user_id where u.login = 'joseph.ndiaye'").get() as Record<string, unknown>;
  t.match(consent, { channel: 'mediator', mediator_login: 'user:camille', terms_version: '2026-11', status: 'approved', must_change_password: 1 });
  t.ok(Date.now() - Date.parse(consent.consent_at as string) < 300_000, 'when the consent was given');
  t.same(await imapSubjects('joseph.ndiaye', first), [], 'the first password opens the mailbox');

  // Joseph signs in with the sheet, and must choose his own password before anything else.
  const joseph = await browser.newContext({ javaScriptEnabled: false, locale: 'fr-FR' });
  const j = await joseph.newPage();
  await j.goto(`${base}/login`);
  await j.getByLabel('Identifiant').fill(login);
  await j.getByLabel('Mot de passe').fill(first);
  await j.getByRole('button', { name: 'Se connecter' }).click();
  t.match(await j.locator('[role=alert]').first().textContent(), /choisissez maintenant votre propre mot de passe/);
  await j.getByLabel('Mot de passe actuel').fill(first);
  await j.getByLabel('Nouveau mot de passe').fill('le jardin de joseph');
  await j.getByLabel('Écrivez-le une deuxième fois').fill('le jardin de joseph');
  await j.getByRole('button', { name: 'Changer le mot de passe' }).click();
  t.match(await j.locator('[role=status]').textContent(), /changé partout/);
  t.same(await imapSubjects('joseph.ndiaye', 'le jardin de joseph'), [], 'the new password opens the mailbox');
  await t.rejects(imapSubjects('joseph.ndiaye', first), 'the first password no longer does');

  // Joseph downloads his mailbox, then deletes it.
  await j.goto(`${base}/me`);
  const [download] = await Promise.all([j.waitForEvent('download'), j.getByRole('link', { name: /Télécharger mes données/ }).click()]);
  t.match(download.suggestedFilename(), /^mail-joseph\.ndiaye\.tar$/);
  const saved = await download.path();
  t.ok(saved && (await import('node:fs')).statSync(saved).size > 0, 'the export arrives as a tar archive');
  await j.getByLabel(/Je comprends que mes données/).check();
  await j.getByRole('button', { name: /Supprimer ce compte/ }).click();
  t.match(await j.locator('[role=status]').textContent(), /Le compte est supprimé/);
  t.equal(rt.db.$client.prepare("select count(*) n from accounts where username = 'joseph.ndiaye'").get()!.n as number, 0, 'the account is gone');
  await t.rejects(imapSubjects('joseph.ndiaye', 'le jardin de joseph'), 'and the mailbox refuses him');

  // An unknown page, in English, also passes.
  await visit(r, `${base}/nothing-here?lang=en`, base, seen);
  await audit('not found (en)', resident, r, `${base}/nothing-here?lang=en`);

  // A control: the same audit does see a violation when there is one (an input without a label, no lang).
  const control = await axe(axeContext, `${base}/control`, [], '<!doctype html><html><head><title>x</title></head><body><main><input type="text"></main></body></html>');
  t.ok(control.some((v) => v.startsWith('label')) && control.some((v) => v.startsWith('html-has-lang')), `the audit catches faults: ${control.join('; ')}`);
  for (const [name, v] of Object.entries(violations)) t.same(v, [], `axe: no violation on ${name}`);
  for (const [name, bytes] of Object.entries(weights)) if (bytes) t.ok(bytes < BUDGET, `${name}: ${bytes} bytes transferred (budget ${BUDGET})`);
  t.same(seen.foreign, [], 'no request left this site');
  t.ok(Object.keys(violations).length >= 10, `${Object.keys(violations).length} pages audited`);
});
