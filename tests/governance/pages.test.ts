// The governance pages through the app, with real sessions (issue 11, "Pages and API" and "Tests"): each page renders
// for the roles that may see it, in French and English; a person applies, the board admits, the treasurer records a
// payment; a member votes once only (also under 20 POSTs at once: one ballot stored, the others refused), not after
// the close, not for a member whose proxy they do not hold, not while their dues are lapsed, and every refusal is
// said in plain French; proxies stop at the statutes' number; the register shows a closed decision per college and
// never an open poll; the treasurer's CSV files neutralise spreadsheet formulas, checked with generated values.
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { createSession } from '../../src/identity/sessions.js';
import { admit, applyForMembership, getMember, updateMember } from '../../src/governance/members.js';
import { recordPayment } from '../../src/governance/dues.js';
import { closeDuePolls, createMeeting, createPoll, getPoll } from '../../src/governance/polls.js';
import { replaceColleges, upsertCategory } from '../../src/governance/settings.js';
import { csvCell } from '../../src/http/pages/dues-pages.js';
import { localInput } from '../../src/http/pages/gov-view.js';
import { pageBrowser } from '../page-browser.js';
import { testConfig } from '../helpers.js';

const unescape = (s: string) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const text = (html: string) => unescape(html.replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ');
const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
const iso = (ms: number) => new Date(Date.now() + ms).toISOString();

/** RFC 4180, as a spreadsheet reads it: quoted fields with doubled quotes, CRLF between records. */
function parseCsv(body: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = []; let cell = ''; let quoted = false;
  const s = body.replace(/^\ufeff/, '');
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted) {
      if (c === '"' && s[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; }
    else if (c === '\r' && s[i + 1] === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; i++; }
    else cell += c;
  }
  return rows;
}

t.test('governance pages', async (t) => {
  const started = Date.now();
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const db = rt.db;
  const deps = { db, catalog: rt.catalog };
  replaceColleges(db, [
    { slug: 'habitants', nameFr: 'Habitantes et habitants', nameEn: 'Residents', weightPct: null },
    { slug: 'benevoles', nameFr: 'Bénévoles', nameEn: 'Volunteers', weightPct: null },
  ], 'test');
  upsertCategory(db, { slug: 'normale', nameFr: 'Normale', nameEn: 'Normal', amountCents: 1000, period: 'year' }, 'test');
  upsertCategory(db, { slug: 'solidaire', nameFr: 'Solidaire', nameEn: 'Solidarity', amountCents: 200, period: 'year' }, 'test');

  const policy = { idleMinutes: 60, maxHours: 2 };
  const person = async (login: string, name: string, roles: ('resident' | 'admin' | 'mediator' | 'city')[] = ['resident']) => {
    const u = await createUser(db, { login, name, roles });
    const b = pageBrowser(rt.app);
    b.jar.set('cattery_session', createSession(db, policy, u.id, 'password'));
    return { u, b };
  };
  /** An admitted member of a college, dues paid today (or on a day long gone: lapsed). */
  const member = async (login: string, name: string, college: string, opts: { board?: boolean; paidOn?: string } = {}) => {
    const p = await person(login, name);
    const m = applyForMembership(db, { kind: 'person', name, userId: p.u.id, college, category: 'normale' }, 'test');
    admit(db, m.id, 'test');
    if (opts.board) updateMember(db, m.id, { board: true }, 'test');
    recordPayment(db, m.id, { amountCents: 1000, method: 'cash', ...(opts.paidOn ? { paidOn: opts.paidOn } : {}) }, 'test');
    return { ...p, m: getMember(db, m.id) };
  };

  const admin = await person('admin.asso', 'Admin Asso', ['admin']);
  const mediator = await person('camille', 'Camille Aidante', ['mediator']);
  const city = await person('mairie', 'La Mairie', ['city']);
  const alice = await member('alice', 'Alice Martin', 'habitants', { board: true });
  const bruno = await member('bruno', 'Bruno Petit', 'habitants');
  const chloe = await member('chloe', 'Chloé Durand', 'benevoles');
  const denis = await member('denis', 'Denis Lefort', 'benevoles', { paidOn: '2020-03-01' });
  const emma = await person('emma', 'Emma Roux');
  const anonymous = pageBrowser(rt.app);

  await t.test('a person applies on their page, the board admits, the treasurer records the dues', async (t) => {
    let r = await emma.b.get('/me/membership');
    t.equal(r.statusCode, 200);
    t.match(text(r.body), /Demander à adhérer/);
    t.match(r.body, 'value="habitants"', 'the colleges are offered');
    r = await emma.b.post('/me/membership/apply', { name: 'Emma Roux', email: '', category: 'solidaire' }, { csrfFrom: '/me/membership' });
    t.equal(r.statusCode, 400, 'no college chosen');
    t.match(text(r.body), /Choisissez un collège/);
    r = await emma.b.post('/me/membership/apply', { name: 'Emma Roux', email: 'emma@exemple.fr', college: 'benevoles', category: 'solidaire' }, { csrfFrom: '/me/membership' });
    t.equal(r.statusCode, 303);
    r = await emma.b.get('/me/membership?done=applied');
    t.match(text(r.body), /Votre demande d’adhésion est envoyée/);
    t.match(text(r.body), /attend la réponse du bureau/);
    r = await emma.b.post('/me/membership/apply', { name: 'Emma Roux', college: 'benevoles' }, { csrfFrom: '/me/membership' });
    t.equal(r.statusCode, 409, 'not twice');
    t.match(text(r.body), /votre demande est déjà en cours/);

    r = await alice.b.get('/admin/members');
    t.equal(r.statusCode, 200, 'the board sees the members page');
    t.match(text(r.body), /Emma Roux/);
    t.match(r.body, /action="\/admin\/members\/\d+\/admit"/, 'with the button that admits');
  });

  await t.test('every page renders for its roles, in French and in English', async (t) => {
    const pages: [ReturnType<typeof pageBrowser>, string, RegExp][] = [
      [bruno.b, '/me/membership', /Votre cotisation est payée jusqu’au 31 décembre/],
      [bruno.b, '/me/membership?lang=en', /Your dues are paid until 31 December/],
      [bruno.b, '/votes', /Aucun vote n’est ouvert/],
      [anonymous, '/decisions', /Aucune décision pour le moment/],
      [anonymous, '/decisions?lang=en', /No decision yet/],
      [alice.b, '/board', /Convoquer une assemblée/],
      [admin.b, '/board?lang=en', /Call an assembly/],
      [alice.b, '/admin/members', /Demandes d’adhésion/],
      [admin.b, '/admin/members?lang=en', /Applications/],
      [admin.b, '/admin/dues', /3 à jour, 0 en délai de grâce, 1 non payées/],
      [mediator.b, '/mediator/dues', /Rappels de cotisation à transmettre/],
      [admin.b, '/mediator/dues?lang=en', /Dues reminders to pass on/],
      [city.b, '/me/membership', /Demander à adhérer/],
    ];
    for (const [b, url, re] of pages) {
      const r = await b.get(url);
      t.equal(r.statusCode, 200, `${url}: 200`);
      t.match(text(r.body), re, `${url}: says what it is for`);
      b.jar.delete('lang');
    }
    // The menu follows the roles membership gives.
    t.match((await bruno.b.get('/me')).body, 'href="/votes"', 'a member is offered the votes');
    t.notMatch((await bruno.b.get('/me')).body, 'href="/board"');
    t.match((await alice.b.get('/me')).body, 'href="/board"', 'a board member is offered the board');
    t.notMatch((await emma.b.get('/me')).body, 'href="/votes"');
    // And no one else: each page's own refusal, as the role matrix checks for every route.
    for (const [b, url] of [[bruno.b, '/board'], [bruno.b, '/admin/members'], [alice.b, '/admin/dues'], [emma.b, '/votes'], [city.b, '/votes'], [city.b, '/admin/members.csv'], [bruno.b, '/mediator/dues']] as const) {
      const r = await b.get(url);
      t.equal(r.statusCode, 403, `${url} refused`);
    }
  });

  await t.test('the board admits; only an administrator records a payment; exclusion needs its reason and decision', async (t) => {
    const emmaId = db.$client.prepare("select id from members where name = 'Emma Roux'").get() as { id: number };
    let r = await alice.b.post(`/admin/members/${emmaId.id}/admit`, {}, { csrfFrom: '/admin/members' });
    t.equal(r.statusCode, 303);
    t.match(text((await alice.b.get(r.headers.location as string)).body), /Emma Roux est admis·e/);
    t.match((await emma.b.get('/me')).body, 'href="/votes"', 'once admitted, the menu offers the votes');
    r = await alice.b.post(`/admin/members/${emmaId.id}/payments`, { amount: '2', method: 'cash' }, { csrfFrom: '/admin/members' });
    t.equal(r.statusCode, 403, 'the board does not keep the accounts');
    r = await admin.b.post(`/admin/members/${emmaId.id}/payments`, { amount: '2,00', method: 'cheque', reference: '' }, { csrfFrom: '/admin/members' });
    t.equal(r.statusCode, 400, 'a cheque needs its number');
    t.match(text(r.body), /référence du chèque/);
    r = await admin.b.post(`/admin/members/${emmaId.id}/payments`, { amount: 'deux', method: 'cash' }, { csrfFrom: '/admin/members' });
    t.equal(r.statusCode, 400);
    t.match(text(r.body), /Le montant doit être en euros/);
    r = await admin.b.post(`/admin/members/${emmaId.id}/payments`, { amount: '2,50', method: 'cheque', reference: 'n° 1234567' }, { csrfFrom: '/admin/members' });
    t.equal(r.statusCode, 303);
    const paid = db.$client.prepare('select amount_cents, method, reference from dues_payments where member_id = ?').get(emmaId.id);
    t.same(paid, { amount_cents: 250, method: 'cheque', reference: 'n° 1234567' });
    r = await emma.b.get('/me/membership');
    t.match(text(r.body), /2,50 €/, 'the member sees the receipt');
    t.match(text(r.body), /n° 1234567/);

    r = await alice.b.post(`/admin/members/${denis.m.id}/exclude`, { reason: 'Propos injurieux', decision: '' }, { csrfFrom: '/admin/members' });
    t.equal(r.statusCode, 400, 'no exclusion without its decision');
    t.match(text(r.body), /Indiquez la décision qui le prononce/);
    t.equal(getMember(db, denis.m.id).status, 'admitted');
  });

  await t.test('a member votes once: again, or 20 times at once, one ballot is stored', async (t) => {
    let r = await alice.b.post('/board/polls', {
      kind: 'proposal', title: 'Ouvrir les pads à tous', body: 'Texte', secret: 'yes', electorate: 'members', quorumPct: '',
      opensAt: localInput(new Date(Date.now() - 60_000)), closesAt: localInput(new Date(Date.now() + 3_600_000)), action: 'signup-open', actionService: 'pads', actionNumber: '',
    }, { csrfFrom: '/board' });
    t.equal(r.statusCode, 303, 'the board puts a proposal to the vote');
    const poll = db.$client.prepare("select id, action from polls where title = 'Ouvrir les pads à tous'").get() as { id: number; action: string };
    t.same(JSON.parse(poll.action), { type: 'service.signup', service: 'pads', open: true });

    r = await bruno.b.get('/votes');
    t.match(text(r.body), /Ouvrir les pads à tous/);
    t.match(text(r.body), /Ouvrir l’inscription au service pads/, 'the action is said');
    t.match(r.body, /name="choice" value="block"/);
    r = await bruno.b.post(`/votes/${poll.id}`, {}, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 400);
    t.match(text(r.body), /Choisissez une réponse avant de voter/);
    r = await bruno.b.post(`/votes/${poll.id}`, { choice: 'agree' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 303);
    t.match(text((await bruno.b.get(r.headers.location as string)).body), /Votre vote sur « Ouvrir les pads à tous » est enregistré/);
    r = await bruno.b.post(`/votes/${poll.id}`, { choice: 'disagree' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 409);
    t.equal(r.headers['x-cattery-error'], 'CATTERY_ERR_VOTE');
    t.match(text(r.body), /Vous avez déjà voté/);

    const token = csrfOf((await chloe.b.get('/votes')).body);
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => chloe.b.post(`/votes/${poll.id}`, { _csrf: token, choice: i % 2 ? 'agree' : 'abstain' })));
    const codes = all.map((x) => x.statusCode).sort();
    t.same(codes, [303, ...Array(19).fill(409)], 'one vote taken, 19 refused');
    t.ok(all.filter((x) => x.statusCode === 409).every((x) => /Vous avez déjà voté/.test(text(x.body))), 'each refusal says why, in French');
    const voters = db.$client.prepare('select member_id from poll_voters where poll_id = ? order by member_id').all(poll.id);
    t.same(voters, [{ member_id: bruno.m.id }, { member_id: chloe.m.id }]);
    t.equal((db.$client.prepare('select count(*) n from ballots where poll_id = ?').get(poll.id) as { n: number }).n, 2, 'two ballots, no more');
    t.match(text((await chloe.b.get('/votes')).body), /Vous avez voté/);
  });

  await t.test('no vote after the close, for a member whose proxy one does not hold, or with lapsed dues', async (t) => {
    // Time is up but the count has not run yet; then counted.
    const late = createPoll(deps, { kind: 'single', title: 'Couleur du local', options: ['Bleu', 'Vert'], secret: false, opensAt: iso(-120_000), closesAt: iso(-1_000) }, 'test');
    let r = await bruno.b.post(`/votes/${late.id}`, { choice: '0' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 409);
    t.match(text(r.body), /Ce vote est terminé/);
    closeDuePolls(deps);
    r = await bruno.b.post(`/votes/${late.id}`, { choice: '1' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 409);
    t.match(text(r.body), /Ce vote est terminé/);
    t.equal((db.$client.prepare('select count(*) n from ballots where poll_id = ?').get(late.id) as { n: number }).n, 0);

    const ag = createMeeting(db, { kind: 'general', title: 'AG 2026', startsAt: iso(0), quorumPct: 0 }, 'test');
    const motion = createPoll(deps, { kind: 'judgment', title: 'Nom du service', options: ['Pads', 'Bloc-notes'], secret: true, opensAt: iso(-60_000), closesAt: iso(3_600_000), meetingId: ag.id }, 'test');
    r = await bruno.b.post(`/votes/${motion.id}`, { forMember: String(chloe.m.id), grade_0: '5', grade_1: '2' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 409, 'no proxy held');
    t.match(text(r.body), /Vous ne portez pas la procuration de ce membre/);
    // The board records Chloé's proxy for Bruno; a second one to him is past the statutes' 1.
    r = await alice.b.post(`/board/meetings/${ag.id}/proxies`, { giverId: String(chloe.m.id), holderId: String(bruno.m.id) }, { csrfFrom: `/board/meetings/${ag.id}` });
    t.equal(r.statusCode, 303);
    r = await alice.b.post(`/board/meetings/${ag.id}/proxies`, { giverId: String(alice.m.id), holderId: String(bruno.m.id) }, { csrfFrom: `/board/meetings/${ag.id}` });
    t.equal(r.statusCode, 409);
    t.match(text(r.body), /ne peut porter que 1 procuration/);
    r = await bruno.b.get('/votes');
    t.match(text(r.body), /Procuration de Chloé Durand/);
    r = await bruno.b.post(`/votes/${motion.id}`, { forMember: String(chloe.m.id), grade_0: '5' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 400, 'a grade for every option');
    t.match(text(r.body), /Donnez une mention à chaque choix/);
    r = await bruno.b.post(`/votes/${motion.id}`, { forMember: String(chloe.m.id), grade_0: '5', grade_1: '2' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 303, 'the holder votes for the giver');
    t.match(text((await bruno.b.get(r.headers.location as string)).body), /Le vote de Chloé Durand sur « Nom du service » est enregistré/);
    r = await chloe.b.post(`/votes/${motion.id}`, { grade_0: '1', grade_1: '1' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 409, 'the giver does not vote a second time');

    r = await denis.b.get('/votes');
    t.match(text(r.body), /Votre cotisation n’est pas payée/);
    t.notMatch(r.body, 'action="/votes/', 'no ballot offered');
    r = await denis.b.post(`/votes/${motion.id}`, { grade_0: '3', grade_1: '3' }, { csrfFrom: '/votes' });
    t.equal(r.statusCode, 409);
    t.match(text(r.body), /Votre cotisation n’est pas payée : vous pourrez voter dès qu’elle le sera/);
    t.equal((db.$client.prepare('select count(*) n from poll_voters where member_id = ?').get(denis.m.id) as { n: number }).n, 0);

    // A board vote is not on an ordinary member's page.
    createPoll(deps, { kind: 'proposal', title: 'Budget du bureau', secret: false, electorate: 'board', opensAt: iso(-60_000), closesAt: iso(3_600_000) }, 'test');
    t.notMatch(text((await bruno.b.get('/votes')).body), /Budget du bureau/);
    t.match(text((await alice.b.get('/votes')).body), /Budget du bureau/);
  });

  await t.test('the register shows closed decisions per college, never an open poll', async (t) => {
    const open = db.$client.prepare("select id from polls where title = 'Ouvrir les pads à tous'").get() as { id: number };
    t.equal((await anonymous.get(`/decisions/${open.id}`)).statusCode, 404, 'an open poll is not in the register');
    db.$client.prepare('update polls set closes_at = ? where id = ?').run(iso(-1000), open.id);
    closeDuePolls(deps);
    t.equal(getPoll(db, open.id).outcome, 'passed');
    let r = await anonymous.get('/decisions');
    t.match(text(r.body), /Ouvrir les pads à tous .* Adoptée/);
    t.match(r.body, 'href="/api/decisions"');
    r = await anonymous.get(`/decisions/${open.id}`);
    t.equal(r.statusCode, 200);
    const body = text(r.body);
    t.match(body, /Habitantes et habitants/);
    t.match(body, /Bénévoles/);
    t.match(body, /Ouvrir l’inscription au service pads — appliquée/);
    t.match(body, /Quorum atteint/);
    r = await anonymous.get(`/decisions/${open.id}?lang=en`);
    anonymous.jar.delete('lang');
    t.match(text(r.body), /Residents/);
    t.match(text(r.body), /Volunteers/);
    t.match(text(r.body), /Passed/);
    const meetingId = (db.$client.prepare("select id from meetings where title = 'AG 2026'").get() as { id: number }).id;
    r = await alice.b.get(`/board/meetings/${meetingId}`);
    t.equal(r.statusCode, 200);
    t.match(text(r.body), /Chloé Durand a donné sa procuration à Bruno Petit/);
    t.match(text(r.body), /1 votant/, 'the turnout of the open poll');
  });

  await t.test('my record, downloaded whole', async (t) => {
    const r = await bruno.b.get('/me/membership/export');
    t.equal(r.statusCode, 200);
    t.match(r.headers['content-disposition'], /attachment; filename="membership-\d+\.json"/);
    const rec = r.json();
    t.equal(rec.member.name, 'Bruno Petit');
    t.equal(rec.payments.length, 1);
    t.ok(rec.history.some((h: { kind: string }) => h.kind === 'poll.vote'));
    t.equal(rec.dues.status, 'current');
    t.equal((await bruno.b.get('/me/membership/export')).headers['cache-control'], 'no-store');
    const foreign = await rt.app.inject({ url: '/me/membership/export', headers: { cookie: `cattery_session=${bruno.b.jar.get('cattery_session')}`, 'sec-fetch-site': 'same-site' } });
    t.equal(foreign.statusCode, 403, 'not from another site');
  });

  await t.test('the CSV files never carry a formula a spreadsheet would run', async (t) => {
    t.equal(csvCell('=1+1'), "'=1+1");
    t.equal(csvCell('-2'), "'-2");
    t.equal(csvCell('a,"b"'), '"a,""b"""');
    t.equal(csvCell(-2), '-2', 'a number of ours stays a number');
    // The domain refuses control characters (a tab, a carriage return) in names and references: the four others.
    const dangerous = fc.constantFrom('=', '+', '-', '@');
    const rest = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/\p{Cc}/u.test(s) && s.trim() === s && s.length > 0);
    const value = fc.oneof(fc.tuple(dangerous, rest).map(([a, b]) => `${a}${b}`), rest);
    const names = new Map<number, string>();
    const refs = new Map<number, string>();
    let n = 0;
    fc.assert(fc.property(value, value, (nm, rf) => {
      const m = applyForMembership(db, { kind: 'organisation', name: nm, representative: nm, college: 'benevoles', category: 'normale' }, 'test');
      recordPayment(db, m.id, { amountCents: 1000 + n++, method: 'transfer', reference: rf }, 'test');
      names.set(m.id, nm);
      refs.set(m.id, rf);
    }), { numRuns: 60, seed: 11 });
    const expect = (v: string) => (/^[=+\-@\t\r]/.test(v) ? `'${v}` : v);
    const members = parseCsv((await admin.b.get('/admin/members.csv')).body);
    t.same(members[0]!.slice(0, 4), ['id', 'type', 'nom', 'representant']);
    let checked = 0;
    for (const row of members.slice(1)) {
      const name = names.get(Number(row[0]));
      if (name === undefined) continue;
      t.equal(row[2], expect(name), 'the name, made inert when it starts like a formula');
      t.equal(row[3], expect(name), 'and the representative');
      checked++;
    }
    t.equal(checked, names.size, 'every generated member is in the file');
    const pay = await admin.b.get('/admin/payments.csv');
    t.match(pay.headers['content-type'], /^text\/csv/);
    t.match(pay.headers['content-disposition'], /attachment; filename="cotisations\.csv"/);
    const payments = parseCsv(pay.body);
    for (const row of payments.slice(1)) {
      const ref = refs.get(Number(row[2]));
      if (ref === undefined) continue;
      t.equal(row[7], expect(ref), 'the reference too');
      t.equal(row[3], expect(names.get(Number(row[2]))!));
    }
    // Nothing at all in either file starts as a formula.
    for (const cell of [...members, ...payments].flat()) if (/^[=+\-@\t\r]/.test(cell)) t.fail(`a cell starts a formula: ${JSON.stringify(cell)}`);
    t.equal((await bruno.b.get('/admin/payments.csv')).statusCode, 403);
  });

  t.comment(`governance pages: ${Date.now() - started} ms`);
});
