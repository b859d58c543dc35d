// Governance through the API and the domain, against a real database with the real migrations: the statutes'
// checks (generated configurations), member life, dues, meetings and proxies, secret ballots kept apart from their
// voters, polls closed on time and the decisions that act (and those that must not).
import fs from 'node:fs';
import t from 'tap';
import fc from 'fast-check';
import { eq } from 'drizzle-orm';
import { testRuntime } from '../helpers.js';
import { createUser } from '../../src/identity/users.js';
import { castVote, closeDuePolls, giveProxy } from '../../src/governance/polls.js';
import { collegeProblems } from '../../src/governance/rules.js';
import { polls } from '../../src/governance/schema.js';
import { serviceSettingsMap } from '../../src/governance/settings.js';
import { today } from '../../src/governance/dues.js';

const COLLEGES = [
  { slug: 'habitants', nameFr: 'Habitantes et habitants', nameEn: 'Residents', weightPct: 40 },
  { slug: 'benevoles', nameFr: 'Bénévoles', nameEn: 'Volunteers', weightPct: 30 },
  { slug: 'ville', nameFr: 'La ville', nameEn: 'The city', weightPct: 20 },
  { slug: 'ecoles', nameFr: 'Écoles', nameEn: 'Schools', weightPct: 10 },
];

t.test('governance: statutes, members, dues, meetings, secret polls, decisions that act', async (t) => {
  const rt = await testRuntime(t);
  const { app, db } = rt;
  const inject = (method: string, url: string, payload?: unknown) => app.inject({ method: method as 'GET', url, ...(payload !== undefined ? { payload: payload as object } : {}) });

  // ── the statutes: a SCIC's colleges are checked whole, refused ones change nothing (generated) ──
  t.equal((await inject('PATCH', '/api/governance/settings', { legalForm: 'scic' })).statusCode, 422, 'a SCIC with no colleges is refused');
  t.equal((await inject('PUT', '/api/governance/colleges', COLLEGES)).statusCode, 200);
  t.equal((await inject('PATCH', '/api/governance/settings', { legalForm: 'scic' })).json().legalForm, 'scic');
  let refusedRight = 0; let acceptedRight = 0;
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 6 }), async (weights) => {
    const list = weights.map((w, i) => ({ slug: `c${i}`, nameFr: `C${i}`, nameEn: `C${i}`, weightPct: w }));
    const expectOk = collegeProblems('scic', list).length === 0;
    const r = await inject('PUT', '/api/governance/colleges', list);
    if (expectOk) {
      if (r.statusCode !== 200) throw new Error(`refused ${JSON.stringify(weights)}: ${r.body}`);
      acceptedRight++;
      // Back to the association's own colleges.
      if ((await inject('PUT', '/api/governance/colleges', COLLEGES)).statusCode !== 200) throw new Error('could not restore');
    } else {
      if (r.statusCode !== 422 || r.json().code !== 'CATTERY_ERR_STATUTES') throw new Error(`accepted ${JSON.stringify(weights)}: ${r.statusCode}`);
      const kept = (await inject('GET', '/api/governance')).json().colleges.map((c: { slug: string }) => c.slug);
      if (kept.join() !== COLLEGES.map((c) => c.slug).join()) throw new Error('a refused configuration changed the colleges');
      refusedRight++;
    }
  }), { numRuns: 60, examples: [[[50, 30, 20]], [[60, 20, 20]], [[40, 40, 10, 10]], [[34, 33, 33]], [[9, 41, 50]]] });
  t.pass(`SCIC configurations: ${acceptedRight} accepted, ${refusedRight} refused, each as rules.ts says, nothing changed by a refusal`);
  // JSON is typed as sent: no coercion turns a bad value into an allowed one (0 into "equal weights", null into false).
  for (const bad of [0, -5, '40', null, true]) {
    const r = await inject('PUT', '/api/governance/colleges', COLLEGES.map((c, i) => (i === 0 ? { ...c, weightPct: bad } : c)));
    if (bad === null) t.equal(r.statusCode, 422, 'a null weight among set ones is the statutes\' refusal (mixed weights)');
    else t.equal(r.statusCode, 400, `a weight of ${JSON.stringify(bad)} is refused as such`);
  }
  const wrong = await inject('PUT', '/api/governance/colleges', [{ slug: 'a', nameFr: 'A', nameEn: 'A', weightPct: 60 }, { slug: 'b', nameFr: 'B', nameEn: 'B', weightPct: 20 }, { slug: 'c', nameFr: 'C', nameEn: 'C', weightPct: 20 }]);
  t.match(wrong.json().message, /at most 50 % \(loi 1947, art\. 19 octies\)/, 'the refusal cites the article');

  // ── dues categories and members ──
  t.equal((await inject('PUT', '/api/governance/categories/normale', { nameFr: 'Normale', nameEn: 'Normal', amountCents: 1500, period: 'year' })).statusCode, 200);
  t.equal((await inject('PUT', '/api/governance/categories/solidaire', { nameFr: 'Solidaire', nameEn: 'Solidarity', amountCents: 0, period: 'year' })).statusCode, 200);
  t.equal((await inject('PUT', '/api/governance/categories/structure', { nameFr: 'Structure', nameEn: 'Organisation', amountCents: 10000, period: 'days', periodDays: 365 })).statusCode, 200);
  t.equal((await inject('PUT', '/api/governance/categories/bad', { nameFr: 'X', nameEn: 'X', amountCents: 100, period: 'days' })).statusCode, 400, 'a period in days needs its number');

  const people: { id: number; userId: number; login: string }[] = [];
  const colleges = ['habitants', 'habitants', 'habitants', 'benevoles', 'benevoles', 'ville', 'ecoles'];
  for (const [i, college] of colleges.entries()) {
    const u = await createUser(db, { login: `membre${i}`, name: `Membre ${"ABCDEFG"[i]}`, roles: ['resident'] });
    const r = await inject('POST', '/api/members', { kind: "person", name: `Membre ${"ABCDEFG"[i]}`, userId: u.id, college, category: 'normale' });
    t.equal(r.statusCode, 201, r.body);
    people.push({ id: r.json().id, userId: u.id, login: u.login });
  }
  t.equal((await inject('POST', '/api/members', { kind: 'organisation', name: 'La ville', college: 'ville' })).statusCode, 400, 'an organisation names its representative');
  t.equal((await inject('POST', '/api/members', { kind: 'person', name: 'Sans collège' })).statusCode, 400, 'with colleges, a member is in one');
  t.equal((await inject('POST', '/api/members', { kind: 'person', name: 'Deux fois', userId: people[0]!.userId, college: 'habitants' })).statusCode, 409, 'one membership per person');
  for (const p of people) t.equal((await inject('POST', `/api/members/${p.id}/admit`)).json().status, 'admitted');
  t.equal((await inject('POST', `/api/members/${people[0]!.id}/admit`)).statusCode, 409, 'admitting twice is a conflict');
  t.equal((await inject('POST', `/api/members/${people[6]!.id}/exclude`, { reason: 'x' })).statusCode, 400, 'an exclusion needs the decision that made it');

  // Dues: a just-admitted member is in grace; a payment makes them current until the end of the year.
  t.equal((await inject('GET', `/api/members/${people[0]!.id}`)).json().member.dues.status, 'grace');
  // A yearly payment covers this calendar year, and the next one too from 1 October (dues.ts LATE_IN_YEAR).
  const covered = Number(today().slice(0, 4)) + (today().slice(5) >= '10-01' ? 1 : 0);
  for (const p of people) {
    const paid = await inject('POST', `/api/members/${p.id}/payments`, { amountCents: 1500, method: 'cheque', reference: `CHQ-${p.id}` });
    t.equal(paid.statusCode, 201, paid.body);
    t.equal(paid.json().payment.coversUntil, `${covered}-12-31`);
    t.equal(paid.json().member.dues.status, 'current');
  }
  t.equal((await inject('POST', `/api/members/${people[0]!.id}/payments`, { amountCents: 1500, method: 'transfer' })).statusCode, 400, 'a transfer needs its reference');
  const ahead = await inject('POST', `/api/members/${people[0]!.id}/payments`, { amountCents: 1500, method: 'cash' });
  t.equal(ahead.json().payment.coversUntil, `${covered + 1}-12-31`, 'paying again covers the next year');

  // The city sees counts per college, never a name.
  const counts = await inject('GET', '/api/governance/counts');
  t.same(counts.json().map((c: { college: string; members: number }) => [c.college, c.members]), [['habitants', 3], ['benevoles', 2], ['ville', 1], ['ecoles', 1]]);
  t.notMatch(counts.body, /Membre/, 'no name in the counts');

  // ── a general assembly with proxies ──
  const meeting = (await inject('POST', '/api/meetings', { kind: 'general', title: 'Assemblée générale', startsAt: new Date().toISOString(), quorumPct: 50 })).json();
  t.equal((await inject('POST', `/api/meetings/${meeting.id}/proxies`, { giverId: people[2]!.id, holderId: people[1]!.id })).statusCode, 204);
  const second = await inject('POST', `/api/meetings/${meeting.id}/proxies`, { giverId: people[3]!.id, holderId: people[1]!.id });
  t.equal(second.statusCode, 409, 'a second proxy to the same holder is refused (statutes: 1)');
  t.match(second.json().message, /at most 1 proxy/);
  t.equal((await inject('POST', `/api/meetings/${meeting.id}/proxies`, { giverId: people[1]!.id, holderId: people[4]!.id })).statusCode, 409, 'a holder cannot pass their vote on');
  t.throws(() => giveProxy(db, meeting.id, people[5]!.id, people[5]!.id, 'test'), /another member/, 'nobody holds their own proxy');

  // ── a secret, weighted proposal that acts: open pads to sign-up ──
  const { setServiceSettings } = await import('../../src/governance/settings.js');
  setServiceSettings(db, rt.catalog, 'pads', { openForSignup: false }, 'test');
  t.notMatch((await app.inject('/signup')).body, /value="pads"/, 'pads is closed to sign-up before the vote');
  const opensAt = new Date(Date.now() - 60_000).toISOString();
  const closesAt = new Date(Date.now() + 3_600_000).toISOString();
  const proposal = await inject('POST', '/api/polls', {
    kind: 'proposal', title: 'Ouvrir les pads à l’inscription', secret: true, opensAt, closesAt, meetingId: meeting.id, quorumPct: 50,
    action: { type: 'service.signup', service: 'pads', open: true },
  });
  t.equal(proposal.statusCode, 201, proposal.body);
  const pollId = proposal.json().id as number;
  for (const secret of [null, 'true', 0]) {
    t.equal((await inject('POST', '/api/polls', { kind: 'proposal', title: 'x', secret, opensAt, closesAt })).statusCode, 400, `secret: ${JSON.stringify(secret)} is refused, not read as an open ballot`);
  }
  t.equal((await inject('POST', '/api/polls', { kind: 'single', title: 'x', secret: false, opensAt, closesAt, options: ['a', 'b'], action: { type: 'dues.graceDays', days: 3 } })).statusCode, 400, 'only a proposal carries an action');
  t.equal((await inject('POST', '/api/polls', { kind: 'proposal', title: 'x', secret: false, opensAt, closesAt, action: { type: 'service.signup', service: 'nope', open: true } })).statusCode, 400, 'an action on an unknown service is refused when proposed');

  // Residents' college agrees (one of them by proxy), volunteers disagree, the city agrees, schools abstain.
  const order: [number, string, number?][] = [[0, 'agree'], [1, 'agree'], [1, 'agree', 2], [3, 'disagree'], [4, 'disagree'], [5, 'agree'], [6, 'abstain']];
  for (const [who, choice, forWhom] of order) castVote(db, pollId, people[who]!.id, choice, forWhom !== undefined ? { forMemberId: people[forWhom]!.id } : {});
  t.throws(() => castVote(db, pollId, people[0]!.id, 'disagree'), /already voted/, 'a member votes once');
  t.throws(() => castVote(db, pollId, people[2]!.id, 'agree'), /gave your proxy/, 'a member who gave their proxy does not vote too');
  t.throws(() => castVote(db, pollId, people[4]!.id, 'agree', { forMemberId: people[5]!.id }), /do not hold/, 'nobody votes for a member whose proxy they do not hold');
  t.throws(() => castVote(db, pollId, people[5]!.id, 'maybe'), /not a valid ballot/);
  // Twenty tries at once for the same member: one ballot at most (the voters' key decides, in the ballot's transaction).
  const tries = await Promise.allSettled(Array.from({ length: 20 }, () => Promise.resolve().then(() => castVote(db, pollId, people[6]!.id, 'agree'))));
  t.equal(tries.filter((r) => r.status === 'fulfilled').length, 0, 'schools\' member had voted: twenty more tries, none counted');

  // Secret: no column of the ballots names a voter, no time, no rowid; the stored order is not the order of voting.
  const sqlite = db.$client;
  const ballotSql = (sqlite.prepare("select sql from sqlite_master where name = 'ballots'").get() as { sql: string }).sql;
  t.match(ballotSql, /WITHOUT ROWID/, 'ballots have no rowid (no insertion order to join on)');
  t.throws(() => sqlite.prepare('select rowid from ballots').all(), /no such column/);
  const cols = (table: string) => (sqlite.prepare(`pragma table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
  t.same(cols('ballots').filter((c) => cols('poll_voters').includes(c)), ['poll_id'], 'the only column ballots and voters share is the poll');
  t.notOk(cols('ballots').some((c) => /_at$|time|date/.test(c)), 'ballots carry no time');
  const stored = sqlite.prepare('select * from ballots where poll_id = ?').all(pollId) as { open_voter_id: number | null; choice: string }[];
  t.equal(stored.length, 7);
  t.ok(stored.every((b) => b.open_voter_id === null), 'a secret ballot has no voter');
  const journal = sqlite.prepare("select detail from governance_journal where kind = 'poll.vote' and poll_id = ?").all(pollId) as { detail: string | null }[];
  t.notOk(journal.some((j) => /agree|disagree|abstain/.test(j.detail ?? '')), 'the journal says who voted, never what');

  // Closing on time: residents (40 %) + city (20 %) agree, volunteers (30 %) disagree, schools abstain (their 10 % go
  // to the others): agree = 60/90 = 66.67 %.
  t.equal(closeDuePolls({ db, catalog: rt.catalog }, opensAt).length, 0, 'nothing closes before its time');
  const closed = closeDuePolls({ db, catalog: rt.catalog }, new Date(Date.now() + 3_600_001).toISOString());
  t.equal(closed.length, 1);
  const decided = (await inject('GET', `/api/polls/${pollId}`)).json();
  t.equal(decided.outcome, 'passed');
  t.equal(decided.result.weighted.agree, 66.6667);
  t.same(decided.result.colleges.map((c: { countedPct: number }) => c.countedPct), [44.4444, 33.3333, 22.2222, 0]);
  t.equal(decided.actionStatus, 'applied', decided.actionError ?? '');
  t.equal(serviceSettingsMap(db).get('pads')?.openForSignup, true);
  t.match((await app.inject('/signup')).body, /value="pads"/, 'the sign-up page now offers pads');
  t.equal(closeDuePolls({ db, catalog: rt.catalog }, new Date(Date.now() + 7_200_000).toISOString()).length, 0, 'a poll is counted once');
  const register = (await app.inject({ method: 'GET', url: '/api/decisions', headers: { authorization: '' } })).json();
  t.equal(register[0].id, pollId, 'the decision is in the public register');

  // The stored order of secret ballots is not the order of voting: twenty residents vote one by one for twenty
  // different options (so the test, and only the test, knows whose ballot is whose).
  const crowd: number[] = [];
  for (let i = 0; i < 20; i++) {
    const m = (await inject('POST', '/api/members', { kind: 'person', name: `Voisine ${'ABCDEFGHIJKLMNOPQRST'[i]}`, college: 'habitants', category: 'solidaire' })).json();
    await inject('POST', `/api/members/${m.id}/admit`);
    crowd.push(m.id);
  }
  const options = crowd.map((_, i) => `option ${i}`);
  const many = (await inject('POST', '/api/polls', { kind: 'single', title: 'Ordre', secret: true, opensAt, closesAt, options })).json();
  // Every secret vote leaves the write-ahead log empty of its ballot: no file pairs it with its voter.
  const wal = `${rt.config.dbFile}-wal`;
  let inWal = 0;
  crowd.forEach((id, i) => {
    castVote(db, many.id, id, options[i]);
    const ids = (sqlite.prepare('select id from ballots where poll_id = ?').all(many.id) as { id: string }[]).map((b) => b.id);
    const log = fs.existsSync(wal) ? fs.readFileSync(wal) : Buffer.alloc(0);
    inWal += ids.filter((b) => log.includes(Buffer.from(b))).length;
  });
  t.equal(inWal, 0, 'after each of 20 secret votes, no ballot is left in the -wal file');
  const seen = (sqlite.prepare('select choice from ballots where poll_id = ?').all(many.id) as { choice: string }[]).map((b) => JSON.parse(b.choice));
  t.same([...seen].sort(), [...options].sort(), 'every ballot is there');
  t.notSame(seen, options, 'the stored order is not the order of voting (chance of the same order: 1 in 20!)');
  const byVote = (sqlite.prepare("select member_id from governance_journal where kind = 'poll.vote' and poll_id = ? order by id").all(many.id) as { member_id: number }[]).map((r) => r.member_id);
  t.same(byVote, crowd, 'the journal keeps who voted, in order, and nothing of the choice');

  // A proposal that misses its quorum applies nothing.
  const quiet = (await inject('POST', '/api/polls', {
    kind: 'proposal', title: 'Fermer les pads', secret: true, opensAt, closesAt, quorumPct: 60, action: { type: 'service.signup', service: 'pads', open: false },
  })).json();
  castVote(db, quiet.id, people[0]!.id, 'agree');
  castVote(db, quiet.id, people[1]!.id, 'agree');
  closeDuePolls({ db, catalog: rt.catalog }, new Date(Date.now() + 3_600_001).toISOString());
  const q = (await inject('GET', `/api/polls/${quiet.id}`)).json();
  t.equal(q.outcome, 'no_quorum');
  t.equal(q.actionStatus, 'none');
  t.equal(serviceSettingsMap(db).get('pads')?.openForSignup, true, 'pads stays open');

  // An action that fails when applied (the catalog changed since it was proposed) says so; an admin retries.
  const failing = (await inject('POST', '/api/polls', { kind: 'proposal', title: 'Quota', secret: false, opensAt, closesAt, action: { type: 'service.defaultQuota', service: 'pads', quotaMb: 300 } })).json();
  for (const p of people.slice(0, 6)) castVote(db, failing.id, p.id, 'agree');
  db.update(polls).set({ action: { type: 'service.defaultQuota', service: 'gone', quotaMb: 300 } }).where(eq(polls.id, failing.id)).run();
  closeDuePolls({ db, catalog: rt.catalog }, new Date(Date.now() + 3_600_001).toISOString());
  const f = (await inject('GET', `/api/polls/${failing.id}`)).json();
  t.equal(f.outcome, 'passed');
  t.equal(f.actionStatus, 'failed');
  t.match(f.actionError, /gone/);
  db.update(polls).set({ action: { type: 'service.defaultQuota', service: 'pads', quotaMb: 300 } }).where(eq(polls.id, failing.id)).run();
  const retried = (await inject('POST', `/api/polls/${failing.id}/apply`)).json();
  t.equal(retried.actionStatus, 'applied');
  t.equal(serviceSettingsMap(db).get('pads')?.defaultQuotaMb, 300);
  const open = (sqlite.prepare('select open_voter_id from ballots where poll_id = ?').all(failing.id) as { open_voter_id: number }[]).map((b) => b.open_voter_id).sort();
  t.same(open, people.slice(0, 6).map((p) => p.id).sort(), 'an open poll\'s ballots name their voter');

  // A service kept for members: the catalog says so, the sign-up page no longer offers it, the home page tells why.
  t.equal((await inject('PUT', '/api/services/files/settings', { membersOnly: true })).statusCode, 200);
  const files = ((await app.inject({ method: 'GET', url: '/api/catalog', headers: { authorization: '' } })).json() as { id: string; openForSignup: boolean; membersOnly: boolean }[]).find((x) => x.id === 'files')!;
  t.same([files.openForSignup, files.membersOnly], [false, true]);
  t.notMatch((await app.inject('/signup')).body, /value="files"/, 'a members-only service is not offered to newcomers');
  t.match((await app.inject({ url: '/', headers: { 'accept-language': 'fr' } })).body, /Réservé aux membres de l’association/);
  t.equal((await inject('PUT', '/api/services/nope/settings', { membersOnly: true })).statusCode, 400, 'an unknown service is refused');

  // Member life ends: resignation and exclusion are journaled with their reasons.
  t.equal((await inject('POST', `/api/members/${people[6]!.id}/exclude`, { reason: 'Non-respect de la charte', decision: 'CA du 12 mars, décision 4' })).json().status, 'excluded');
  const rec = (await inject('GET', `/api/members/${people[6]!.id}`)).json();
  t.same(rec.history.map((h: { kind: string }) => h.kind), ['member.apply', 'member.admitted', 'dues.payment', 'poll.vote', 'member.excluded']);
  t.equal(rec.member.exclusionDecision, 'CA du 12 mars, décision 4');
  t.equal((await inject('POST', `/api/members/${people[5]!.id}/resign`)).json().status, 'resigned');
});
