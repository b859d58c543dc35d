// A decision that acts, end to end in Chromium with JavaScript off (issue 11, "Tests"): the board puts "open pads to
// sign-up" to the members' vote (pads closed first), members vote on their page, the poll closes on cattery's own
// upkeep timer, the action applies, and the sign-up page then offers pads; a second proposal that misses its quorum
// changes nothing. Then axe-core on every governance page, in the states a person meets them in (the application
// form, a member's page, ballots of every kind and for a proxy, a refused vote, the register, a decision with its
// count per college, the board's pages, the members and dues pages, the mediators' list): no violation.
import { createRequire } from 'node:module';
import t from 'tap';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createUser, findByLogin } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { admit, applyForMembership, updateMember } from '../../src/governance/members.js';
import { recordPayment } from '../../src/governance/dues.js';
import { closeDuePolls, createMeeting, createPoll, giveProxy, getPoll } from '../../src/governance/polls.js';
import { queueReminders } from '../../src/governance/reminders.js';
import { replaceColleges, serviceSettingsMap, setServiceSettings, upsertCategory } from '../../src/governance/settings.js';
import { testRuntime, waitFor } from '../helpers.js';
import { freePort } from '../identity/provider.js';

const axeSource: string = createRequire(import.meta.url)('axe-core').source;
const iso = (ms: number) => new Date(Date.now() + ms).toISOString();

t.test('a board proposal passes in Chromium and opens pads to sign-up; one without its quorum changes nothing', async (t) => {
  const started = Date.now();
  const port = await freePort();
  const rt = await testRuntime(t, { port, publicUrl: `http://127.0.0.1:${port}` });
  const base = await rt.app.listen({ host: '127.0.0.1', port });
  const { db, catalog } = rt;
  const deps = { db, catalog };
  replaceColleges(db, [
    { slug: 'habitants', nameFr: 'Habitantes et habitants', nameEn: 'Residents', weightPct: null },
    { slug: 'benevoles', nameFr: 'Bénévoles', nameEn: 'Volunteers', weightPct: null },
  ], 'test');
  upsertCategory(db, { slug: 'normale', nameFr: 'Normale', nameEn: 'Normal', amountCents: 1200, period: 'year' }, 'test');
  // The association closed pads to sign-up; the vote is to open it again.
  setServiceSettings(db, catalog, 'pads', { openForSignup: false }, 'test');

  const lap = (what: string) => t.comment(`${what}: ${Date.now() - started} ms`);
  lap('runtime');
  const members: Record<string, number> = {};
  for (const [login, name, college, board] of [['alice', 'Alice Martin', 'habitants', true], ['bruno', 'Bruno Petit', 'habitants', false],
    ['chloe', 'Chloé Durand', 'benevoles', false], ['denis', 'Denis Lefort', 'benevoles', false]] as const) {
    const u = await createUser(db, { login, name, roles: ['resident'], ...(login === 'denis' ? {} : { password: `la phrase de ${login}` }) });
    const m = applyForMembership(db, { kind: 'person', name, userId: u.id, college, category: 'normale' }, 'test');
    admit(db, m.id, 'test');
    if (board) updateMember(db, m.id, { board: true }, 'test');
    // Denis paid long ago: lapsed, he does not count in the quorum nor vote.
    recordPayment(db, m.id, { amountCents: 1200, method: 'cash', ...(login === 'denis' ? { paidOn: '2021-02-01' } : {}) }, 'test');
    members[login] = m.id;
  }
  const admin = await createUser(db, { login: 'admin.asso', name: 'Admin Asso', roles: ['admin'] });
  const camille = await createUser(db, { login: 'camille', name: 'Camille Aidante', roles: ['mediator'] });
  const emma = await createUser(db, { login: 'emma', name: 'Emma Roux', roles: ['resident'] });

  const browser: Browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  const signIn = async (login: string, password: string) => {
    const context = await browser.newContext({ javaScriptEnabled: false, locale: 'fr-FR' });
    const page = await context.newPage();
    await page.goto(`${base}/login`);
    await page.getByLabel('Identifiant').fill(login);
    await page.getByLabel('Mot de passe').fill(password);
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.waitForURL(`${base}/me`);
    return { context, page };
  };
  // The people who only look at their pages here come with a session already made (signing in is shown above).
  const withSession = async (userId: number) => {
    const context = await browser.newContext({ javaScriptEnabled: false, locale: 'fr-FR' });
    await context.addCookies([{ name: 'cattery_session', value: createSession(db, { idleMinutes: 60, maxHours: 2 }, userId, 'password'), url: base }]);
    return { context, page: await context.newPage() };
  };

  // axe runs as a script: in a page of its own with JavaScript on and the CSP bypassed, with the person's cookies.
  const axeContext = await browser.newContext({ bypassCSP: true, locale: 'fr-FR' });
  const violations: Record<string, string[]> = {};
  const audit = async (name: string, who: { context: BrowserContext; page: Page } | null, url: string, html?: string) => {
    await axeContext.clearCookies();
    if (who) await axeContext.addCookies(await who.context.cookies());
    const page = await axeContext.newPage();
    if (html !== undefined) await page.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: html }));
    await page.goto(url);
    await page.addScriptTag({ content: axeSource });
    violations[name] = await page.evaluate(async () => {
      const r = await (window as unknown as { axe: { run(o: unknown): Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }> } })
        .axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
      return r.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    });
    await page.close();
  };

  lap('set-up');
  // ── The board puts two proposals to the members' vote ──
  const alice = await signIn('alice', 'la phrase de alice');
  await alice.page.goto(`${base}/board`);
  await audit('board', alice, `${base}/board`);
  const propose = async (title: string, quorum: string, action: string, service: string) => {
    const form = alice.page.locator('form[action="/board/polls"]');
    await form.getByLabel('Type de vote').selectOption('proposal');
    await form.getByLabel('Titre de la question').fill(title);
    await form.getByLabel('Texte soumis au vote').fill(`${title} : le bureau le propose aux membres.`);
    await form.getByLabel('Vote secret').check();
    await form.getByLabel('Quorum (en %)').fill(quorum);
    await form.getByLabel('Action', { exact: true }).selectOption(action);
    await form.getByLabel('Service concerné').selectOption(service);
    await form.getByRole('button', { name: 'Créer le vote' }).click();
    await alice.page.waitForURL(`${base}/board?done=poll`);
    t.match(await alice.page.locator('[role=status]').textContent(), /Le vote est créé/);
  };
  await propose('Ouvrir les pads à l’inscription', '50', 'signup-open', 'pads');
  await propose('Fermer les fichiers à l’inscription', '100', 'signup-close', 'files');
  const pollId = (title: string) => (db.$client.prepare('select id from polls where title = ?').get(title) as { id: number }).id;
  const padsPoll = pollId('Ouvrir les pads à l’inscription');
  const filesPoll = pollId('Fermer les fichiers à l’inscription');
  t.same(getPoll(db, padsPoll).action, { type: 'service.signup', service: 'pads', open: true });

  lap('proposals');
  // ── Members vote on their page ──
  const vote = async (who: { page: Page }, title: string, answer: string) => {
    await who.page.goto(`${base}/votes`);
    const section = who.page.locator('section', { has: who.page.getByRole('heading', { name: title }) });
    await section.getByLabel(answer, { exact: true }).check();
    await section.getByRole('button', { name: 'Voter', exact: true }).click();
    await who.page.waitForURL(/\/votes\?done=\d+$/);
    t.match(await who.page.locator('[role=status]').textContent(), new RegExp(`Votre vote sur « ${title} » est enregistré`));
  };
  const bruno = await signIn('bruno', 'la phrase de bruno');
  const chloe = await signIn('chloe', 'la phrase de chloe');
  await bruno.page.goto(`${base}/votes`);
  t.match(await bruno.page.locator('main').textContent(), /Ouvrir l’inscription au service pads/, 'the ballot says what the proposal does');
  await vote(alice, 'Ouvrir les pads à l’inscription', 'Pas d’accord');
  await vote(bruno, 'Ouvrir les pads à l’inscription', 'D’accord');
  await vote(chloe, 'Ouvrir les pads à l’inscription', 'D’accord');
  await vote(bruno, 'Fermer les fichiers à l’inscription', 'D’accord');
  // A second ballot from the same person is refused, in words.
  await bruno.page.goto(`${base}/votes`);
  t.match(await bruno.page.locator('main').textContent(), /Vous avez voté/);
  const refusedVote = await bruno.page.request.post(`${base}/votes/${padsPoll}`, {
    form: { _csrf: (await bruno.page.locator('input[name=_csrf]').first().getAttribute('value'))!, choice: 'disagree' },
    headers: { origin: base },
  });
  t.equal(refusedVote.status(), 409);
  const refusedHtml = await refusedVote.text();
  t.match(refusedHtml, /Vous avez déjà voté/);
  await audit('votes (refused)', bruno, `${base}/votes/${padsPoll}`, refusedHtml);

  lap('votes');
  // ── Time is up: cattery's upkeep closes and counts both, and applies what passed ──
  t.same(serviceSettingsMap(db).get('pads')?.openForSignup, false, 'pads is closed before the count');
  db.$client.prepare('update polls set closes_at = ? where id in (?, ?)').run(iso(-1000), padsPoll, filesPoll);
  await waitFor('the upkeep counts both polls', async () => getPoll(db, padsPoll).closedAt !== null && getPoll(db, filesPoll).closedAt !== null, 60_000, 250);
  t.match(getPoll(db, padsPoll), { outcome: 'passed', actionStatus: 'applied' });
  t.match(getPoll(db, filesPoll), { outcome: 'no_quorum', actionStatus: 'none' });

  lap('counted');
  const visitor = await browser.newContext({ javaScriptEnabled: false, locale: 'fr-FR' });
  const v = await visitor.newPage();
  await v.goto(`${base}/signup`);
  t.equal(await v.locator('#svc-pads').count(), 1, 'the sign-up page now offers pads');
  t.equal(await v.locator('#svc-files').count(), 1, 'and still offers files: the failed proposal changed nothing');
  t.same(serviceSettingsMap(db).get('files'), undefined, 'no setting was written for files');

  await v.goto(`${base}/decisions`);
  t.match(await v.locator('table').textContent(), /Ouvrir les pads à l’inscription[\s\S]*Adoptée/);
  await audit('decisions', null, `${base}/decisions`);
  await v.getByRole('link', { name: 'Ouvrir les pads à l’inscription' }).click();
  const passed = (await v.locator('main').textContent())!;
  t.match(passed, /Ouvrir l’inscription au service pads — appliquée/);
  t.match(passed, /Quorum atteint : 3 membres sur 3 appelés à voter ont voté/);
  t.match(passed, /Habitantes et habitants/);
  t.match(passed, /Bénévoles/);
  await audit('decision (passed)', null, v.url());
  await v.goto(`${base}/decisions/${filesPoll}?lang=en`);
  t.match(await v.locator('main').textContent(), /Quorum not reached: 1 of the 3 members called to vote took part/);
  t.match(await v.locator('main').textContent(), /Close sign-up to the files service — not applied/);
  await audit('decision (no quorum, en)', null, `${base}/decisions/${filesPoll}?lang=en`);

  lap('register');
  // ── Every other page, in the states a person meets it in ──
  const ag = createMeeting(db, { kind: 'general', title: 'Assemblée générale 2026', startsAt: iso(0), agenda: '1. Rapport moral\n2. Budget', quorumPct: 25 }, 'test');
  giveProxy(db, ag.id, members.chloe!, members.bruno!, 'test');
  createPoll(deps, { kind: 'single', title: 'Jour du café numérique', options: ['Mardi', 'Samedi'], secret: false, opensAt: iso(-60_000), closesAt: iso(3_600_000), meetingId: ag.id }, 'test');
  createPoll(deps, { kind: 'judgment', title: 'Nom du service de pads', options: ['Pads', 'Bloc-notes', 'Cahiers'], secret: true, opensAt: iso(-60_000), closesAt: iso(3_600_000), meetingId: ag.id }, 'test');
  createPoll(deps, { kind: 'ranked', title: 'Priorités pour 2027', options: ['Visio', 'Agenda', 'Sondages'], secret: true, opensAt: iso(-60_000), closesAt: iso(3_600_000) }, 'test');
  const counted = createPoll(deps, { kind: 'proposal', title: 'Approuver les comptes', secret: false, opensAt: iso(-60_000), closesAt: iso(3_600_000), meetingId: ag.id }, 'test');
  await vote(alice, 'Approuver les comptes', 'D’accord');
  db.$client.prepare('update polls set closes_at = ? where id = ?').run(iso(-1000), counted.id);
  closeDuePolls(deps);
  await bruno.page.goto(`${base}/votes`);
  t.match(await bruno.page.locator('main').textContent(), /Procuration de Chloé Durand/, 'the proxy holder votes for the giver too');
  await audit('votes (every kind, a proxy)', bruno, `${base}/votes`);
  await alice.page.goto(`${base}/board/meetings/${ag.id}`);
  t.match(await alice.page.locator('main').textContent(), /Chloé Durand a donné sa procuration à Bruno Petit/);
  await alice.page.getByRole('button', { name: 'Noter Bruno Petit présent·e' }).click();
  t.match(await alice.page.locator('[role=status]').textContent(), /La présence est enregistrée/);
  t.match(await alice.page.locator('main').textContent(), /Quorum atteint/, 'Bruno present and Chloé represented: 2 of 3');
  await audit('board meeting', alice, `${base}/board/meetings/${ag.id}`);
  await audit('membership (member)', bruno, `${base}/me/membership`);
  const denis = await withSession(findByLogin(db, 'denis')!.id);
  await audit('votes (lapsed)', denis, `${base}/votes`);
  const emmaIn = await withSession(emma.id);
  await emmaIn.page.goto(`${base}/me/membership`);
  await audit('membership (not a member)', emmaIn, `${base}/me/membership`);
  await emmaIn.page.getByRole('button', { name: 'Envoyer ma demande d’adhésion' }).click();
  t.match(await emmaIn.page.locator('main').textContent(), /Choisissez un collège/, 'the mistake is said next to the field');
  await audit('membership (form errors)', emmaIn, `${base}/me/membership/apply`, await emmaIn.page.content());
  await emmaIn.page.getByLabel('Bénévoles').check();
  await emmaIn.page.getByLabel(/Normale/).check();
  await emmaIn.page.getByRole('button', { name: 'Envoyer ma demande d’adhésion' }).click();
  t.match(await emmaIn.page.locator('[role=status]').textContent(), /Votre demande d’adhésion est envoyée/);
  await audit('membership (applicant)', emmaIn, `${base}/me/membership`);
  const adminIn = await withSession(admin.id);
  await adminIn.page.goto(`${base}/admin/members`);
  await audit('admin members', adminIn, `${base}/admin/members`);
  await adminIn.page.getByRole('button', { name: 'Admettre Emma Roux' }).click();
  t.match(await adminIn.page.locator('[role=status]').textContent(), /Emma Roux est admis·e/);
  await audit('admin members (en)', adminIn, `${base}/admin/members?lang=en`);
  await audit('admin dues', adminIn, `${base}/admin/dues`);
  queueReminders(db, false);
  const camilleIn = await withSession(camille.id);
  await camilleIn.page.goto(`${base}/mediator/dues`);
  t.match(await camilleIn.page.locator('table').textContent(), /Denis Lefort/, 'the lapsed member without email is on the mediators\' list');
  await audit('mediator dues', camilleIn, `${base}/mediator/dues`);
  await audit('board (en)', alice, `${base}/board?lang=en`);

  for (const [name, list] of Object.entries(violations)) t.same(list, [], `axe: no violation on ${name}`);
  t.ok(Object.keys(violations).length >= 17, `${Object.keys(violations).length} page states audited`);
  t.comment(`vote browser test: ${Date.now() - started} ms`);
});
