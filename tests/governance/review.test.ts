// An outside review of the governance domain (issue 11), as attacks: a hostile member, a hostile admin input, the
// city, a hostile token, concurrency, time, and the dues gate. Each finding fixed in the same branch has its test
// here; a finding left to the lead is a `todo` test that shows it. Everything runs against a real database with the
// real migrations and the real app (inject), with no Docker: the runtime is built without its timers, and the dues
// gate runs on a small fake engine whose account operations the test answers (and can hold back, to interleave two
// passes the way a slow `docker exec` does).
import { Duplex, type PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import pino from 'pino';
import { and, eq } from 'drizzle-orm';
import { asOperator, testConfig } from '../helpers.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import type { AccountDeps } from '../../src/accounts/accounts.js';
import { changeAccount, getAccount } from '../../src/accounts/accounts.js';
import { accounts, instances, servers } from '../../src/db/schema.js';
import type { Engine } from '../../src/orchestrator/docker/engine.js';
import { createUser } from '../../src/identity/users.js';
import { duesGatePass } from '../../src/governance/dues-gate.js';
import { addDays, recordPayment, today } from '../../src/governance/dues.js';
import { admit, applyForMembership, exclude, membershipRoles, resign, updateMember } from '../../src/governance/members.js';
import { createSession } from '../../src/identity/sessions.js';
import { createPrincipalResolver } from '../../src/http/auth.js';
import { sessionPolicy } from '../../src/http/pages/deps.js';
import type { FastifyRequest } from 'fastify';
import { ballotOf } from '../../src/http/pages/votes.js';
import { validChoice } from '../../src/governance/tally.js';
import { updateSettings, upsertCategory } from '../../src/governance/settings.js';
import { duesHolds, governanceJournal, polls } from '../../src/governance/schema.js';
import { castVote, closeDuePolls, createMeeting, createPoll, giveProxy, withdrawProxy } from '../../src/governance/polls.js';
import { serviceSettingsMap, setServiceSettings } from '../../src/governance/settings.js';

/** A runtime with no timers (no reconciler, no upkeep): nothing but the test moves. */
async function bare(t: Test): Promise<Runtime> {
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  asOperator(rt.app);
  t.teardown(() => rt.close());
  return rt;
}

/** An engine whose `docker exec` runs nothing: each account operation answers {"ok":true} once `hold(op)` resolves. */
function fakeEngine(calls: string[], hold: (op: string) => Promise<void> = async () => undefined): Engine {
  const docker = {
    getContainer: () => ({
      exec: async ({ Cmd }: { Cmd: string[] }) => ({
        start: async () => Object.assign(new Duplex({ write(_c, _e, cb) { cb(); }, read() { /* pushed below */ } }), { op: Cmd[Cmd.length - 1]! }),
        inspect: async () => ({ ExitCode: 0 }),
      }),
    }),
    modem: {
      demuxStream: (stream: Duplex & { op: string }, stdout: PassThrough) => {
        stream.resume();
        void (async () => { calls.push(stream.op); await hold(stream.op); stdout.write('{"ok":true}'); stream.push(null); })();
      },
    },
  };
  return { docker, hosterId: 'fake', timeoutMs: 10_000, log: pino({ level: 'silent' }) } as unknown as Engine;
}

/** A pads instance the database believes is running, and an account in it for a person (no container anywhere). */
function padsAccount(rt: Runtime, userId: number | null, username: string, slug = 'pads-a', observed: 'running' | 'stopped' = 'running') {
  const { db } = rt;
  let inst = db.select().from(instances).where(eq(instances.slug, slug)).get();
  if (!inst) {
    const server = db.select().from(servers).get()!;
    inst = db.insert(instances).values({ slug, service: 'pads', serverId: server.id, image: 'none', config: {} as never, desired: 'running', observed }).returning().get();
  }
  return db.insert(accounts).values({ instanceId: inst.id, username, state: 'active', quotaMb: 100, userId }).returning().get();
}

/** A member whose dues lapsed (paid for 30 days, 40 days ago; 5 days of grace), with a pads account in a members-only
 * pads. */
async function lapsedMember(rt: Runtime, login: string) {
  const { db } = rt;
  upsertCategory(db, { slug: 'mois', nameFr: 'Mois', nameEn: 'Month', amountCents: 300, period: 'days', periodDays: 30 }, 'test');
  updateSettings(db, { graceDays: 5 }, 'test');
  const u = await createUser(db, { login, name: `Personne ${login}`, roles: ['resident'] });
  const m = applyForMembership(db, { kind: 'person', name: `Personne ${login}`, userId: u.id, category: 'mois' }, 'test');
  admit(db, m.id, 'test');
  recordPayment(db, m.id, { amountCents: 300, method: 'cash', paidOn: addDays(today(), -40) }, 'test');
  const acc = padsAccount(rt, u.id, login);
  setServiceSettings(db, rt.catalog, 'pads', { membersOnly: true }, 'test');
  return { user: u, member: m, account: acc };
}

const stateOf = (rt: Runtime, id: number) => rt.db.select().from(accounts).where(eq(accounts.id, id)).get()!;
const held = (rt: Runtime, id: number) => !!rt.db.select().from(duesHolds).where(eq(duesHolds.accountId, id)).get();

t.test('dues gate: a payment recorded while a pass is suspending the account leaves it resumed, not suspended and forgotten', async (t) => {
  const rt = await bare(t);
  const { member, account } = await lapsedMember(rt, 'alice');
  const calls: string[] = [];
  let release!: () => void;
  const slow = new Promise<void>((r) => { release = r; });
  // The timer's pass: its suspension takes a while in the container (held back until the test says).
  const deps: AccountDeps = { ...rt.accounts, engineFor: () => fakeEngine(calls, (op) => (op === 'suspend' ? slow : Promise.resolve())) };
  const timerPass = duesGatePass(deps);
  for (let i = 0; i < 200 && !calls.includes('suspend'); i++) await new Promise((r) => setTimeout(r, 10));
  t.ok(calls.includes('suspend'), 'the timer\'s pass is suspending the account');
  // Meanwhile the treasurer records the payment; the route runs its own pass for the member at once.
  recordPayment(rt.db, member.id, { amountCents: 300, method: 'cash' }, 'test');
  const paymentPass = duesGatePass(deps, today(), member.id);
  setTimeout(release, 50);
  await Promise.all([timerPass, paymentPass]);
  await duesGatePass(deps);
  t.equal(stateOf(rt, account.id).state, 'active', 'after the payment (and one more pass) the account is active');
  t.notOk(held(rt, account.id), 'no hold is left');
});

t.test('dues gate: an account an admin resumes by hand while the member is still lapsed stays resumed', async (t) => {
  const rt = await bare(t);
  const { member, account } = await lapsedMember(rt, 'bruno');
  const calls: string[] = [];
  const deps: AccountDeps = { ...rt.accounts, engineFor: () => fakeEngine(calls) };
  t.same((await duesGatePass(deps)).suspended, ['pads-a/bruno']);
  // The admin resumes it (the member promised to pay at the assembly): the code says "an admin's choice stands".
  await changeAccount(deps, 'pads-a', 'bruno', { suspended: false }, 'user:admin');
  t.equal(stateOf(rt, account.id).state, 'active');
  for (let i = 0; i < 3; i++) await duesGatePass(deps);
  t.equal(stateOf(rt, account.id).state, 'active', 'the next passes leave the admin\'s choice alone');
  t.same(calls, ['suspend', 'resume'], 'one suspension (the gate\'s), one resumption (the admin\'s), nothing after');
  // The waiver lasts for this lapse only: paid, then lapsed again 35 days later, the account is suspended again.
  recordPayment(rt.db, member.id, { amountCents: 300, method: 'cash' }, 'test');
  t.same((await duesGatePass(deps, addDays(today(), 36))).suspended, ['pads-a/bruno'], 'the next lapse suspends it again');
});

t.test('dues gate: a hold left on an active account by a crash (no resumption by anyone) is suspended again', async (t) => {
  const rt = await bare(t);
  const { member, account } = await lapsedMember(rt, 'denis');
  const deps: AccountDeps = { ...rt.accounts, engineFor: () => fakeEngine([]) };
  rt.db.insert(duesHolds).values({ accountId: account.id, memberId: member.id }).run();
  await duesGatePass(deps);
  await duesGatePass(deps);
  t.equal(stateOf(rt, account.id).state, 'suspended', 'the crash does not pass for an admin\'s waiver');
});

t.test('dues gate: a former member held for lapsed dues who joins again and pays gets their account back', async (t) => {
  const rt = await bare(t);
  const { user, member, account } = await lapsedMember(rt, 'chloe');
  const deps: AccountDeps = { ...rt.accounts, engineFor: () => fakeEngine([]) };
  await duesGatePass(deps);
  t.equal(stateOf(rt, account.id).state, 'suspended');
  // Chloé resigns, then applies again a month later: her old record is kept (unlinked), a new one is admitted and paid.
  resign(rt.db, member.id, 'test');
  const again = applyForMembership(rt.db, { kind: 'person', name: 'Chloé', userId: user.id, category: 'mois' }, 'test');
  admit(rt.db, again.id, 'test');
  recordPayment(rt.db, again.id, { amountCents: 300, method: 'cash' }, 'test');
  const r = await duesGatePass(deps, today(), again.id);
  t.same(r.resumed, ['pads-a/chloe'], 'the payment resumes her account');
  await duesGatePass(deps);
  t.equal(stateOf(rt, account.id).state, 'active', 'a paid-up member\'s account is active');
});

/** Members always current (a free category), admitted, in an association without colleges. */
async function freeMembers(rt: Runtime, n: number, prefix = 'm') {
  upsertCategory(rt.db, { slug: 'libre', nameFr: 'Libre', nameEn: 'Free', amountCents: 0, period: 'year' }, 'test');
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = applyForMembership(rt.db, { kind: 'person', name: `Membre ${prefix}${i}`, category: 'libre' }, 'test');
    admit(rt.db, m.id, 'test');
    out.push(m.id);
  }
  return out;
}
const iso = (ms: number) => new Date(ms).toISOString();
const journalKinds = (rt: Runtime, pollId: number, kind: string) =>
  rt.db.select().from(governanceJournal).where(and(eq(governanceJournal.pollId, pollId), eq(governanceJournal.kind, kind))).all().length;

t.test('dues gate, what holds: idempotent, never a deletion, a pending suspension on a stopped instance, a service no longer for members, a resignation while held, accounts of nobody', async (t) => {
  const rt = await bare(t);
  const { db } = rt;
  const { member, account, user } = await lapsedMember(rt, 'ines');
  const stopped = padsAccount(rt, user.id, 'ines', 'pads-b', 'stopped');
  const nobodys = padsAccount(rt, null, 'nobody');
  const calls: string[] = [];
  const deps: AccountDeps = { ...rt.accounts, engineFor: () => fakeEngine(calls) };
  t.same((await duesGatePass(deps)).suspended.sort(), ['pads-a/ines', 'pads-b/ines']);
  t.equal(stateOf(rt, account.id).state, 'suspended');
  t.same([stateOf(rt, stopped.id).state, stateOf(rt, stopped.id).pending?.suspended], ['active', true], 'on a stopped instance the suspension waits, held');
  t.same(await duesGatePass(deps), { suspended: [], resumed: [], failed: [] }, 'a second pass changes nothing');
  recordPayment(db, member.id, { amountCents: 300, method: 'cash' }, 'test');
  t.same((await duesGatePass(deps, today(), member.id)).resumed.sort(), ['pads-a/ines', 'pads-b/ines'], 'the payment resumes both');
  t.same([stateOf(rt, account.id).state, stateOf(rt, stopped.id).state, stateOf(rt, stopped.id).pending?.suspended], ['active', 'active', undefined], 'the waiting suspension is dropped, not applied later');
  // Lapsed again; then the service is no longer for members only: resumed.
  const later = addDays(today(), 36);
  t.same((await duesGatePass(deps, later)).suspended.sort(), ['pads-a/ines', 'pads-b/ines']);
  setServiceSettings(db, rt.catalog, 'pads', { membersOnly: false }, 'test');
  t.same((await duesGatePass(deps, later)).resumed.sort(), ['pads-a/ines', 'pads-b/ines'], 'no longer members-only: resumed though still lapsed');
  setServiceSettings(db, rt.catalog, 'pads', { membersOnly: true }, 'test');
  await duesGatePass(deps, later);
  resign(db, member.id, 'test');
  await duesGatePass(deps, later);
  t.equal(stateOf(rt, account.id).state, 'suspended', 'resigned while held: the account stays suspended (never deleted)');
  t.equal(stateOf(rt, nobodys.id).state, 'active', 'an account with no person behind it is never touched');
  t.ok(calls.every((c) => c === 'suspend' || c === 'resume'), `only suspensions and resumptions ran: ${calls.join(' ')}`);
});

t.test('decisions that act: a passed decision whose action was never tried (a stop between the count and the action) acts at the next pass', async (t) => {
  const rt = await bare(t);
  const deps = { db: rt.db, catalog: rt.catalog };
  const [a, b] = await freeMembers(rt, 2);
  setServiceSettings(rt.db, rt.catalog, 'pads', { openForSignup: false }, 'test');
  const p = createPoll(deps, { kind: 'proposal', title: 'Ouvrir les pads', secret: true, opensAt: iso(Date.now() - 60_000), closesAt: iso(Date.now() + 60_000), action: { type: 'service.signup', service: 'pads', open: true } }, 'test');
  castVote(rt.db, p.id, a!, 'agree');
  castVote(rt.db, p.id, b!, 'agree');
  // What the count's transaction leaves when the process stops right after it: closed, passed, action not tried.
  rt.db.update(polls).set({ closedAt: iso(Date.now()), outcome: 'passed', result: {} }).where(eq(polls.id, p.id)).run();
  closeDuePolls(deps, iso(Date.now() + 120_000));
  const after = rt.db.select().from(polls).where(eq(polls.id, p.id)).get()!;
  t.equal(after.actionStatus, 'applied', 'the action is applied once the timer runs again');
  t.equal(serviceSettingsMap(rt.db).get('pads')?.openForSignup, true);
});

t.test('decisions that act: the later decision on a setting stands (retries of an older one, two decisions due at once)', async (t) => {
  const rt = await bare(t);
  const deps = { db: rt.db, catalog: rt.catalog };
  const voters = await freeMembers(rt, 2);
  const now = Date.now();
  const propose = (title: string, action: object, closesAt: number) => createPoll(deps, { kind: 'proposal', title, secret: false, opensAt: iso(now - 60_000), closesAt: iso(closesAt), action }, 'test');
  const pass = (id: number) => { for (const v of voters) castVote(rt.db, id, v, 'agree', { now: iso(now) }); };
  // "Open pads" passes first, but its action fails (its service left the catalog meanwhile, as in api.test.ts).
  const older = propose('Ouvrir les pads', { type: 'service.signup', service: 'pads', open: true }, now + 1_000);
  pass(older.id);
  rt.db.update(polls).set({ action: { type: 'service.signup', service: 'gone', open: true } }).where(eq(polls.id, older.id)).run();
  closeDuePolls(deps, iso(now + 1_500));
  t.equal(rt.db.select().from(polls).where(eq(polls.id, older.id)).get()!.actionStatus, 'failed');
  rt.db.update(polls).set({ action: { type: 'service.signup', service: 'pads', open: true } }).where(eq(polls.id, older.id)).run();
  // Then "close pads" passes and is applied.
  const newer = propose('Fermer les pads', { type: 'service.signup', service: 'pads', open: false }, now + 2_000);
  pass(newer.id);
  closeDuePolls(deps, iso(now + 2_500));
  t.equal(serviceSettingsMap(rt.db).get('pads')?.openForSignup, false);
  // An admin retries the old one: it must not reopen pads against the later decision.
  const retried = await rt.app.inject({ method: 'POST', url: `/api/polls/${older.id}/apply` });
  t.equal(retried.json().actionStatus, 'failed', 'the retry does not act');
  t.match(retried.json().actionError, new RegExp(`decision ${newer.id}`), 'and says which decision stands');
  t.equal(serviceSettingsMap(rt.db).get('pads')?.openForSignup, false, 'pads stays closed, as decided last');

  // Two decisions due in the same pass (cattery was stopped): the one decided last is applied last, whatever their ids.
  const last = propose('Pads pour tous', { type: 'service.membersOnly', service: 'pads', membersOnly: false }, now + 4_000);
  const first = propose('Pads pour les membres', { type: 'service.membersOnly', service: 'pads', membersOnly: true }, now + 3_000);
  pass(last.id); pass(first.id);
  closeDuePolls(deps, iso(now + 5_000));
  t.equal(serviceSettingsMap(rt.db).get('pads')?.membersOnly, false, 'the decision that closed last is the one in force');
  t.equal(rt.db.select().from(polls).where(eq(polls.id, first.id)).get()!.actionStatus, 'applied', 'the earlier one was applied, in its turn');
});

t.test('decisions that act: a server\'s power decision sets the curve and budget, keeps the server\'s meter, and cannot set a meter URL', async (t) => {
  const rt = await bare(t);
  const deps = { db: rt.db, catalog: rt.catalog };
  const voters = await freeMembers(rt, 1);
  const energy = { idleWatts: 40, maxWatts: 120, embodiedKgCo2e: 300, serviceLifeYears: 6 };
  t.equal((await rt.app.inject({ method: 'PUT', url: '/api/servers/local/energy', payload: { ...energy, meter: { kind: 'rapl' } } })).statusCode, 200);
  const now = Date.now();
  const meterUrl = await rt.app.inject({ method: 'POST', url: '/api/polls', payload: {
    kind: 'proposal', title: 'Compteur', secret: false, opensAt: iso(now - 1000), closesAt: iso(now + 1000),
    action: { type: 'server.energy', server: 'local', energy: { ...energy, meter: { kind: 'http-json', url: 'http://169.254.169.254/latest', field: 'w' } } },
  } });
  t.equal(meterUrl.statusCode, 400, 'a decision does not point cattery at a URL (an admin\'s setting)');
  const p = createPoll(deps, { kind: 'proposal', title: 'Budget', secret: false, opensAt: iso(now - 1000), closesAt: iso(now + 1000),
    action: { type: 'server.energy', server: 'local', energy: { ...energy, monthlyBudgetKwh: 50 } } }, 'test');
  castVote(rt.db, p.id, voters[0]!, 'agree', { now: iso(now) });
  closeDuePolls(deps, iso(now + 2000));
  const server = rt.db.select().from(servers).where(eq(servers.name, 'local')).get()!;
  t.equal(server.energy?.monthlyBudgetKwh, 50, 'the budget decided is set');
  t.same(server.energy?.meter, { kind: 'rapl' }, 'the server\'s meter is still there');
});

t.test('decisions that act: two closes at once count and act once; rejected, blocked and failed-quorum decisions apply nothing', async (t) => {
  const rt = await bare(t);
  const deps = { db: rt.db, catalog: rt.catalog };
  const v = await freeMembers(rt, 4);
  const now = Date.now();
  const mk = (title: string, quorumPct = 0) => createPoll(deps, { kind: 'proposal', title, secret: true, quorumPct, opensAt: iso(now - 1000), closesAt: iso(now + 1000), action: { type: 'dues.graceDays', days: 0 } }, 'test');
  const passed = mk('Passe');
  for (const m of v) castVote(rt.db, passed.id, m, 'agree', { now: iso(now) });
  const rejected = mk('Rejetée');
  ['agree', 'disagree', 'disagree', 'abstain'].forEach((c, i) => castVote(rt.db, rejected.id, v[i]!, c, { now: iso(now) }));
  const blocked = mk('Bloquée');
  ['agree', 'agree', 'agree', 'block'].forEach((c, i) => castVote(rt.db, blocked.id, v[i]!, c, { now: iso(now) }));
  const quiet = mk('Sans quorum', 75);
  ['agree', 'agree'].forEach((c, i) => castVote(rt.db, quiet.id, v[i]!, c, { now: iso(now) }));
  const at = iso(now + 2000);
  const [one, two] = await Promise.all([Promise.resolve().then(() => closeDuePolls(deps, at)), Promise.resolve().then(() => closeDuePolls(deps, at))]);
  t.equal(one!.length + two!.length, 4, 'each poll closed by one of the two');
  t.equal(journalKinds(rt, passed.id, 'poll.close'), 1, 'counted once');
  t.equal(journalKinds(rt, passed.id, 'decision.applied'), 1, 'acted once');
  const get = (id: number) => rt.db.select().from(polls).where(eq(polls.id, id)).get()!;
  t.same([rejected, blocked, quiet].map((p) => [get(p.id).outcome, get(p.id).actionStatus]), [['rejected', 'none'], ['rejected', 'none'], ['no_quorum', 'none']]);
  t.equal(rt.db.select().from(governanceJournal).where(eq(governanceJournal.kind, 'settings.update')).all().length, 1, 'only the passed decision changed the settings');
});

t.test('hostile admin input to a poll: impossible dates, __proto__, extra keys, absurd numbers, control characters', async (t) => {
  const rt = await bare(t);
  const now = Date.now();
  const base = { kind: 'single', title: 'Choix', secret: true, opensAt: iso(now), closesAt: iso(now + 86_400_000), options: ['a', 'b'] };
  const post = (payload: unknown) => rt.app.inject({ method: 'POST', url: '/api/polls', payload: payload as object });
  const refused: [string, unknown][] = [
    ['29 February of a common year', { ...base, closesAt: '2027-02-29T18:00:00Z' }],
    ['30 February', { ...base, opensAt: '2026-02-30T10:00:00Z' }],
    ['an option named __proto__', { ...base, kind: 'judgment', options: ['__proto__', 'b'] }],
    ['an action with a key of its own', { ...base, kind: 'proposal', options: undefined, action: { type: 'dues.graceDays', days: 3, also: 1 } }],
    ['an action of no known type', { ...base, kind: 'proposal', options: undefined, action: { type: 'users.admin', login: 'x' } }],
    ['a negative quorum', { ...base, quorumPct: -1 }],
    ['a quorum over 100', { ...base, quorumPct: 101 }],
    ['a fractional quorum', { ...base, quorumPct: 33.3 }],
    ['a bell in the title', { ...base, title: 'Vote\u0007' }],
    ['a title of 201 characters', { ...base, title: 'x'.repeat(201) }],
    ['the same option twice (after trimming)', { ...base, options: [' a', 'a'] }],
    ['21 options', { ...base, options: Array.from({ length: 21 }, (_, i) => `o${i}`) }],
    ['a close before the opening', { ...base, closesAt: iso(now - 1) }],
    ['a date without a time', { ...base, closesAt: '2027-01-01' }],
    ['a body key the API does not know', { ...base, createdBy: 'user:someone' }],
  ];
  for (const [what, payload] of refused) t.equal((await post(payload)).statusCode, 400, what);
  const proto = await rt.app.inject({ method: 'POST', url: '/api/polls', headers: { 'content-type': 'application/json' }, payload: `{"kind":"proposal","title":"x","secret":true,"opensAt":"${base.opensAt}","closesAt":"${base.closesAt}","action":{"type":"dues.graceDays","days":3,"__proto__":{"days":0}}}` });
  t.equal(proto.statusCode, 400, '__proto__ in the JSON body is refused before any handler');
  // Why an option named __proto__ is refused: the votes page builds a judgment ballot by assignment, which no ballot
  // for such a poll could then pass.
  const built = ballotOf({ kind: 'judgment', options: ['__proto__', 'b'] }, { grade_0: '3', grade_1: '2' } as never);
  t.notOk('choice' in built && validChoice('judgment', ['__proto__', 'b'], built.choice), 'the page\'s ballot for such a poll is never valid');
  const leap = await post({ ...base, closesAt: '2028-02-29T18:00:00Z' });
  t.equal(leap.statusCode, 201, '29 February of a leap year is a day');
  t.equal(leap.json().closesAt, '2028-02-29T18:00:00.000Z');
  const named = await post({ ...base, options: ['constructor', 'toString', 'hasOwnProperty'] });
  t.equal(named.statusCode, 201, 'options named like an object\'s own properties are plain choices');
  const members = await freeMembers(rt, 3);
  ['constructor', 'toString', 'toString'].forEach((c, i) => castVote(rt.db, named.json().id, members[i]!, c));
  closeDuePolls({ db: rt.db, catalog: rt.catalog }, iso(now + 86_400_001));
  const r = (await rt.app.inject(`/api/polls/${named.json().id}`)).json();
  t.same([r.outcome, r.result.winner, r.result.colleges[0].counts], ['decided', 'toString', { constructor: 1, toString: 2, hasOwnProperty: 0 }], 'and are counted as such');
});

t.test('hostile admin input to members, dues and settings: absurd numbers, control characters, impossible days, payments in advance', async (t) => {
  const rt = await bare(t);
  const inject = (method: string, url: string, payload: unknown) => rt.app.inject({ method: method as 'POST', url, payload: payload as object });
  upsertCategory(rt.db, { slug: 'normale', nameFr: 'Normale', nameEn: 'Normal', amountCents: 1500, period: 'year' }, 'test');
  const m = (await inject('POST', '/api/members', { kind: 'person', name: 'Jeanne', category: 'normale' })).json();
  await inject('POST', `/api/members/${m.id}/admit`, undefined);
  const refused: [string, string, string, unknown][] = [
    ['a negative payment', 'POST', `/api/members/${m.id}/payments`, { amountCents: -1, method: 'cash' }],
    ['a payment of 1e12 cents', 'POST', `/api/members/${m.id}/payments`, { amountCents: 1e12, method: 'cash' }],
    ['a reference with a line break', 'POST', `/api/members/${m.id}/payments`, { amountCents: 1500, method: 'cheque', reference: 'CHQ\r\n1' }],
    ['a payment on 29 February of a common year', 'POST', `/api/members/${m.id}/payments`, { amountCents: 1500, method: 'cash', paidOn: '2027-02-29' }],
    ['a payment recorded in advance', 'POST', `/api/members/${m.id}/payments`, { amountCents: 1500, method: 'cash', paidOn: addDays(today(), 3) }],
    ['a name with a line break (CSV exports)', 'POST', '/api/members', { kind: 'person', name: 'Jean\nDupont' }],
    ['a name of 201 characters', 'POST', '/api/members', { kind: 'person', name: 'x'.repeat(201) }],
    ['an extra key on a member', 'POST', '/api/members', { kind: 'person', name: 'Jean', status: 'admitted' }],
    ['board set on an application', 'POST', '/api/members', { kind: 'person', name: 'Jean', board: true }],
    ['a grace of 366 days', 'PATCH', '/api/governance/settings', { graceDays: 366 }],
    ['11 proxies', 'PATCH', '/api/governance/settings', { maxProxies: 11 }],
    ['a negative reminder delay', 'PATCH', '/api/governance/settings', { remindDays: -1 }],
    ['a college weight over 100', 'PUT', '/api/governance/colleges', [{ slug: 'a', nameFr: 'A', nameEn: 'A', weightPct: 100.5 }]],
    ['a college slug __proto__', 'PUT', '/api/governance/colleges', [{ slug: '__proto__', nameFr: 'A', nameEn: 'A', weightPct: null }]],
    ['a period of 0 days', 'PUT', '/api/governance/categories/zero', { nameFr: 'Z', nameEn: 'Z', amountCents: 1, period: 'days', periodDays: 0 }],
  ];
  for (const [what, method, url, payload] of refused) t.equal((await inject(method, url, payload)).statusCode, 400, what);
  // Without type coercion on JSON bodies (main, a343ac7): a value a nullable field's bounds refuse is refused, not
  // turned into null (a weight of 0 was "equal weights", a quota of 0 "the manifest's", `secret: null` an open ballot).
  const zero = await inject('PUT', '/api/governance/colleges', [{ slug: 'a', nameFr: 'A', nameEn: 'A', weightPct: 0 }]);
  t.equal(zero.statusCode, 400, `a college weight of 0 is refused (${zero.statusCode} ${zero.body})`);
  const quota = await inject('PUT', '/api/services/pads/settings', { defaultQuotaMb: 0 });
  t.equal(quota.statusCode, 400, `a quota of 0 MB is refused (${quota.statusCode} ${quota.body})`);
  const open = await inject('POST', '/api/polls', { kind: 'proposal', title: 'x', secret: null, opensAt: iso(Date.now()), closesAt: iso(Date.now() + 1000) });
  t.equal(open.statusCode, 400, `a ballot neither secret nor open is refused (${open.statusCode}, secret: ${open.json().secret})`);
  t.equal((await inject('POST', `/api/members/${m.id}/payments`, { amountCents: 1500, method: 'cash', paidOn: addDays(today(), 1) })).statusCode, 201, 'a payment dated tomorrow (a treasurer on a slower clock) is taken');
});

t.test('unicode tricks in names and options', async (t) => {
  const rt = await bare(t);
  t.throws(() => applyForMembership(rt.db, { kind: 'person', name: 'Alice \u202Eecilа' }, 'test'), /name/, 'a right-to-left override in a member name (printed lists, CSV)');
  t.throws(() => createPoll({ db: rt.db, catalog: rt.catalog }, { kind: 'single', title: 'Choix', secret: true, opensAt: iso(Date.now()), closesAt: iso(Date.now() + 1000), options: ['café', 'cafe\u0301'] }, 'test'),
    /once/, 'two options that look the same (NFC and NFD)');
});

t.test('a hostile member: twice, early, late, for another without their proxy, chained or extra proxies, while lapsed', async (t) => {
  const rt = await bare(t);
  const { db } = rt;
  const [m0, m1, m2, m3, m4, m5] = await freeMembers(rt, 6);
  updateMember(db, m0!, { board: true }, 'test');
  const lapsed = (await lapsedMember(rt, 'lucie')).member.id;
  const applicant = applyForMembership(db, { kind: 'person', name: 'Candidate', category: 'libre' }, 'test').id;
  const gone = (await freeMembers(rt, 1, 'r'))[0]!;
  resign(db, gone, 'test');
  const meeting = createMeeting(db, { kind: 'general', title: 'AG', startsAt: iso(Date.now()) }, 'test');
  giveProxy(db, meeting.id, m1!, m0!, 'test');
  t.throws(() => giveProxy(db, meeting.id, m2!, m0!, 'test'), /at most 1 proxy/, 'no more proxies than the statutes allow');
  t.throws(() => giveProxy(db, meeting.id, m0!, m3!, 'test'), /carries proxies of others/, 'a holder does not pass the proxies on');
  t.throws(() => giveProxy(db, meeting.id, m3!, m1!, 'test'), /has given their own/, 'nor does one who gave theirs collect others');
  t.throws(() => giveProxy(db, meeting.id, lapsed, m3!, 'test'), /dues/, 'a lapsed member has no vote to give');
  t.throws(() => giveProxy(db, meeting.id, m3!, lapsed, 'test'), /dues/, 'nor to carry');
  t.throws(() => giveProxy(db, meeting.id, applicant, m3!, 'test'), /admitted/, 'an applicant has none');

  const T0 = Date.now() + 10_000; const T1 = T0 + 60_000;
  const p = createPoll({ db, catalog: rt.catalog }, { kind: 'proposal', title: 'AG', secret: true, meetingId: meeting.id, opensAt: iso(T0), closesAt: iso(T1) }, 'test');
  t.throws(() => castVote(db, p.id, m3!, 'agree', { now: iso(T0 - 1) }), /opens at/, 'a millisecond early is refused');
  castVote(db, p.id, m3!, 'agree', { now: iso(T0) });
  t.throws(() => castVote(db, p.id, m4!, 'agree', { now: iso(T1) }), /closed/, 'at the closing time is too late');
  castVote(db, p.id, m4!, 'agree', { now: iso(T1 - 1) });
  castVote(db, p.id, m0!, 'disagree', { now: iso(T0), forMemberId: m1! });
  t.throws(() => castVote(db, p.id, m0!, 'agree', { now: iso(T0), forMemberId: m1! }), /already voted/, 'a proxy is used once');
  t.throws(() => castVote(db, p.id, m1!, 'agree', { now: iso(T0) }), /gave your proxy/, 'the giver does not vote too');
  t.throws(() => castVote(db, p.id, m0!, 'agree', { now: iso(T0), forMemberId: m2! }), /do not hold/, 'no vote for a member whose proxy one does not hold');
  t.throws(() => castVote(db, p.id, m2!, 'agree', { now: iso(T0), forMemberId: m1! }), /do not hold/);
  withdrawProxy(db, meeting.id, m1!, 'test');
  t.throws(() => castVote(db, p.id, m1!, 'agree', { now: iso(T0) }), /already voted/, 'withdrawing the proxy after it was used gives no second vote');
  t.throws(() => castVote(db, p.id, lapsed, 'agree', { now: iso(T0) }), /dues/, 'lapsed: no vote');
  t.throws(() => castVote(db, p.id, applicant, 'agree', { now: iso(T0) }), /admitted/, 'applicant: no vote');
  t.throws(() => castVote(db, p.id, gone, 'agree', { now: iso(T0) }), /admitted/, 'resigned: no vote');
  t.throws(() => castVote(db, p.id, m5!, { agree: true }, { now: iso(T0) }), /not a valid ballot/, 'a ballot of another shape');
  const tries = await Promise.allSettled(Array.from({ length: 20 }, () => Promise.resolve().then(() => castVote(db, p.id, m5!, 'agree', { now: iso(T0) }))));
  t.equal(tries.filter((r) => r.status === 'fulfilled').length, 1, 'twenty tries at once: one ballot');
  const open = createPoll({ db, catalog: rt.catalog }, { kind: 'proposal', title: 'Hors AG', secret: false, opensAt: iso(T0), closesAt: iso(T1) }, 'test');
  t.throws(() => castVote(db, open.id, m0!, 'agree', { now: iso(T0), forMemberId: m2! }), /meeting/, 'no proxy outside a meeting\'s votes');
  const board = createPoll({ db, catalog: rt.catalog }, { kind: 'proposal', title: 'CA', secret: true, electorate: 'board', opensAt: iso(T0), closesAt: iso(T1) }, 'test');
  t.throws(() => castVote(db, board.id, m3!, 'agree', { now: iso(T0) }), /board/, 'a board vote is the board\'s');
  updateSettings(db, { maxProxies: 0 }, 'test');
  t.throws(() => giveProxy(db, meeting.id, m5!, m4!, 'test'), /at most 0/, 'statutes with no proxies: none');

  // What a member, or anyone, can read of the secret poll once it is counted: totals, never a voter.
  closeDuePolls({ db, catalog: rt.catalog }, iso(T1));
  const read = await rt.app.inject({ method: 'GET', url: '/api/decisions', headers: { authorization: '' } });
  t.equal(read.statusCode, 200);
  t.notMatch(read.body, /Membre|lucie|createdBy|open_?voter|castBy|"test"/i, 'the public register names nobody');
  const counted = read.json().find((d: { id: number }) => d.id === p.id);
  t.same(counted.result.colleges[0].counts, { agree: 3, abstain: 0, disagree: 1, block: 0 }, 'the proxy\'s ballot counted once');
});

t.test('a hostile holder: a proxy withdrawn once used and another given does not let them vote for more members than the statutes allow', async (t) => {
  const rt = await bare(t);
  const { db } = rt;
  const [holder, first, second] = await freeMembers(rt, 3);
  const meeting = createMeeting(db, { kind: 'general', title: 'AG', startsAt: iso(Date.now()) }, 'test');
  const p = createPoll({ db, catalog: rt.catalog }, { kind: 'proposal', title: 'AG', secret: true, meetingId: meeting.id, opensAt: iso(Date.now() - 1000), closesAt: iso(Date.now() + 60_000) }, 'test');
  giveProxy(db, meeting.id, first!, holder!, 'test');
  castVote(db, p.id, holder!, 'agree', { forMemberId: first! });
  withdrawProxy(db, meeting.id, first!, 'test');
  giveProxy(db, meeting.id, second!, holder!, 'test');
  t.throws(() => castVote(db, p.id, holder!, 'agree', { forMemberId: second! }), /at most 1 other/, 'the second proxy vote in the same poll is refused (statutes: 1)');
  castVote(db, p.id, holder!, 'agree');
  t.pass('the holder still votes for themselves');
});

// ── findings left to the lead: each test runs, and its assertion of the wanted behaviour is marked todo ───────────────────────────────

t.test('resigning before the dues lapse does not keep a members-only service for good', async (t) => {
  const rt = await bare(t);
  const { member, account } = await lapsedMember(rt, 'eve');
  resign(rt.db, member.id, 'test');
  const gate = { ...rt.accounts, engineFor: () => fakeEngine([]) };
  await duesGatePass(gate);
  t.equal(stateOf(rt, account.id).state, 'active', 'a former member keeps the service through the grace after leaving');
  await duesGatePass(gate, addDays(today(), 6));
  t.equal(stateOf(rt, account.id).state, 'suspended', 'past it, a former member whose dues are not paid loses the members-only service');
  t.ok(held(rt, account.id), 'held by the dues gate (resumed if they join again and pay)');
  // One who paid for the year and resigns keeps it until the end of what they paid, and the grace.
  const { member: paid, account: theirs } = await lapsedMember(rt, 'fanny');
  recordPayment(rt.db, paid.id, { amountCents: 300, method: 'cash' }, 'test');
  resign(rt.db, paid.id, 'test');
  await duesGatePass(gate, addDays(today(), 20));
  t.equal(stateOf(rt, theirs.id).state, 'active', 'within the period paid, a former member keeps the service');
  await duesGatePass(gate, addDays(today(), 40));
  t.equal(stateOf(rt, theirs.id).state, 'suspended', 'after it and the grace, not');
});

t.test('one board member alone can make a decision act, in a minute, with no quorum', async (t) => {
  const todo = 'a poll carrying an action could require a quorum, a minimum duration, or a meeting';
  const rt = await bare(t);
  const [boardMember] = await freeMembers(rt, 3);
  updateMember(rt.db, boardMember!, { board: true }, 'test');
  const now = Date.now();
  // A board member may create polls (POST /api/polls is admin and board); the default quorum of a poll is 0.
  const p = createPoll({ db: rt.db, catalog: rt.catalog }, { kind: 'proposal', title: 'Délai de grâce', secret: true, electorate: 'board', opensAt: iso(now), closesAt: iso(now + 60_000), action: { type: 'dues.graceDays', days: 0 } }, 'user:board');
  castVote(rt.db, p.id, boardMember!, 'agree', { now: iso(now) });
  closeDuePolls({ db: rt.db, catalog: rt.catalog }, iso(now + 60_000));
  t.not(rt.db.select().from(polls).where(eq(polls.id, p.id)).get()!.actionStatus, 'applied', 'a decision that acts needs more than one person and one minute', { todo });
});

t.test('roles: a lapsed board member loses the board role (fixed on main); a person role "board" outlives an exclusion', async (t) => {
  const rt = await bare(t);
  const todo = 'member and board could be left out of the roles an admin gives a person (PERSON_ROLES), as they come from the membership';
  const { member, user } = await lapsedMember(rt, 'fanny');
  updateMember(rt.db, member.id, { board: true }, 'test');
  t.same(membershipRoles(rt.db, user.id), ['member'], 'past the grace, no board powers (admit, exclude, polls that act)');
  const outsider = await createUser(rt.db, { login: 'gaspard', name: 'Gaspard', roles: ['resident', 'board'] });
  const excludedM = applyForMembership(rt.db, { kind: 'person', name: 'Gaspard', userId: outsider.id, category: 'mois' }, 'test');
  admit(rt.db, excludedM.id, 'test');
  exclude(rt.db, excludedM.id, 'test', 'raison', 'AG 2026');
  const token = createSession(rt.db, sessionPolicy(rt.config), outsider.id, 'password');
  const req = { routeOptions: { url: '/x', config: { page: true } }, cookies: { [rt.app.cookieNames.session]: token }, server: rt.app, headers: {}, principal: null, user: null } as unknown as FastifyRequest;
  createPrincipalResolver({ db: rt.db, session: sessionPolicy(rt.config) })(req);
  t.notOk(req.principal?.roles.includes('board'), 'an excluded member keeps no board role', { todo });
});

