// The webmail service as a resident at a public computer uses it: Roundcube (Debian's package) in its hardened
// container, linked to a real mail instance by cattery (issue 10: the declared link, `links: {"mail": …}`), talking
// to it over IMAPS and submissions with TLS verified against a throwaway CA, driven in Chromium: sign in, French,
// send to a neighbour, the neighbour reads it, a wrong password, sign out; axe-core on the login and mailbox pages;
// the container's hardening read back from the engine. Then the link itself: its network holds exactly the two
// containers and opens only the declared ports, a neighbouring instance reaches the mail container on no address, a
// container made again joins again, a new name of the mail instance reaches the webmail, and deleting either end
// removes the network, the webmail saying why it cannot work.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { PAGE_BUDGET, axeViolations, weighPage } from '../chromium.js';
import { chromium, type Page } from 'playwright-core';
import { docker, execIn, HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';

const DOMAIN = 'quartier.test';
const MAIL_HOST = `mail.${DOMAIN}`;

// What a first visit pulls (issue 13, "Sobriety": the budget is 100 KB). Roundcube's elastic skin cannot reach it on
// a first visit: the scripts every page of it needs (jQuery, jQuery UI, which Roundcube always loads, Bootstrap,
// Roundcube's own app.js and elastic's ui.js) are 183 KB compressed (docs/architecture.md, "Sobriety"). These are the figures
// reached (services/webmail/lighttpd.conf, "Weight on the wire"; Dockerfile, the icon font), with a few KB of room
// for the page's own bytes, held as a bound so that nothing heavier comes back unnoticed. Measured before:
// 1,277,669 and 1,407,881 bytes. Every page after the first is within the budget (RETURNING_BOUND): the scripts and
// stylesheets are named by version and kept a year.
const LOGIN_BOUND = 265_000;
const MAILBOX_BOUND = 296_000;
const RETURNING_BOUND = PAGE_BUDGET;

/** One GET with these request headers, read to its end: status, headers and the number of bytes as sent. */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => { bytes += c.length; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${url}: no answer in 30 s`)));
  });
}

/** A throwaway CA in a temporary folder, and a certificate it signs for `host` (openssl on the test host). */
function throwawayCa(dir: string, name: string, host?: string): { ca: string; cert?: string; key?: string } {
  const f = (x: string) => path.join(dir, `${name}-${x}`);
  const ossl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=cattery test CA ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  if (!host) return { ca: fs.readFileSync(f('ca.pem'), 'utf8') };
  ossl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${host}`, '-keyout', f('leaf.key'), '-out', f('leaf.csr')]);
  fs.writeFileSync(f('leaf.ext'), `subjectAltName=DNS:${host}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  ossl(['x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-sha256', '-extfile', f('leaf.ext'), '-out', f('leaf.pem')]);
  return { ca: fs.readFileSync(f('ca.pem'), 'utf8'), cert: fs.readFileSync(f('leaf.pem'), 'utf8'), key: fs.readFileSync(f('leaf.key'), 'utf8') };
}


t.test('webmail: sign in, French, send, read, wrong password, sign out, axe, hardening', async (t) => {
  const started = Date.now();
  // The association's domain, so that the mail instance may be given another name below (no front door here).
  const rt = await testRuntime(t, { healthTimeoutSeconds: 180, domains: [DOMAIN] });
  const { app, config } = rt;
  const healthy = (slug: string) => waitFor(`${slug} healthy`, async () => (await app.inject(`/api/instances/${slug}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);

  // The mail instance, with a certificate for mail.<domain> from a throwaway CA put in place of its own (the
  // entrypoint keeps a valid certificate for its name across restarts); Dovecot and Postfix reload it.
  const mail = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: DOMAIN } } });
  t.equal(mail.statusCode, 202, mail.body);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-webmail-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const good = throwawayCa(tmp, 'good', MAIL_HOST);
  const other = throwawayCa(tmp, 'other');

  // Two webmail instances linked to the mail instance: the administrator names it, and the link fills in the mail
  // host (the name on its certificate), the domain and the ports: IMAPS on 993 and submissions on 465, implicit TLS.
  // One trusts the CA that signed the mail certificate, the other another CA (it must refuse to talk to the mail
  // server: verification is never off). A neighbouring instance (the probe) is on none of the links. Asked for at
  // once with the mail instance, so that they all come up together: a link needs its target's row, not its health
  // (links.ts linkStatus), and a webmail talks to the mail server only when someone signs in.
  const webmailEnv = (ca: string) => ({ WEBMAIL_TLS_CA: Buffer.from(ca).toString('base64'), WEBMAIL_ASSOCIATION: 'Chatons_du_Quartier_%C3%A0_Saint-%C3%89tienne' });
  const wm = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'webmail', slug: 'webmail', links: { mail: 'courriel' }, env: webmailEnv(good.ca) } });
  t.equal(wm.statusCode, 202, wm.body);
  t.same(wm.json().links, { mail: 'courriel' });
  t.same(wm.json().linkedEnv, {
    MAIL_DOMAIN: DOMAIN, WEBMAIL_IMAP_HOST: MAIL_HOST, WEBMAIL_IMAP_PORT: '993', WEBMAIL_SMTP_HOST: MAIL_HOST, WEBMAIL_SMTP_PORT: '465',
  }, 'the link fills in the mail host, its domain and its ports: nothing typed by hand');
  const wrongCa = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'webmail', slug: 'webmail-autre-ca', links: { mail: 'courriel' }, env: webmailEnv(other.ca) } });
  t.equal(wrongCa.statusCode, 202, wrongCa.body);
  const neighbour = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'voisin' } });
  t.equal(neighbour.statusCode, 202, neighbour.body);

  await healthy('courriel');
  const mailContainer = `${config.hosterId}-courriel`;
  // Installed the way cattery's front door does it (services/mail/admin.sh tls-install: checked, then Postfix and
  // Dovecot reloaded), here from a throwaway CA.
  const installed = spawnSync('docker', ['exec', '-i', mailContainer, '/usr/local/bin/cattery-mail-admin', 'tls-install'],
    { input: JSON.stringify({ cert: good.cert, key: good.key }), encoding: 'utf8', timeout: 60_000 });
  const reload = { code: installed.status, out: `${installed.stdout}${installed.stderr}` };
  t.equal(reload.code, 0, `mail reloads its new certificate: ${reload.out}`);

  for (const [username, password] of [['alice', 'alice-secret-1'], ['bob', 'bob-secret-22']] as const) {
    const r = await app.inject({ method: 'POST', url: '/api/instances/courriel/accounts', payload: { username, password, quotaMb: 50 } });
    t.equal(r.statusCode, 201, r.body);
  }
  await healthy('webmail');
  await healthy('webmail-autre-ca');
  await healthy('voisin');
  t.comment(`mail and two webmail instances healthy after ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // Each link's network: internal (no way out), exactly its two containers, the mail container under its mail host.
  const linkNet = (source: string) => `${config.hosterId}--link-${source}.mail`;
  const members = async (net: string) => {
    const info = await docker.getNetwork(net).inspect().catch(() => undefined) as { Internal: boolean; Containers?: Record<string, { Name: string }> } | undefined;
    return info && { internal: info.Internal, names: Object.values(info.Containers ?? {}).map((c) => c.Name).sort() };
  };
  for (const source of ['webmail', 'webmail-autre-ca']) {
    const want = [mailContainer, `${config.hosterId}-${source}`].sort();
    const got = await waitFor(`${source}'s link network with its two containers`, async () => {
      const m = await members(linkNet(source));
      return m && JSON.stringify(m.names) === JSON.stringify(want) ? m : undefined;
    }, 60_000, 500);
    t.same(got, { internal: true, names: want }, `${source}: an internal network holding exactly the webmail and the mail containers`);
  }
  const mailNets = (await docker.getContainer(mailContainer).inspect()).NetworkSettings.Networks as Record<string, { Aliases: string[] | null; IPAddress: string }>;
  t.ok(mailNets[linkNet('webmail')]?.Aliases?.includes(MAIL_HOST), 'the mail container answers to mail.<domain> on the link');

  const base = `http://127.0.0.1:${wm.json().ports.http}`;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  const refused: string[] = [];

  /** A fresh browser profile (a public computer after the previous person), on the login page. */
  const loginPage = async (url = base) => {
    const ctx = await browser.newContext({ locale: 'en-US' });
    const page = await ctx.newPage();
    // 401 is Roundcube's answer to a failed sign-in (expected below); any other error is a fault.
    page.on('response', (r) => {
      const failedLogin = r.status() === 401 && r.request().method() === 'POST' && r.url().endsWith('/?_task=login');
      if (r.status() >= 400 && !failedLogin) refused.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) refused.push(`CSP: ${m.text()}`); });
    // Leaving the compose page asks "discard?": a resident would say yes.
    page.on('dialog', (d) => { void d.accept(); });
    await page.goto(url);
    await page.locator('#rcmloginuser').waitFor();
    return page;
  };
  const signIn = async (page: Page, user: string, pass: string) => {
    await page.fill('#rcmloginuser', user);
    await page.fill('#rcmloginpwd', pass);
    await page.click('#rcmloginsubmit');
  };
  const inMailbox = (page: Page) => page.locator('#mailboxlist').waitFor({ timeout: 30_000 });

  // The login page: French although the browser asks for English, the association's name, no axe violation.
  const a = await loginPage();
  t.equal(await a.getAttribute('html', 'lang'), 'fr', 'the login page is in French');
  t.match(await a.title(), /Courriel — Chatons du Quartier à Saint-Étienne/, 'the product name carries the association\'s');
  const loginAxe = await axeViolations(a);
  t.same(loginAxe, [], 'axe: no violation on the login page');

  // Its weight on a first visit (issue 13, "Sobriety"), Chromium's cache off: held to the bounds above (the 100 KB
  // budget is out of elastic's reach); nothing may come from another origin.
  const wctx = await browser.newContext({ locale: 'en-US' });
  const wp = await wctx.newPage();
  const loginWeight = await weighPage(wp, base, () => wp.locator('#rcmloginuser').waitFor());
  await signIn(wp, `alice@${DOMAIN}`, 'alice-secret-1');
  await inMailbox(wp);
  const boxWeight = await weighPage(wp, `${base}/?_task=mail&_mbox=INBOX`, () => inMailbox(wp));
  // A part is named by its address, or by Chromium's request id when the request began before the weighing listened
  // (tests/chromium.ts weighPage): those are counted in the weight, and left out of what is read by address below.
  const byAddress = (w: typeof loginWeight) => w.parts.filter(([u]) => /^https?:\/\//.test(u));
  const top = (w: typeof loginWeight) => byAddress(w).slice(0, 4).map(([u, n]) => `${new URL(u).pathname}${new URL(u).search.slice(0, 30)} ${n}`).join(', ');
  t.comment(`webmail weight on the wire: login page ${loginWeight.bytes} bytes (${top(loginWeight)}); mailbox ${boxWeight.bytes} bytes (${top(boxWeight)})`);
  t.same([...loginWeight.foreign, ...boxWeight.foreign], [], 'the webmail asks nothing from another origin');
  t.ok(loginWeight.bytes < LOGIN_BOUND, `login page ${loginWeight.bytes} bytes on the wire, under its bound of ${LOGIN_BOUND}`);
  t.ok(boxWeight.bytes < MAILBOX_BOUND, `mailbox ${boxWeight.bytes} bytes on the wire, under its bound of ${MAILBOX_BOUND}`);
  await wctx.close();
  // A resident's usual visit: the login page, then the mailbox, in a browser that keeps what it was sent.
  const rctx = await browser.newContext({ locale: 'fr-FR' });
  const rp = await rctx.newPage();
  await weighPage(rp, base, () => rp.locator('#rcmloginuser').waitFor(), { cached: true });
  await signIn(rp, `alice@${DOMAIN}`, 'alice-secret-1');
  await inMailbox(rp);
  const again = await weighPage(rp, `${base}/?_task=mail&_mbox=INBOX`, () => inMailbox(rp), { cached: true });
  t.comment(`the mailbox again, from the browser's cache: ${again.bytes} bytes (${top(again)})`);
  t.ok(again.bytes < RETURNING_BOUND, `the mailbox after the login page: ${again.bytes} bytes on the wire, within the budget of ${RETURNING_BOUND}`);
  await rctx.close();

  // Every script and stylesheet of both pages comes compressed (brotli, else gzip) whoever asks (they hold no secret),
  // and, named with its version (?s=<mtime>), may be kept a year.
  const assets = [...new Set([...byAddress(loginWeight), ...byAddress(boxWeight)].map(([u]) => u).filter((u) => /\.(js|css)\?s=\d+$/.test(new URL(u).pathname + new URL(u).search)))];
  t.ok(assets.length >= 10, `the pages' scripts and stylesheets: ${assets.length}`);
  for (const u of assets) {
    const br = await get(u, { 'accept-encoding': 'gzip, deflate, br' });
    const gz = await get(u, { 'accept-encoding': 'gzip' });
    const name = new URL(u).pathname;
    t.same([br.status, br.headers['content-encoding'], gz.headers['content-encoding'], br.headers['cache-control']],
      [200, 'br', 'gzip', 'max-age=31536000, immutable'], `${name}: brotli ${br.bytes} bytes, gzip ${gz.bytes}, kept a year`);
    t.match(br.headers.vary ?? '', /Accept-Encoding/i, `${name}: Vary: Accept-Encoding`);
  }
  // index.php's answers carry the session's CSRF token beside text of the asker's choosing (BREACH): compressed only
  // when the browser says the request comes from this site or from the person; every other value of Sec-Fetch-Site,
  // and its absence, gets plain bytes. A page reflecting a chosen word is asked for under each.
  for (const site of ['none', 'same-origin', 'same-site', 'cross-site', 'nonsense', undefined]) {
    for (const page of ['/', '/?_task=login&_user=oracle-guess', '/?_task=mail&_mbox=INBOX']) {
      const r = await get(`${base}${page}`, { 'accept-encoding': 'gzip, deflate, br', ...(site ? { 'sec-fetch-site': site } : {}) });
      const own = site === 'none' || site === 'same-origin';
      t.equal(r.headers['content-encoding'], own ? 'br' : undefined, `${page} with Sec-Fetch-Site ${site ?? '(absent)'}: ${own ? 'compressed' : 'plain'} (${r.bytes} bytes)`);
    }
  }

  // Alice signs in with her whole address and writes to Bob.
  await signIn(a, `alice@${DOMAIN}`, 'alice-secret-1');
  await inMailbox(a);
  t.match(await a.locator('body').innerText(), /Boîte de réception[\s\S]*Rédiger|Rédiger[\s\S]*Boîte de réception/, 'the mailbox is in French');
  const mailboxAxe = await axeViolations(a);
  t.same(mailboxAxe, [], 'axe: no violation on the mailbox page');
  await a.goto(`${base}/?_task=mail&_action=compose`);
  const to = a.locator('#compose_to input[type="text"], #compose_to textarea').first();
  await to.waitFor();
  await to.fill(`bob@${DOMAIN}`);
  await a.fill('#compose-subject', 'Fête des voisins');
  await a.fill('#composebody', 'Bonjour Bob, rendez-vous samedi dans la cour.');
  await a.locator('button.send, a.send').first().click();
  // A bound, not a measure: Roundcube sends through the linked mail instance's submission port, which took more than
  // 30 s once under the whole suite's load.
  await a.getByText('Le courriel a été envoyé avec succès.').waitFor({ timeout: 120_000 });
  t.pass('alice sends to bob from the webmail');
  // Signing out ends the session: the mailbox asks for a login again.
  // (Roundcube leaves the compose page by itself once the message is sent.)
  await a.waitForURL((u) => !u.search.includes('_action=compose'), { timeout: 60_000 });
  await inMailbox(a);
  // (A command given while Roundcube is still loading the list is dropped: wait until it is idle, as a person would.)
  await a.waitForFunction(() => !(window as unknown as { rcmail: { busy: boolean } }).rcmail.busy);
  await a.locator('a.logout:visible').first().click();
  await a.locator('#rcmloginuser').waitFor({ timeout: 15_000 }).catch(async (err) => {
    await a.screenshot({ path: '/tmp/wm-logout.png' });
    t.comment(`after logout: ${a.url()} ${(await a.locator('body').innerText()).slice(0, 500)}`);
    throw err;
  });
  await a.goto(`${base}/?_task=mail&_mbox=INBOX`);
  t.ok(await a.locator('#rcmloginuser').isVisible(), 'after signing out, the mailbox shows the login form');
  t.notOk((await a.context().cookies()).some((c) => c.name === 'roundcube_sessauth' && c.value !== '' && c.value !== '-del-'), 'no session cookie is left');
  await a.context().close();

  // A wrong password: a clear message, still on the login form, no session.
  const w = await loginPage();
  await signIn(w, `bob@${DOMAIN}`, 'not-bobs-password');
  await w.getByText('La connexion a échoué.').waitFor({ timeout: 30_000 });
  t.ok(await w.locator('#rcmloginuser').isVisible(), 'a wrong password stays on the login form');
  t.notOk((await w.context().cookies()).some((c) => c.name === 'roundcube_sessauth'), 'a wrong password gets no session');
  await w.context().close();

  // Bob signs in and reads it.
  const b = await loginPage();
  await signIn(b, `bob@${DOMAIN}`, 'bob-secret-22');
  await inMailbox(b);
  const row = b.locator('#messagelist tr', { hasText: 'Fête des voisins' });
  await waitFor('the message in bob\'s list', async () => {
    if (await row.count()) return true;
    await b.locator('a.refresh, button.refresh').first().click().catch(() => undefined);
    return false;
  }, 30_000, 1000);
  // One click shows it in the preview pane (a frame of Roundcube's own).
  await b.waitForFunction(() => !(window as unknown as { rcmail: { busy: boolean } }).rcmail.busy);
  await row.first().click();
  const preview = b.frameLocator('#messagecontframe');
  t.match(await preview.locator('#messagebody').innerText({ timeout: 30_000 }), /rendez-vous samedi dans la cour/, 'bob reads alice\'s message');
  t.match(await preview.locator('body').innerText(), /alice@quartier\.test/i, 'from alice');
  await b.context().close();

  // The instance trusting another CA refuses the mail server's certificate: a connection error, no session.
  const x = await loginPage(`http://127.0.0.1:${wrongCa.json().ports.http}`);
  await signIn(x, `bob@${DOMAIN}`, 'bob-secret-22');
  await x.getByText('Erreur de connexion au serveur de stockage.').waitFor({ timeout: 30_000 });
  t.notOk((await x.context().cookies()).some((c) => c.name === 'roundcube_sessauth'), 'no session with an untrusted mail certificate');
  await x.context().close();
  const logs = (await docker.getContainer(`${config.hosterId}-webmail-autre-ca`).logs({ stdout: true, stderr: true })).toString();
  t.match(logs, /certificate verify failed/, 'because the certificate did not verify');

  t.same(refused, [], 'no request of the pages was refused and no CSP violation was reported');

  // Cookies: HttpOnly and SameSite=Lax always, Secure when the front door says the resident came over HTTPS.
  const plain = await fetch(`${base}/`);
  t.match(plain.headers.get('set-cookie') ?? '', /HttpOnly; SameSite=Lax/);
  t.notMatch(plain.headers.get('set-cookie') ?? '', /secure/i);
  const https = await fetch(`${base}/`, { headers: { 'x-forwarded-proto': 'https' } });
  t.match(https.headers.get('set-cookie') ?? '', /secure; HttpOnly; SameSite=Lax/);
  t.equal(plain.headers.get('x-frame-options'), 'sameorigin');
  t.match(plain.headers.get('content-security-policy') ?? '', /frame-ancestors 'self'/);
  // Nothing but index.php and static files: no installer, no config, no templates, the health page from inside only.
  for (const p of ['/installer/', '/config/config.inc.php', '/skins/elastic/templates/login.html', '/plugins/jqueryui/jqueryui.php', '/cattery-ping', '/.htaccess', '/SQL/sqlite.initial.sql',
    // A PHP file of a plugin followed by a path-info: lighttpd would hand it to PHP as that file.
    '/plugins/jqueryui/jqueryui.php/x', '/plugins/jqueryui/config.inc.php/x', '/program/lib/Roundcube/bootstrap.php/x']) {
    const r = await fetch(`${base}${p}`);
    t.ok([403, 404].includes(r.status), `${p}: ${r.status}`);
  }

  // Hardening as the engine holds it: no capability at all, no-new-privileges, read-only root, www-data.
  const c = await docker.getContainer(`${config.hosterId}-webmail`).inspect();
  t.same(c.HostConfig.CapDrop, ['ALL']);
  t.same(c.HostConfig.CapAdd ?? [], [], 'no capability added back');
  t.same(c.HostConfig.SecurityOpt, ['no-new-privileges:true']);
  t.equal(c.HostConfig.ReadonlyRootfs, true);
  t.equal(c.HostConfig.Privileged, false);
  t.equal(c.Config.User, 'www-data');
  const procs = await execIn(c.Name.slice(1), ['sh', '-c', 'ps -eo user= | sort -u; grep CapEff /proc/1/status; stat -c "%a %U" /var/lib/cattery-webmail /var/lib/cattery-webmail/roundcube.db /run/cattery-webmail/config.inc.php']);
  t.match(procs.out, /^www-data\nCapEff:\s+0{16}\n700 www-data\n600 www-data\n600 www-data\n$/, `every process is www-data with no capability; the database 0700/0600: ${procs.out}`);

  // What it used, for the manifest's limits (cgroup v1 on this engine; v2 reads memory.peak).
  const cg = [`/sys/fs/cgroup/memory/docker/${c.Id}/memory.max_usage_in_bytes`, `/sys/fs/cgroup/system.slice/docker-${c.Id}.scope/memory.peak`].find((f) => fs.existsSync(f));
  const stats = await docker.getContainer(c.Id).stats({ stream: false }) as { memory_stats: { usage?: number }; pids_stats: { current?: number } };
  t.comment(`webmail memory: now ${((stats.memory_stats.usage ?? 0) / 2 ** 20).toFixed(1)} MiB, peak ${cg ? (Number(fs.readFileSync(cg, 'utf8')) / 2 ** 20).toFixed(1) : '?'} MiB; pids now ${stats.pids_stats.current}; total ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // ── the link as a boundary ──────────────────────────────────────────────────────────────────────────────────
  // From the webmail, the mail host's declared ports answer and no other does (cattery's firewall inside the link).
  const reach = (port: number) => execIn(`${config.hosterId}-webmail`, ['php', '-r',
    `$s = @fsockopen('${MAIL_HOST}', ${port}, $e, $m, 3); echo $s ? 'open' : 'closed';`]).then((r) => r.out.trim());
  t.equal(await reach(993), 'open', 'webmail → mail host:993 (imaps, declared)');
  t.equal(await reach(465), 'open', 'webmail → mail host:465 (submissions, declared)');
  t.equal(await reach(25), 'closed', 'webmail → mail host:25 (smtp, not declared by the link): closed');
  // The neighbour reaches the mail container on none of its addresses: its own network's, nor either link's.
  const addresses = Object.values(mailNets).map((n) => n.IPAddress).filter(Boolean);
  t.equal(addresses.length, 3, `the mail container has its own address and one per link (${addresses.join(', ')})`);
  for (const ip of addresses) {
    const probe = await execIn(`${config.hosterId}-voisin`, ['nc', '-w', '3', '-z', ip, '993']);
    t.not(probe.code, 0, `the neighbour cannot reach ${ip}:993`);
  }
  const resolve = await execIn(`${config.hosterId}-voisin`, ['nslookup', MAIL_HOST, '127.0.0.11']);
  t.notMatch(resolve.out, new RegExp(addresses.map((a) => a.replace(/\./g, '\\.')).join('|')), 'nor does the mail host name lead it there');

  // A container made again (a new generation) joins its link again, in the same pass.
  const before = (await docker.getContainer(`${config.hosterId}-webmail-autre-ca`).inspect()).Id;
  const changed = await app.inject({ method: 'PATCH', url: '/api/instances/webmail-autre-ca?wait=true', payload: { env: webmailEnv(good.ca) } });
  t.equal(changed.statusCode, 200, changed.body);
  const after = (await docker.getContainer(`${config.hosterId}-webmail-autre-ca`).inspect()).Id;
  t.not(after, before, 'the webmail container was made again');
  await waitFor('the new container on the link', async () => (await members(linkNet('webmail-autre-ca')))?.names.length === 2, 30_000, 250);
  t.pass('the new container joined the link');

  // The mail instance gets another name: the link follows it (a new generation of each webmail with the new host,
  // the mail container under the new name on the link). `mail.<domain>` is kept while the instance has it.
  const named = (names: string[]) => app.inject({ method: 'PUT', url: '/api/instances/courriel/hostnames', payload: { hostnames: names } });
  t.equal((await named([MAIL_HOST, `imap.${DOMAIN}`])).statusCode, 200);
  await rt.reconciler.trigger('test');
  const g = (await app.inject('/api/instances/webmail')).json().generation;
  t.equal((await named([`imap.${DOMAIN}`])).statusCode, 200);
  await waitFor('the webmail relinked to imap.<domain>', async () => (await app.inject('/api/instances/webmail')).json().linkedEnv.WEBMAIL_IMAP_HOST === `imap.${DOMAIN}`, 30_000, 250);
  t.equal((await app.inject('/api/instances/webmail')).json().generation, g + 1, 'one new generation, carrying the new host (mail.<domain> kept it the same before)');
  await waitFor('the mail container under its new name on the link', async () => {
    const nets = (await docker.getContainer(mailContainer).inspect()).NetworkSettings.Networks as Record<string, { Aliases: string[] | null }>;
    return nets[linkNet('webmail')]?.Aliases?.includes(`imap.${DOMAIN}`);
  }, 60_000, 500);
  t.pass('the link network carries the new name');
  const ops = (await app.inject('/api/instances/webmail/operations')).json() as { kind: string; actor: string }[];
  t.ok(ops.some((o) => o.kind === 'relinked' && o.actor === 'reconciler'), 'the journal says why the webmail was made again');

  // Deleting the linking end removes its link network, the mail container let go first; the other link stays.
  const gone = await app.inject({ method: 'DELETE', url: '/api/instances/webmail-autre-ca?wait=true&purge=true' });
  t.equal(gone.statusCode, 200, gone.body);
  await waitFor('webmail-autre-ca\'s link network removed', async () => (await members(linkNet('webmail-autre-ca'))) === undefined, 30_000, 250);
  t.same((await members(linkNet('webmail')))?.names, [mailContainer, `${config.hosterId}-webmail`].sort(), 'the other link is untouched');

  // Deleting the mail instance removes the last link network; the webmail keeps running and says what is wrong.
  const mailGone = await app.inject({ method: 'DELETE', url: '/api/instances/courriel?wait=true&purge=true' });
  t.equal(mailGone.statusCode, 200, mailGone.body);
  await waitFor('webmail\'s link network removed', async () => (await members(linkNet('webmail'))) === undefined, 30_000, 250);
  const orphaned = await waitFor('the webmail reports its broken link', async () => {
    const v = (await app.inject('/api/instances/webmail')).json();
    // While the deletion runs it says "is being deleted"; once it is over, "was deleted".
    return v.observed === 'unhealthy' && /was deleted/.test(v.lastError ?? '') ? v : undefined;
  }, 30_000, 250);
  t.match(orphaned.lastError, /link "mail": instance "courriel" was deleted/, `a clear error: ${orphaned.lastError}`);
  t.same(orphaned.links, { mail: 'courriel' }, 'the link is still on record (an administrator relinks it)');
  t.ok((await docker.getContainer(`${config.hosterId}-webmail`).inspect()).State.Running, 'the webmail itself did not crash');
  const relink = await app.inject({ method: 'PATCH', url: '/api/instances/webmail', payload: { links: { mail: 'courriel' } } });
  t.equal(relink.statusCode, 400, 'relinking to the deleted instance is refused');
  t.equal(relink.json().code, 'CATTERY_ERR_LINK');
});
