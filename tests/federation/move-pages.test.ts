// A resident moves from A to B through the pages only, in Chromium (issue 14): on A's "my services" she chooses B and
// gets the code (its page, large); on B's "I am moving from another hoster" she gives A and the code and chooses her
// password there; B pulls, checks and imports, makes her a person of its own with the accounts, and signs her in;
// back on A she sees the receipt and confirms, and only then do her accounts go at A. Her file is read back at B over
// WebDAV with the password chosen at B. Beside it, through the same pages: the code refused at B once used, a name
// taken at B, an expired code, each said in words; a mediator's move with the consent recorded, then cancelled. Every
// page on the way passes axe-core. Two real catteries on loopback HTTPS (tests/federation/move-catteries.ts), Chromium
// trusting the test CA in its own NSS store.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { eq } from 'drizzle-orm';
import { chromium, type Page } from 'playwright-core';
import { assignAccount, getAccount } from '../../src/accounts/accounts.js';
import { createUser, findByLogin } from '../../src/identity/users.js';
import { fedMovesIn, fedMovesOut } from '../../src/federation/schema.js';
import { CHROMIUM_ARGS, axeViolations, steadily } from '../chromium.js';
import { pageBrowser } from '../page-browser.js';
import { waitFor } from '../helpers.js';
import { api, twoWithFiles, type Cattery } from './move-catteries.js';

const PASS_A = 'alice-secret-at-a', PASS_B = 'une phrase choisie chez B';

t.test('a resident moves from A to B through the pages', async (t) => {
  const { a, b, home, caFile, ports, bAtA, aAtB } = await twoWithFiles(t, 'cattery-move-pages-');
  // Pinned, the peers' documents are in: each says it has room for files (the directory the pages offer from).

  const resident = async (login: string, name: string) => {
    const u = await createUser(a.rt.db, { login, name, roles: ['resident'], password: PASS_A });
    t.equal((await api(a, 'POST', '/api/instances/fichiers/accounts', { username: login, password: PASS_A, quotaMb: 20 })).status, 201);
    assignAccount(a.rt.db, getAccount(a.rt.db, 'fichiers', login).id, u.id);
    return u;
  };
  const alice = await resident('alice', 'Alice Martin');
  const bruno = await resident('bruno', 'Bruno Petit');
  await createUser(a.rt.db, { login: 'camille', name: 'Camille Aidante', roles: ['mediator'], password: 'mediatrice-password' });
  const dav = (x: Cattery, p: string, init: RequestInit, user: string, password: string) => fetch(`http://127.0.0.1:${ports[x.url]}${p}`,
    { ...init, headers: { ...(init.headers ?? {}), authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } });
  t.equal((await dav(a, '/alice/lettre.txt', { method: 'PUT', body: 'Chère voisine, nous déménageons.' }, 'alice', PASS_A)).status, 201);

  // Chromium trusts the test CA through its own NSS store (as tests/ingress/wss.test.ts), nothing turned off.
  const nssdb = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(nssdb, { recursive: true, mode: 0o700 });
  execFileSync('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'cattery move test CA', '-i', caFile]);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', env: { ...process.env, HOME: home }, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const problems: string[] = [];
  /** axe on the page as the person sees it (a copy of its HTML in a page of its own, where a script may run). */
  const axeContext = await browser.newContext({ bypassCSP: true });
  const audit = async (p: Page, what: string) => {
    const html = await p.content();
    const copy = await axeContext.newPage();
    await copy.route(p.url(), (route) => route.fulfill({ status: 200, contentType: 'text/html', body: html }));
    await steadily(() => copy.goto(p.url()));
    for (const v of await axeViolations(copy)) problems.push(`${what}: axe ${v.id} on ${v.nodes.join(', ')}`);
    await copy.close();
  };
  // JavaScript off, as the pages need none; axe runs in its own context (above).
  const atA = await (await browser.newContext({ locale: 'fr-FR', javaScriptEnabled: false })).newPage();
  const atB = await (await browser.newContext({ locale: 'fr-FR', javaScriptEnabled: false })).newPage();

  // ── At A: Alice signs in, chooses B, gets the code ──
  await steadily(() => atA.goto(`${a.url}/login`));
  await atA.fill('#login', 'alice');
  await atA.fill('#password', PASS_A);
  await atA.click('button[type=submit]');
  await atA.waitForURL(`${a.url}/me`);
  await audit(atA, 'A /me, the move form');
  await atA.check(`#move-peer-${bAtA}`);
  await atA.getByRole('button', { name: 'Préparer mon déménagement' }).click();
  await atA.waitForSelector('#move-code');
  await audit(atA, 'A, the code page');
  const code = (await atA.textContent('#move-code'))!.trim().split(/\s+/).join('-');
  t.match(code, /^([0-9A-HJKMNP-TV-Z]{4}-){7}[0-9A-HJKMNP-TV-Z]{4}$/, 'the code, in groups of four');
  t.match(await atA.textContent('main'), /ne sera plus jamais affiché/);
  t.match(await atA.textContent('main'), new RegExp(`${b.url}/signup/move`), 'where to give it');
  await steadily(() => atA.goto(`${a.url}/me`));
  t.notMatch(await atA.content(), new RegExp(code), 'the code is not shown again');
  t.match(await atA.textContent('#main'), /Le code attend d’être donné à Chatons de Béville/);

  // ── At B: the arrival, by the pages, JavaScript off ──
  await steadily(() => atB.goto(`${b.url}/signup`));
  await atB.click('a[href="/signup/move"]');
  await audit(atB, 'B /signup/move');
  const arrive = async (source: number, typed: string, password = PASS_B) => {
    await steadily(() => atB.goto(`${b.url}/signup/move`));
    await atB.selectOption('#source', String(source));
    await atB.fill('#code', typed);
    await atB.fill('#password', password);
    await atB.fill('#password2', password);
    await atB.check('#terms-box');
    await atB.getByRole('button', { name: 'Faire venir mes comptes' }).click();
    await atB.waitForLoadState();
  };
  // A wrong code first: a valid form, no such move at A.
  await arrive(aAtB, code.replace(/^..../, code.startsWith('0000') ? '1111' : '0000'));
  t.match(await atB.textContent('#main'), /Ce code ne correspond à aucun déménagement/, 'a wrong code, said next to the field');
  await audit(atB, 'B /signup/move, a refusal');
  t.equal(getAccount(a.rt.db, 'fichiers', 'alice').state, 'active', 'nothing happened at A');
  // A's receipt route down once: B has imported (with the password typed then) but the receipt did not go; A still
  // waits. The retry, with another password, finishes the move, and that password is the one everywhere at B.
  a.forge.set('/api/federation/moves/receipt', (req, res) => { a.forge.delete('/api/federation/moves/receipt'); req.resume(); res.writeHead(503).end(); });
  await arrive(aAtB, code, 'un premier mot de passe oublié');
  t.match(await atB.textContent('#main'), /Votre ancien hébergeur ne répond pas/, 'a source that does not answer, said in words');
  t.equal(b.rt.db.select().from(fedMovesIn).get()?.state, 'imported', 'imported at B, the receipt still to send');
  t.equal(a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.userId, alice.id)).get()?.state, 'transferring', 'A has no receipt yet');
  // Typed as a person might: lower case, spaces instead of dashes.
  await arrive(aAtB, code.toLowerCase().replace(/-/g, ' '));
  t.equal(new URL(atB.url()).pathname, '/me', 'signed in at B, on "my services"');
  t.match(await atB.textContent('#main'), /Bienvenue ! Vos comptes sont arrivés ici/);
  await audit(atB, 'B /me after the arrival');
  const newcomer = findByLogin(b.rt.db, 'alice');
  t.ok(newcomer, 'a person of B\'s own, with her login');
  t.equal(newcomer?.name, 'Alice Martin', 'and her name, from the manifest');
  t.equal(getAccount(b.rt.db, 'fichiers', 'alice').userId, newcomer?.id, 'the account is hers at B');
  t.equal(await (await dav(b, '/alice/lettre.txt', { method: 'GET' }, 'alice', PASS_B)).text(), 'Chère voisine, nous déménageons.', 'her file at B, with the password chosen at B');
  t.equal((b.rt.db.$client.prepare("select count(*) n from signups where user_id = ? and status = 'approved' and terms_version = ?").get(newcomer!.id, b.rt.config.termsVersion) as { n: number }).n, 1, 'B\'s terms accepted, recorded');

  // The code again at B: used.
  const bCtx = await browser.newContext({ locale: 'fr-FR', javaScriptEnabled: false });
  const again = await bCtx.newPage();
  await steadily(() => again.goto(`${b.url}/signup/move`));
  await again.selectOption('#source', String(aAtB));
  await again.fill('#code', code);
  await again.fill('#password', PASS_B); await again.fill('#password2', PASS_B);
  await again.check('#terms-box');
  await again.getByRole('button', { name: 'Faire venir mes comptes' }).click();
  await again.waitForLoadState();
  t.match(await again.textContent('#main'), /Ce code a déjà servi/, 'a code used once is refused, in words');
  await bCtx.close();

  // ── Back at A: the receipt is in; nothing deleted before the confirmation ──
  t.equal(getAccount(a.rt.db, 'fichiers', 'alice').state, 'active', 'A still has her account after the receipt');
  await steadily(() => atA.goto(`${a.url}/me`));
  t.match(await atA.textContent('#main'), /Chatons de Béville a reçu toutes vos données/);
  await audit(atA, 'A /me, the receipt in');
  await atA.check('#move-confirm');
  await atA.getByRole('button', { name: 'Confirmer : supprimer mes comptes ici' }).click();
  await atA.waitForURL(/done=moved/);
  t.match(await atA.textContent('#main'), /Le déménagement est terminé/);
  await waitFor('alice gone at A', async () => { try { return getAccount(a.rt.db, 'fichiers', 'alice').state === 'deleted'; } catch { return true; } }, 30_000, 300);
  t.equal((await dav(a, '/alice/lettre.txt', { method: 'GET' }, 'alice', PASS_A)).status, 401, 'her account at A is gone');
  t.equal(a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.userId, alice.id)).get()?.state, 'done');

  // ── A mediator at A, for Bruno: the consent recorded; refusals at B said in words; cancelled ──
  const med = pageBrowser(a.rt.app, { authorization: null });
  const signedIn = await med.post('/login', { login: 'camille', password: 'mediatrice-password' }, { csrfFrom: '/login' });
  t.equal(signedIn.statusCode, 303);
  const started = await med.post('/mediator/moves', { userId: String(bruno.id), peer: String(bAtA), consent: a.rt.config.termsVersion }, { csrfFrom: '/mediator/moves?login=bruno' });
  t.equal(started.statusCode, 201, 'the code page');
  t.match(started.body, /Pour : Bruno Petit/);
  const brunoCode = [...started.body.matchAll(/<span>([0-9A-Z]{4})<\/span>/g)].map((m) => m[1]).join('-');
  const row = a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.userId, bruno.id)).get()!;
  t.match(row.consent, new RegExp(`mediator camille \\(Camille Aidante\\) at \\d{4}-\\d\\d-\\d\\dT.*terms version ${a.rt.config.termsVersion}`), 'who, when and which terms, on the move');
  t.equal(row.startedBy, 'user:camille', 'started by the mediator');
  // A person named bruno exists at B already: the move cannot keep his name there.
  await createUser(b.rt.db, { login: 'bruno', name: 'Bruno Autre', roles: ['resident'] });
  await arrive(aAtB, brunoCode);
  t.match(await atB.textContent('#main'), /Le nom « bruno » est déjà pris ici/, 'a name taken at B');
  a.rt.db.update(fedMovesOut).set({ expiresAt: new Date(Date.now() - 1000).toISOString() }).where(eq(fedMovesOut.id, row.id)).run();
  await arrive(aAtB, brunoCode);
  t.match(await atB.textContent('#main'), /Ce code a expiré/, 'an expired code');
  t.equal(b.rt.db.select().from(fedMovesIn).all().length, 1, 'B kept only Alice\'s move');
  const cancelled = await med.post(`/mediator/moves/${row.id}/cancel`, { userId: String(bruno.id) }, { csrfFrom: '/mediator/moves?login=bruno' });
  t.equal(cancelled.statusCode, 303);
  t.equal(a.rt.db.select().from(fedMovesOut).where(eq(fedMovesOut.id, row.id)).get()?.state, 'cancelled');
  t.equal(getAccount(a.rt.db, 'fichiers', 'bruno').state, 'active', 'Bruno keeps his account at A');

  t.same(problems, [], 'every page on the way passes axe-core');
});
