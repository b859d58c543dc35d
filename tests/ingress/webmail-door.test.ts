// The webmail through the front door, as the resident of the printed sheet reaches it (issue 10): a mediator signs
// the resident up for mail; the sheet gives the webmail linked to that mail instance at https://<its name>/; Chromium
// opens exactly that address, trusting the association's test ACME CA through a real trust path (the CA's root in the
// NSS database of the browser's profile, never --ignore-certificate-errors), and the resident signs in with the
// address and password the sheet gives. Behind it the webmail reaches the mail instance over the link and verifies the
// certificate the door obtained by ACME for mail.<domain> against the same root. axe-core on the login page.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { chromium } from 'playwright-core';
import { HEALTHY_WITHIN_MS, waitFor } from '../helpers.js';
import { axeViolations, navigationOutcome, openSteadily } from '../chromium.js';
import { pageBrowser } from '../page-browser.js';
import { DOMAIN, get, startDoor } from './door.js';

const MAIL_HOST = `mail.${DOMAIN}`;
const WEBMAIL_HOST = `webmail.${DOMAIN}`;
const unescape = (s: string) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');


/** IMAPS on the mail instance's published port, verified for MAIL_HOST against `ca`: the door's certificate is in. */
function imapsVerifies(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: MAIL_HOST, ca, timeout: 10_000 }, () => { s.end(); resolve(true); });
    s.on('timeout', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(false));
  });
}

t.test('the webmail on the sheet, through the front door, in Chromium trusting the association\'s CA', async (t) => {
  const started = Date.now();
  const { rt, ca, ports } = await startDoor(t, [MAIL_HOST, WEBMAIL_HOST, `cattery.${DOMAIN}`, `autoconfig.${DOMAIN}`, `mta-sts.${DOMAIN}`]);
  const { app } = rt;
  const mail = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: DOMAIN } } });
  t.equal(mail.statusCode, 202, mail.body);
  // The webmail trusts the association's CA root for the mail server: the certificate the door gets by ACME.
  const wm = await app.inject({ method: 'POST', url: '/api/instances', payload: {
    service: 'webmail', slug: 'webmail', links: { mail: 'courriel' },
    env: { WEBMAIL_TLS_CA: Buffer.from(ca.rootPem).toString('base64'), WEBMAIL_ASSOCIATION: 'Chatons_du_Quartier' },
  } });
  t.equal(wm.statusCode, 202, wm.body);
  for (const [slug, name] of [['courriel', MAIL_HOST], ['webmail', WEBMAIL_HOST]]) {
    t.equal((await app.inject({ method: 'PUT', url: `/api/instances/${slug}/hostnames`, payload: { hostnames: [name] } })).statusCode, 200);
  }
  for (const slug of ['courriel', 'webmail']) {
    await waitFor(`${slug} healthy`, async () => (await app.inject(`/api/instances/${slug}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
  }

  // A mediator signs Marie up for mail; the sheet says where her webmail is and how to sign in.
  const made = (await app.inject({ method: 'POST', url: '/api/users', payload: { login: 'camille', name: 'Camille Lefèvre', roles: ['mediator'] } })).json();
  const b = pageBrowser(app, { authorization: null });
  t.equal((await b.post('/login', { login: 'camille', password: made.firstPassword }, { csrfFrom: '/login' })).statusCode, 303);
  t.equal((await b.post('/me/password', { current: made.firstPassword, password: 'ma phrase à moi', password2: 'ma phrase à moi' }, { csrfFrom: '/me' })).statusCode, 200);
  const signed = await b.post('/mediator/signup', { name: 'Marie Dupont', services: ['mail'], consent: rt.config.termsVersion }, { csrfFrom: '/mediator' });
  t.equal(signed.statusCode, 201, signed.statusCode === 201 ? 'signed up by the mediator' : signed.body.slice(0, 400));
  const password = unescape(/id="sheet-password">([^<]+)</.exec(signed.body)?.[1] ?? '');
  const sections = [...signed.body.matchAll(/<h2>([^<]*)<\/h2>\s*<p class="big">([^<]*)<\/p>/g)].map((m) => unescape(m[2]!));
  const access = sections.find((s) => s.startsWith('Webmail')) ?? '';
  const url = /(https:\/\/[^\s]+\/)/.exec(access)?.[1] ?? '';
  const address = /\(([^\s()]+@[^\s()]+)\)/.exec(access)?.[1] ?? '';
  t.equal(url, `https://${WEBMAIL_HOST}${ports.https === 443 ? '' : `:${ports.https}`}/`, `the sheet gives the webmail's front-door address: ${access}`);
  t.match(address, new RegExp(`^[a-z0-9._-]+@${DOMAIN.replace('.', '\\.')}$`), 'and the whole address to sign in with');

  // The door serves the webmail with its certificate, and the mail instance has the door's certificate for its host.
  await waitFor('the webmail over HTTPS', () => get(ports.https, WEBMAIL_HOST, ca.rootPem).then((a) => a.status === 200, () => false), 240_000, 250);
  await waitFor('the mail instance with the door\'s certificate', () => imapsVerifies(mail.json().ports.imaps, ca.rootPem), 300_000, 500);
  t.comment(`door, mail, webmail and both certificates ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // A browser profile that trusts the association's CA root: its own NSS database, as an administrator would set a
  // public computer's; the name resolves to the door on this host (no DNS here), the address stays the sheet's.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-chromium-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const nss = `sql:${path.join(home, '.pki', 'nssdb')}`;
  fs.mkdirSync(path.join(home, '.pki', 'nssdb'), { recursive: true, mode: 0o700 });
  execFileSync('certutil', ['-d', nss, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', nss, '-A', '-t', 'C,,', '-n', 'cattery test ACME root', '-i', ca.rootFile]);
  const launch = (profileHome: string) => chromium.launch({
    executablePath: '/usr/bin/chromium', env: { ...process.env, HOME: profileHome },
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run',
      `--host-resolver-rules=MAP ${WEBMAIL_HOST} 127.0.0.1`],
  });
  // First the control: a profile that does not know the CA refuses the page (verification is on).
  const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-chromium-bare-'));
  t.teardown(() => fs.rmSync(bare, { recursive: true, force: true }));
  const untrusting = await launch(bare);
  const refusedPage = await untrusting.newPage();
  t.match(await navigationOutcome(refusedPage, url), /ERR_CERT_AUTHORITY_INVALID/, 'a browser that does not trust the CA refuses the certificate');
  await untrusting.close();

  const browser = await launch(home);
  t.teardown(() => browser.close());
  const ctx = await browser.newContext({ locale: 'fr-FR', ignoreHTTPSErrors: false });
  const page = await ctx.newPage();
  const refused: string[] = [];
  page.on('response', (r) => { if (r.status() >= 400) refused.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
  let status = 0;
  page.on('response', (r) => { if (r.url() === url && r.request().isNavigationRequest()) status = r.status(); });
  await openSteadily(page, url, (timeout) => page.locator('#rcmloginuser').waitFor({ timeout }));
  t.equal(status, 200, 'the page loads over HTTPS, the certificate verified against the CA root in the profile');
  t.same(await axeViolations(page), [], 'axe: no violation on the login page');

  // Signing in is a form POST: a change of network cutting it leaves the login page to fill in again.
  for (let attempt = 1; ; attempt++) {
    await page.fill('#rcmloginuser', address);
    await page.fill('#rcmloginpwd', password);
    await page.click('#rcmloginsubmit');
    const signedIn = await page.locator('#mailboxlist').waitFor({ timeout: 60_000 }).then(() => true, (err: Error) => { if (attempt >= 3) throw err; return false; });
    if (signedIn) break;
    await openSteadily(page, url, (timeout) => page.locator('#rcmloginuser').waitFor({ timeout }));
  }
  t.match(await page.locator('body').innerText(), /Boîte de réception/, 'signed in with the sheet\'s address and password: the mailbox');
  const cookies = await ctx.cookies();
  t.ok(cookies.some((c) => c.name === 'roundcube_sessauth' && c.secure && c.httpOnly), 'the session cookie is Secure and HttpOnly over the door');
  t.same(refused, [], 'no request refused');
  t.comment(`total ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
