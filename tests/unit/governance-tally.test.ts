// The weighted tally (src/governance/tally.ts) as properties over generated memberships and ballots (issue 11): each
// college counts for its weight whatever its size, a college's share never moves when another college grows, quorum
// holds exactly at its boundary, blocks and abstentions do what the statutes say, each kind of poll picks the winner
// its rule defines (checked against exact rational oracles written here, independently of the code under test), the
// order of the ballots never matters, and an association without colleges is one member one vote. validChoice accepts
// exactly the valid ballots of each kind. The worked examples of docs/governance.md are checked against tally() here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { GRADES, NO_COLLEGE, PROPOSAL_CHOICES, tally, validChoice, type TallyInput, type TallyResult } from '../../src/governance/tally.js';
import type { PollKind } from '../../src/governance/schema.js';

const RUNS = 300;

/** Runs a property and reports it as one tap assertion, with fast-check's counterexample when it fails. */
function holds<Ts>(t: Test, property: fc.IProperty<Ts>, params: fc.Parameters<Ts> = { numRuns: RUNS }) {
  const out = fc.check(property, params);
  t.notOk(out.failed, out.failed ? fc.defaultReportMessage(out) ?? 'failed' : `${out.numRuns} generated cases`);
}

// ---- exact rationals, for the oracles ----------------------------------------------------------------------------
interface Q { n: bigint; d: bigint }
const gcd = (a: bigint, b: bigint): bigint => { a = a < 0n ? -a : a; b = b < 0n ? -b : b; while (b) [a, b] = [b, a % b]; return a; };
const q = (n: bigint | number, d: bigint | number = 1): Q => {
  let N = BigInt(n); let D = BigInt(d);
  if (D < 0n) { N = -N; D = -D; }
  const g = gcd(N, D) || 1n;
  return { n: N / g, d: D / g };
};
const add = (a: Q, b: Q) => q(a.n * b.d + b.n * a.d, a.d * b.d);
const mul = (a: Q, b: Q) => q(a.n * b.n, a.d * b.d);
const cmp = (a: Q, b: Q) => Math.sign(Number(a.n * b.d - b.n * a.d));
const num = (a: Q) => Number(a.n) / Number(a.d);
const ZERO = q(0);
const HALF = q(1, 2);
const sum = (xs: Q[]) => xs.reduce(add, ZERO);

// ---- generated polls ---------------------------------------------------------------------------------------------
const OPTIONS = ['A', 'B', 'C', 'D', 'E'];

interface College { id: number; hundredths: number | null }
interface Poll {
  kind: PollKind;
  options: string[];
  /** Empty: an association without colleges (one member one vote). */
  colleges: College[];
  /** Choices per college key (NO_COLLEGE without colleges). */
  byCollege: Map<number, unknown[]>;
  /** Members who did not vote, per college key. */
  idle: Map<number, number>;
  quorumPct: number;
  quorumPerCollege: boolean;
  blockStops: boolean;
}

/** n positive integers adding up to `total`. */
const composition = (n: number, total: number): fc.Arbitrary<number[]> => (n === 1
  ? fc.constant([total])
  : fc.uniqueArray(fc.integer({ min: 1, max: total - 1 }), { minLength: n - 1, maxLength: n - 1 }).map((cuts) => {
    const s = [0, ...cuts.sort((a, b) => a - b), total];
    return s.slice(1).map((x, i) => x - s[i]!);
  }));

/** Colleges with distinct ids, and either equal weights or explicit ones in hundredths of a percent adding up to 100 %. */
const collegesArb = (min: number, max: number): fc.Arbitrary<College[]> => fc.integer({ min, max }).chain((n) => (n === 0
  ? fc.constant([])
  : fc.tuple(
    fc.uniqueArray(fc.integer({ min: 1, max: 999 }), { minLength: n, maxLength: n }),
    fc.option(composition(n, 10000), { nil: null, freq: 2 }),
  ).map(([ids, w]) => ids.map((id, i) => ({ id, hundredths: w ? w[i]! : null })))));

const judgmentArb = (options: string[]) => fc.tuple(...options.map(() => fc.integer({ min: 0, max: GRADES.length - 1 })))
  .map((g) => Object.fromEntries(options.map((o, i) => [o, g[i]!])) as Record<string, number>);

/** A valid choice of each kind (what validChoice lets into the ballots table). */
const choiceArb = (kind: PollKind, options: string[]): fc.Arbitrary<unknown> => {
  switch (kind) {
    case 'proposal': return fc.constantFrom(...PROPOSAL_CHOICES);
    case 'single': return fc.constantFrom(...options);
    case 'judgment': return judgmentArb(options);
    case 'ranked': return fc.shuffledSubarray(options, { minLength: 1 });
  }
};

interface PollShape { minColleges?: number; maxColleges?: number; maxBallots?: number; minOptions?: number; maxOptions?: number; choice?: (options: string[]) => fc.Arbitrary<unknown> }
const pollArb = (kind: PollKind, shape: PollShape = {}): fc.Arbitrary<Poll> => fc.record({
  options: fc.integer({ min: shape.minOptions ?? 2, max: shape.maxOptions ?? 4 }).map((k) => OPTIONS.slice(0, k)),
  colleges: collegesArb(shape.minColleges ?? 0, shape.maxColleges ?? 5),
}).chain(({ options, colleges }) => {
  const keys = colleges.length ? colleges.map((c) => c.id) : [NO_COLLEGE];
  const choice = shape.choice ? shape.choice(options) : choiceArb(kind, options);
  return fc.tuple(
    fc.tuple(...keys.map(() => fc.array(choice, { maxLength: shape.maxBallots ?? 10 }))),
    fc.tuple(...keys.map(() => fc.nat(4))),
    fc.boolean(),
  ).map(([lists, idle, blockStops]): Poll => ({
    kind, options, colleges, blockStops, quorumPct: 0, quorumPerCollege: false,
    byCollege: new Map(keys.map((k, i) => [k, lists[i]!])),
    idle: new Map(keys.map((k, i) => [k, idle[i]!])),
  }));
});

const keysOf = (p: Poll) => [...p.byCollege.keys()];
const ballotsOf = (p: Poll) => keysOf(p).flatMap((k) => p.byCollege.get(k)!.map((choice) => ({ collegeId: p.colleges.length ? k : null, choice })));
const inputOf = (p: Poll, ballots = ballotsOf(p)): TallyInput => ({
  kind: p.kind, options: p.options, ballots,
  colleges: p.colleges.map((c) => ({ id: c.id, weightPct: c.hundredths === null ? null : c.hundredths / 100 })),
  eligible: new Map(keysOf(p).map((k) => [k, p.byCollege.get(k)!.length + p.idle.get(k)!])),
  quorumPct: p.quorumPct, quorumPerCollege: p.quorumPerCollege, blockStops: p.blockStops,
});
const run = (p: Poll) => tally(inputOf(p));
const withBallots = (p: Poll, key: number, more: unknown[]): Poll =>
  ({ ...p, byCollege: new Map([...p.byCollege].map(([k, cs]) => [k, k === key ? [...cs, ...more] : cs])) });

// ---- the oracles: the rules of docs/governance.md, in exact arithmetic --------------------------------------------
/** A college's statutory weight, exactly: its hundredths, or 1 each when weights are equal (or there are no colleges). */
const weightOf = (p: Poll, key: number) => BigInt(p.colleges.find((c) => c.id === key)?.hundredths ?? 1);
/** The shares of the colleges among `keys`: statutory weights over their sum. */
function sharesAmong(p: Poll, keys: number[]): Map<number, Q> {
  const total = keys.reduce((s, k) => s + weightOf(p, k), 0n);
  return new Map(keys.map((k) => [k, q(weightOf(p, k), total)]));
}
const voting = (p: Poll) => keysOf(p).filter((k) => p.byCollege.get(k)!.length > 0);

/** Proposal: each college that cast a decisive ballot (agree, disagree, block) shares its weight among them. */
function proposalOracle(p: Poll) {
  const decisive = (k: number) => p.byCollege.get(k)!.filter((c) => c !== 'abstain');
  const shares = sharesAmong(p, keysOf(p).filter((k) => decisive(k).length > 0));
  const part = (choice: string) => sum([...shares].map(([k, s]) => mul(s, q(decisive(k).filter((c) => c === choice).length, decisive(k).length))));
  const blocked = p.blockStops && [...p.byCollege.values()].some((cs) => cs.includes('block'));
  const agree = part('agree');
  return { shares, agree, disagree: part('disagree'), block: part('block'), blocked, passed: !blocked && cmp(agree, HALF) > 0 };
}

/** Each option's weighted share of the ballots for a single-choice poll. */
function singleOracle(p: Poll) {
  const shares = sharesAmong(p, voting(p));
  const w = new Map(p.options.map((o) => [o, sum([...shares].map(([k, s]) => {
    const cs = p.byCollege.get(k)!;
    return mul(s, q(cs.filter((c) => c === o).length, cs.length));
  }))]));
  const best = [...w.values()].reduce((m, x) => (cmp(x, m) > 0 ? x : m), ZERO);
  const top = p.options.filter((o) => cmp(w.get(o)!, best) === 0);
  return { w, winner: cmp(best, ZERO) > 0 && top.length === 1 ? top[0]! : null };
}

/** Majority judgment: each ballot weighs its college's share over its number of ballots; the majority grade is the
 * (weighted) lower median, the highest grade that more than half the weight gives at least; then the majority gauge
 * (Balinski & Laraki): the larger of the shares strictly above (+) and strictly below (−) the majority grade. */
function judgmentGauges(p: Poll) {
  const shares = sharesAmong(p, voting(p));
  return p.options.map((o) => {
    const dist = GRADES.map(() => ZERO);
    for (const [k, s] of shares) {
      const cs = p.byCollege.get(k)! as Record<string, number>[];
      for (const c of cs) dist[c[o]!] = add(dist[c[o]!]!, mul(s, q(1, cs.length)));
    }
    let grade = 0;
    for (let g = GRADES.length - 1; g >= 0; g--) if (cmp(sum(dist.slice(g)), HALF) > 0) { grade = g; break; }
    const above = sum(dist.slice(grade + 1));
    const below = sum(dist.slice(0, grade));
    return cmp(above, below) > 0 ? { grade, sign: '+' as const, share: above } : { grade, sign: '-' as const, share: below };
  });
}
type Gauge = ReturnType<typeof judgmentGauges>[number];
const gaugeCmp = (a: Gauge, b: Gauge) => (a.grade !== b.grade ? a.grade - b.grade
  : a.sign !== b.sign ? (a.sign === '+' ? 1 : -1)
    : a.sign === '+' ? cmp(a.share, b.share) : cmp(b.share, a.share));
function judgmentOracle(p: Poll) {
  const gauges = judgmentGauges(p);
  if (!voting(p).length) return { gauges, winner: null };
  const best = gauges.reduce((m, g) => (gaugeCmp(g, m) > 0 ? g : m));
  const top = p.options.filter((_, i) => gaugeCmp(gauges[i]!, best) === 0);
  return { gauges, winner: top.length === 1 ? top[0]! : null };
}

/** Instant run-off, followed through every way of breaking a tie for the fewest votes (one option out at a time): an
 * option wins when it wins whichever way the ties are broken; otherwise nobody does. */
function rankedOracle(p: Poll): { winner: string | null; firstRound: Map<string, Q> } {
  const shares = sharesAmong(p, voting(p));
  const ballots = [...shares].flatMap(([k, s]) => p.byCollege.get(k)!.map((r) => ({ w: mul(s, q(1, p.byCollege.get(k)!.length)), r: r as string[] })));
  const memo = new Map<string, string | null>();
  const tallyOf = (running: string[]) => {
    const t = new Map(running.map((o) => [o, ZERO]));
    for (const b of ballots) { const top = b.r.find((o) => running.includes(o)); if (top) t.set(top, add(t.get(top)!, b.w)); }
    return t;
  };
  const go = (running: string[]): string | null => {
    const key = running.join(',');
    if (memo.has(key)) return memo.get(key)!;
    const t = tallyOf(running);
    const live = sum([...t.values()]);
    let out: string | null;
    if (cmp(live, ZERO) === 0) out = null;
    else {
      const lead = running.find((o) => cmp(t.get(o)!, mul(live, HALF)) > 0);
      if (lead) out = lead;
      else {
        const low = [...t.values()].reduce((m, x) => (cmp(x, m) < 0 ? x : m));
        const ends = running.filter((o) => cmp(t.get(o)!, low) === 0).map((o) => go(running.filter((x) => x !== o)));
        out = ends[0] !== null && ends.every((e) => e === ends[0]) ? ends[0]! : null;
      }
    }
    memo.set(key, out);
    return out;
  };
  return { winner: go(p.options), firstRound: tallyOf(p.options) };
}

const near = (a: number, b: number, eps = 1e-3) => Math.abs(a - b) <= eps;
const pctOf = (x: Q) => num(x) * 100;

// ---- each college counts for its weight ---------------------------------------------------------------------------
t.test('proposal: the weighted shares, each college\'s counted share and the verdict are the exact weighted rule', async (t) => {
  holds(t, fc.property(pollArb('proposal'), (p) => {
    const r = run(p);
    const o = proposalOracle(p);
    assert.ok(near(r.weighted.agree!, pctOf(o.agree)) && near(r.weighted.disagree!, pctOf(o.disagree)) && near(r.weighted.block!, pctOf(o.block)), JSON.stringify(r.weighted));
    const stat = sharesAmong(p, keysOf(p));
    for (const c of r.colleges) {
      assert.ok(near(c.weightPct, pctOf(stat.get(c.collegeId)!)), 'statutory share');
      assert.ok(near(c.countedPct, pctOf(o.shares.get(c.collegeId) ?? ZERO)), 'counted share');
      assert.equal(c.ballots, p.byCollege.get(c.collegeId)!.length);
    }
    assert.equal(r.outcome, o.passed ? 'passed' : 'rejected');
    assert.equal(r.winner, o.passed ? 'agree' : o.blocked ? 'block' : 'disagree');
  }));
});

t.test('one college all agree, the others all disagree: agree = that college\'s share; all voting, counted = statutory', async (t) => {
  holds(t, fc.property(
    collegesArb(1, 6).chain((colleges) => fc.tuple(fc.constant(colleges), fc.nat(colleges.length - 1),
      fc.array(fc.integer({ min: 1, max: 7 }), { minLength: colleges.length, maxLength: colleges.length }))),
    ([colleges, yes, sizes]) => {
      const p: Poll = {
        kind: 'proposal', options: [], colleges, blockStops: true, quorumPct: 0, quorumPerCollege: false,
        byCollege: new Map(colleges.map((c, i) => [c.id, Array.from({ length: sizes[i]! }, () => (i === yes ? 'agree' : 'disagree'))])),
        idle: new Map(colleges.map((c) => [c.id, 0])),
      };
      const r = run(p);
      const share = sharesAmong(p, keysOf(p)).get(colleges[yes]!.id)!;
      for (const c of r.colleges) assert.equal(c.countedPct, c.weightPct, 'every college voted: counted = statutory');
      assert.equal(r.weighted.agree, r.colleges[yes]!.countedPct);
      assert.ok(near(r.weighted.agree!, pctOf(share)));
      // Whatever the sizes: the verdict is the college's weight against half.
      assert.equal(r.outcome, cmp(share, HALF) > 0 ? 'passed' : 'rejected');
    },
  ));
});

t.test('single choice: the winner is the weighted argmax, and a tie (or no ballot) is reported as tied', async (t) => {
  let ties = 0;
  holds(t, fc.property(pollArb('single', { maxBallots: 6 }), (p) => {
    const r = run(p);
    const o = singleOracle(p);
    for (const opt of p.options) assert.ok(near(r.weighted[opt]!, pctOf(o.w.get(opt)!)), opt);
    assert.equal(r.winner, o.winner);
    assert.equal(r.outcome, o.winner === null ? 'tied' : 'decided');
    if (o.winner === null) ties++;
  }), { numRuns: 500 });
  t.ok(ties > 10, `ties came up (${ties})`);
});

t.test('majority judgment: each option\'s majority gauge and the winner are the exact weighted rule', async (t) => {
  holds(t, fc.property(pollArb('judgment', { maxBallots: 6 }), (p) => {
    const r = run(p);
    const o = judgmentOracle(p);
    const detail = r.detail as Record<string, { grade: string; sign: string; share: number }>;
    if (voting(p).length) {
      p.options.forEach((opt, i) => {
        const g = o.gauges[i]!;
        assert.equal(detail[opt]!.grade, GRADES[g.grade], `${opt} majority grade`);
        assert.equal(detail[opt]!.sign, g.sign, `${opt} gauge sign`);
        assert.ok(near(detail[opt]!.share, pctOf(g.share)), `${opt} gauge share`);
      });
    }
    assert.equal(r.winner, o.winner);
    assert.equal(r.outcome, o.winner === null ? 'tied' : 'decided');
  }), { numRuns: 500 });
});

t.test('majority judgment: the majority grade is the lower median of the grades (one member one vote)', async (t) => {
  holds(t, fc.property(pollArb('judgment', { maxColleges: 0, maxBallots: 12 }), (p) => {
    const cs = p.byCollege.get(NO_COLLEGE)! as Record<string, number>[];
    fc.pre(cs.length > 0);
    const detail = run(p).detail as Record<string, { grade: string }>;
    for (const o of p.options) {
      const sorted = cs.map((c) => c[o]!).sort((a, b) => a - b);
      assert.equal(detail[o]!.grade, GRADES[sorted[Math.floor((sorted.length - 1) / 2)]!], `${o}: ${sorted.join(',')}`);
    }
  }));
});

t.test('majority judgment: an option graded at least as high as another on every ballot never loses to it', async (t) => {
  holds(t, fc.property(pollArb('judgment', { maxBallots: 6 }), fc.nat(3), fc.nat(3), (p0, a, b) => {
    const [A, B] = [p0.options[a % p0.options.length]!, p0.options[b % p0.options.length]!];
    fc.pre(A !== B);
    // Raise A to B's grade wherever it was below.
    const p = { ...p0, byCollege: new Map([...p0.byCollege].map(([k, cs]) => [k, (cs as Record<string, number>[]).map((c) => ({ ...c, [A]: Math.max(c[A]!, c[B]!) }))])) };
    assert.notEqual(run(p).winner, B);
  }));
});

t.test('majority judgment: the result is the same when every ballot is cast twice (or thrice)', async (t) => {
  holds(t, fc.property(pollArb('judgment', { maxBallots: 6 }), fc.integer({ min: 2, max: 3 }), (p, k) => {
    const r = run(p);
    const r2 = run({ ...p, byCollege: new Map([...p.byCollege].map(([key, cs]) => [key, Array.from({ length: k }, () => cs).flat()])) });
    assert.equal(r2.outcome, r.outcome);
    assert.equal(r2.winner, r.winner);
    assert.deepEqual(r2.weighted, r.weighted);
    const [d, d2] = [r.detail, r2.detail] as Record<string, { grade: string; sign: string; share: number }>[];
    for (const o of p.options) {
      assert.equal(d2![o]!.grade, d![o]!.grade);
      assert.equal(d2![o]!.sign, d![o]!.sign);
      assert.ok(near(d2![o]!.share, d![o]!.share));
    }
  }));
});

t.test('ranked (instant run-off): an option with more than half of the weighted first preferences wins at once', async (t) => {
  let majorities = 0;
  holds(t, fc.property(pollArb('ranked', { maxOptions: 5, maxBallots: 6 }), (p) => {
    const { firstRound } = rankedOracle(p);
    const live = sum([...firstRound.values()]);
    const lead = p.options.find((o) => cmp(firstRound.get(o)!, mul(live, HALF)) > 0);
    const r = run(p);
    for (const o of p.options) assert.ok(near(r.weighted[o]!, pctOf(firstRound.get(o)!)), `${o} first preferences`);
    if (!lead) return;
    majorities++;
    assert.equal(r.winner, lead);
    assert.equal((r.detail as { rounds: unknown[] }).rounds.length, 1, 'decided in the first round');
  }), { numRuns: 500 });
  t.ok(majorities > 50, `first-round majorities came up (${majorities})`);
});

t.test('ranked: an option nobody ranks never wins', async (t) => {
  holds(t, fc.property(
    fc.integer({ min: 3, max: 5 }).chain((k) => fc.tuple(fc.constant(k), fc.nat(k - 1))).chain(([k, ghost]) => fc.tuple(
      fc.constant(OPTIONS[ghost]!),
      pollArb('ranked', { minOptions: k, maxOptions: k, maxBallots: 6, choice: (opts) => fc.shuffledSubarray(opts.filter((o) => o !== OPTIONS[ghost]), { minLength: 1 }) }),
    )),
    ([ghost, p]) => { assert.notEqual(run(p).winner, ghost); },
  ));
});

t.test('ranked: options tied for the fewest votes do not drop out together when, together, they could win', async (t) => {
  // 34 / 33 / 33 %: B's and C's colleges (66 %) rank A last. Dropping B and C at once made A win; dropping either one
  // gives the other 66 %: B or C wins depending on which tie-break, so nobody wins outright.
  const input: TallyInput = {
    kind: 'ranked', options: ['A', 'B', 'C'], quorumPct: 0, quorumPerCollege: false, blockStops: true,
    colleges: [{ id: 1, weightPct: 34 }, { id: 2, weightPct: 33 }, { id: 3, weightPct: 33 }],
    ballots: [{ collegeId: 1, choice: ['A', 'B', 'C'] }, { collegeId: 2, choice: ['B', 'C', 'A'] }, { collegeId: 3, choice: ['C', 'B', 'A'] }],
    eligible: new Map([[1, 1], [2, 1], [3, 1]]),
  };
  const r = tally(input);
  t.equal(r.winner, null, 'A, ranked last by 66 %, does not win');
  t.equal(r.outcome, 'tied');
  // When B's and C's voters both go on to A, A wins whichever of B and C drops out first.
  const r2Ballots = [{ collegeId: 1, choice: ['A'] }, { collegeId: 2, choice: ['B', 'A'] }, { collegeId: 3, choice: ['C', 'A'] }];
  const r2 = tally({ ...input, ballots: r2Ballots });
  t.equal(r2.winner, 'A', 'the same winner for every tie-break: it wins');
  t.equal(r2.outcome, 'decided');
  // Options with no vote at all still drop out together, in one round (none of them could overtake anyone).
  const r4 = tally({ ...input, options: ['A', 'B', 'C', 'D', 'E'], ballots: r2Ballots });
  t.equal(r4.winner, 'A');
  t.same((r4.detail as { rounds: Record<string, number>[] }).rounds.map((round) => Object.keys(round)), [['A', 'B', 'C', 'D', 'E'], ['A', 'B', 'C'], ['A', 'C']]);
});

t.test('ranked: the winner is the run-off\'s winner whichever way ties for the fewest votes are broken, else nobody', async (t) => {
  let ties = 0;
  holds(t, fc.property(pollArb('ranked', { maxOptions: 5, maxBallots: 5 }), (p) => {
    const r = run(p);
    const { winner } = rankedOracle(p);
    assert.equal(r.winner, winner);
    assert.equal(r.outcome, winner === null ? 'tied' : 'decided');
    if (winner === null) ties++;
  }), { numRuns: 1000 });
  t.ok(ties > 20, `ties came up (${ties})`);
});

t.test('ranked: an option that a weighted majority ranks last never wins (full rankings)', async (t) => {
  holds(t, fc.property(
    pollArb('ranked', { minOptions: 3, maxOptions: 5, maxBallots: 5, choice: (opts) => fc.shuffledSubarray(opts, { minLength: opts.length }) }),
    (p) => {
      const shares = sharesAmong(p, voting(p));
      for (const o of p.options) {
        const last = sum([...shares].map(([k, s]) => {
          const cs = p.byCollege.get(k)! as string[][];
          return mul(s, q(cs.filter((r) => r[r.length - 1] === o).length, cs.length));
        }));
        if (cmp(last, HALF) > 0) assert.notEqual(run(p).winner, o, `${o} is ranked last by ${num(last)}`);
      }
    },
  ), { numRuns: 1000 });
});

// ---- a college's share never moves when another college grows ------------------------------------------------------
const KINDS: PollKind[] = ['proposal', 'single', 'judgment', 'ranked'];

t.test('every kind: ballots added to a college that voted never change another college\'s weight or counted share', async (t) => {
  for (const kind of KINDS) {
    holds(t, fc.property(
      pollArb(kind, { minColleges: 2, maxBallots: 6 }).chain((p) => fc.tuple(
        fc.constant(p), fc.nat(p.colleges.length - 1), fc.array(choiceArb(kind, p.options), { minLength: 1, maxLength: 6 }),
      )),
      ([p, i, more]) => {
        const grown = p.colleges[i]!.id;
        // The college already takes part: for a proposal, it has a decisive ballot (a college of abstentions takes no side).
        const cs = p.byCollege.get(grown)!;
        fc.pre(kind === 'proposal' ? cs.some((c) => c !== 'abstain') : cs.length > 0);
        const before = run(p);
        const after = run(withBallots(p, grown, more));
        for (const [b, a] of before.colleges.map((c, j) => [c, after.colleges[j]!] as const)) {
          assert.equal(a.weightPct, b.weightPct, 'statutory share');
          if (b.collegeId === grown) continue;
          assert.equal(a.countedPct, b.countedPct, `counted share of college ${b.collegeId}`);
          assert.deepEqual([a.ballots, a.eligible, a.counts], [b.ballots, b.eligible, b.counts]);
        }
      },
    ), { numRuns: 200 });
  }
});

t.test('every kind: members who do not vote change no weight, no share and no result (only the quorum)', async (t) => {
  for (const kind of KINDS) {
    holds(t, fc.property(
      pollArb(kind, { maxBallots: 6 }).chain((p) => fc.tuple(fc.constant(p), fc.nat(keysOf(p).length - 1), fc.integer({ min: 1, max: 50 }))),
      ([p, i, extra]) => {
        const k = keysOf(p)[i]!;
        const before = run(p);
        const after = run({ ...p, idle: new Map([...p.idle].map(([key, n]) => [key, key === k ? n + extra : n])) });
        assert.deepEqual(after.weighted, before.weighted);
        assert.deepEqual([after.outcome, after.winner, after.detail], [before.outcome, before.winner, before.detail]);
        assert.deepEqual(after.colleges.map((c) => [c.weightPct, c.countedPct]), before.colleges.map((c) => [c.weightPct, c.countedPct]));
        assert.equal(after.quorum.eligible, before.quorum.eligible + extra);
      },
    ), { numRuns: 200 });
  }
});

// ---- quorum --------------------------------------------------------------------------------------------------------
/** Electorate sizes per college and a quorum; ballots are then placed by each property. */
const electorateArb = fc.record({
  colleges: collegesArb(1, 5),
  quorumPct: fc.integer({ min: 1, max: 100 }),
}).chain(({ colleges, quorumPct }) => fc.tuple(
  fc.constant(colleges), fc.constant(quorumPct),
  fc.array(fc.integer({ min: 1, max: 40 }), { minLength: colleges.length, maxLength: colleges.length }),
));
const pollWith = (colleges: College[], quorumPct: number, perCollege: boolean, eligible: number[], voted: number[]): Poll => ({
  kind: 'proposal', options: [], colleges, blockStops: true, quorumPct, quorumPerCollege: perCollege,
  byCollege: new Map(colleges.map((c, i) => [c.id, Array.from({ length: voted[i]! }, () => 'agree')])),
  idle: new Map(colleges.map((c, i) => [c.id, eligible[i]! - voted[i]!])),
});

t.test('quorum over all members: reached exactly when 100 × voted ≥ quorum × eligible (at the boundary and one below)', async (t) => {
  holds(t, fc.property(electorateArb, fc.boolean(), ([colleges, quorumPct, eligible], under) => {
    const E = eligible.reduce((s, x) => s + x, 0);
    const need = Math.ceil((quorumPct * E) / 100);
    const V = under ? need - 1 : need;
    fc.pre(V >= 0);
    // Spread V ballots over the colleges, each within its members.
    const voted = eligible.map(() => 0);
    for (let left = V, i = 0; left > 0; i++) { const n = Math.min(eligible[i]!, left); voted[i] = n; left -= n; }
    const r = run(pollWith(colleges, quorumPct, false, eligible, voted));
    assert.equal(r.quorum.reached, !under, `${V}/${E} at ${quorumPct} %`);
    assert.deepEqual([r.quorum.voted, r.quorum.eligible], [V, E]);
    assert.equal(r.outcome === 'no_quorum', under);
    if (under) assert.equal(r.winner, null);
  }), { numRuns: 500 });
});

t.test('quorum per college: reached exactly when every college reaches it (each at its boundary, or one college one below)', async (t) => {
  holds(t, fc.property(electorateArb, fc.nat(4), fc.boolean(), ([colleges, quorumPct, eligible], j, under) => {
    const voted = eligible.map((e) => Math.ceil((quorumPct * e) / 100));
    const short = j % colleges.length;
    if (under) voted[short]! -= 1;
    const r = run(pollWith(colleges, quorumPct, true, eligible, voted));
    assert.equal(r.quorum.reached, !under, `${voted.join(',')} of ${eligible.join(',')} at ${quorumPct} %`);
    assert.equal(r.outcome === 'no_quorum', under);
  }), { numRuns: 500 });
});

t.test('quorum, any turnout: the overall and per-college rules in integers; a 0 % quorum is always reached', async (t) => {
  holds(t, fc.property(pollArb('proposal'), fc.integer({ min: 0, max: 100 }), fc.boolean(), (p0, quorumPct, perCollege) => {
    const p = { ...p0, quorumPct, quorumPerCollege: perCollege };
    const r = run(p);
    const V = (k: number) => p.byCollege.get(k)!.length;
    const E = (k: number) => V(k) + p.idle.get(k)!;
    // A college with no member at all under a per-college quorum is left out here: whether it blocks every poll is the
    // statutes' call (tally.ts says it does today), not a rule this property should fix.
    fc.pre(!(perCollege && p.colleges.length) || keysOf(p).every((k) => E(k) > 0));
    const ok = (v: number, e: number) => quorumPct === 0 || (e > 0 && 100 * v >= quorumPct * e);
    const expected = perCollege && p.colleges.length
      ? keysOf(p).every((k) => ok(V(k), E(k)))
      : ok(keysOf(p).reduce((s, k) => s + V(k), 0), keysOf(p).reduce((s, k) => s + E(k), 0));
    assert.equal(r.quorum.reached, expected);
  }), { numRuns: 500 });
});

// ---- blocks and abstentions ----------------------------------------------------------------------------------------
t.test('block, when the statutes make it stop a proposal: any block rejects it, whatever the weights', async (t) => {
  holds(t, fc.property(pollArb('proposal', { minColleges: 0 }), fc.nat(4), (p0, i) => {
    const p = withBallots({ ...p0, blockStops: true }, keysOf(p0)[i % keysOf(p0).length]!, ['block']);
    const r = run(p);
    assert.equal(r.outcome, 'rejected');
    assert.equal(r.winner, 'block');
    assert.deepEqual(r.detail, { blocked: true });
  }));
});

t.test('block, when the statutes do not make it stop: it counts exactly as a disagree', async (t) => {
  holds(t, fc.property(pollArb('proposal'), (p0) => {
    const p = { ...p0, blockStops: false };
    const asDisagree = { ...p, byCollege: new Map([...p.byCollege].map(([k, cs]) => [k, cs.map((c) => (c === 'block' ? 'disagree' : c))])) };
    const [r, r2] = [run(p), run(asDisagree)];
    assert.equal(r.outcome, r2.outcome);
    assert.equal(r.weighted.agree, r2.weighted.agree);
    assert.ok(near(r.weighted.disagree! + r.weighted.block!, r2.weighted.disagree!));
    assert.deepEqual(r.colleges.map((c) => c.countedPct), r2.colleges.map((c) => c.countedPct));
    assert.deepEqual(r.detail, { blocked: false });
  }));
});

t.test('abstentions, anywhere and in any number, never change the agree/disagree/block shares nor the verdict', async (t) => {
  holds(t, fc.property(
    pollArb('proposal').chain((p) => fc.tuple(fc.constant(p), fc.array(fc.tuple(fc.nat(keysOf(p).length - 1), fc.integer({ min: 1, max: 5 })), { minLength: 1, maxLength: 4 }))),
    ([p, adds]) => {
      let more = p;
      for (const [i, n] of adds) more = withBallots(more, keysOf(p)[i]!, Array.from({ length: n }, () => 'abstain'));
      const [r, r2] = [run(p), run(more)];
      assert.deepEqual(r2.weighted, r.weighted);
      assert.deepEqual([r2.outcome, r2.winner], [r.outcome, r.winner]);
      assert.deepEqual(r2.colleges.map((c) => c.countedPct), r.colleges.map((c) => c.countedPct));
    },
  ));
});

// ---- order and the association without colleges ------------------------------------------------------------------
t.test('every kind: the order of the ballots (and of the colleges) never changes any result', async (t) => {
  for (const kind of KINDS) {
    holds(t, fc.property(
      pollArb(kind, { maxBallots: 6 }).chain((p) => {
        const ballots = ballotsOf(p);
        return fc.tuple(fc.constant(p), fc.shuffledSubarray(ballots, { minLength: ballots.length, maxLength: ballots.length }),
          fc.shuffledSubarray(p.colleges, { minLength: p.colleges.length, maxLength: p.colleges.length }));
      }),
      ([p, shuffled, colleges]) => {
        const r = run(p);
        assert.deepEqual(tally(inputOf(p, shuffled)), r);
        const byId = (x: TallyResult) => ({ ...x, colleges: [...x.colleges].sort((a, b) => a.collegeId - b.collegeId) });
        assert.deepEqual(byId(tally(inputOf({ ...p, colleges }))), byId(r));
      },
    ), { numRuns: 200 });
  }
});

t.test('an association without colleges: one member one vote, exactly as one college holding everyone', async (t) => {
  for (const kind of KINDS) {
    holds(t, fc.property(pollArb(kind, { maxColleges: 0, maxBallots: 12 }), fc.integer({ min: 1, max: 999 }), (p, id) => {
      const cs = p.byCollege.get(NO_COLLEGE)!;
      const r = run(p);
      // The same ballots in one college, with its weight explicit (100 %) or equal: the same result.
      for (const hundredths of [10000, null]) {
        const one: Poll = { ...p, colleges: [{ id, hundredths }], byCollege: new Map([[id, cs]]), idle: new Map([[id, p.idle.get(NO_COLLEGE)!]]) };
        const r1 = run(one);
        assert.deepEqual([r1.outcome, r1.winner, r1.weighted, r1.detail, r1.quorum], [r.outcome, r.winner, r.weighted, r.detail, r.quorum]);
      }
      // And plain counts decide: one ballot, one vote.
      const count = (c: unknown) => cs.filter((x) => x === c).length;
      if (kind === 'proposal') {
        const decisive = cs.length - count('abstain');
        if (decisive) assert.ok(near(r.weighted.agree!, (100 * count('agree')) / decisive));
        assert.equal(r.outcome, !(p.blockStops && count('block')) && 2 * count('agree') > decisive ? 'passed' : 'rejected');
      }
      if (kind === 'single') {
        const top = Math.max(...p.options.map(count));
        const best = p.options.filter((o) => count(o) === top);
        assert.equal(r.winner, top > 0 && best.length === 1 ? best[0] : null);
      }
      // A ballot's college is ignored without colleges (a stale one cannot change its weight).
      assert.deepEqual(tally({ ...inputOf(p), ballots: ballotsOf(p).map((b) => ({ ...b, collegeId: id })) }), r);
    }), { numRuns: 200 });
  }
});

// ---- validChoice ---------------------------------------------------------------------------------------------------
/** Whether a JSON value is a valid ballot, written from the rules: a proposal's four choices; one of the options; a grade
 * 0–5 (integer) for exactly every option; a non-empty list of distinct options. */
function validOracle(kind: PollKind, options: string[], c: unknown): boolean {
  switch (kind) {
    case 'proposal': return (PROPOSAL_CHOICES as readonly unknown[]).includes(c);
    case 'single': return typeof c === 'string' && options.includes(c);
    case 'judgment': {
      if (typeof c !== 'object' || c === null || Array.isArray(c)) return false;
      const keys = Object.keys(c).sort();
      return keys.length === options.length && keys.every((k, i) => k === [...options].sort()[i])
        && Object.values(c).every((g) => Number.isInteger(g) && (g as number) >= 0 && (g as number) <= 5);
    }
    case 'ranked': return Array.isArray(c) && c.length > 0 && c.every((o) => typeof o === 'string' && options.includes(o)) && new Set(c).size === c.length;
  }
}

/** Option names, some of them the names of Object.prototype's members (a ballot must not find a grade there). */
const optionNamesArb = fc.uniqueArray(fc.oneof(fc.constantFrom('A', 'B', 'C', 'pads', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '0', ' A'), fc.string({ minLength: 1, maxLength: 6 })), { minLength: 1, maxLength: 5 })
  .filter((o) => !o.includes('__proto__'));

/** Near misses of each kind: a valid choice, then one thing wrong with it. */
const nearMissArb = (kind: PollKind, options: string[]): fc.Arbitrary<unknown> => {
  const other = fc.string({ maxLength: 6 }).filter((s) => !options.includes(s));
  const notAGrade = fc.oneof(fc.constantFrom(-1, 6, 2.5, Number.NaN, '3', null, true, [3]), fc.integer({ min: 6 }), fc.integer({ max: -1 }));
  switch (kind) {
    case 'proposal': return fc.oneof(fc.constantFrom('Agree', 'AGREE', ' agree', 'agree ', 'yes', 'no', '', ['agree'], { agree: 1 }, 1, null),
      fc.string({ maxLength: 8 }).filter((s) => !(PROPOSAL_CHOICES as readonly string[]).includes(s)));
    case 'single': return fc.oneof(other, fc.constantFrom(...options).map((o) => [o]), fc.constantFrom(...options).map((o) => ({ [o]: 1 })), fc.constantFrom(0, 1, null, true));
    case 'judgment': return judgmentArb(options).chain((v) => fc.oneof(
      fc.constantFrom(...options).map((o) => { const w = { ...v }; delete w[o]; return w; }),
      other.map((o) => ({ ...v, [o]: 3 })),
      fc.tuple(fc.constantFrom(...options), notAGrade).map(([o, g]) => ({ ...v, [o]: g })),
      fc.constant(options.map((o) => v[o])),
    ));
    case 'ranked': return fc.shuffledSubarray(options, { minLength: 1 }).chain((r) => fc.oneof(
      fc.constant([]), fc.constant([...r, r[0]]), other.map((o) => [...r, o]), fc.constant(r.join(',')), fc.constant([...r, 1]), fc.constant([...r, null]),
    ));
  }
};

t.test('validChoice accepts exactly the valid ballots of each kind: generated valid ones, near misses, any JSON', async (t) => {
  for (const kind of KINDS) {
    const optionsAnd = <T>(f: (options: string[]) => fc.Arbitrary<T>) => optionNamesArb.chain((options) => fc.tuple(fc.constant(options), f(options)));
    holds(t, fc.property(optionsAnd((o) => choiceArb(kind, o)), ([options, c]) => {
      assert.equal(validChoice(kind, options, c), true, JSON.stringify(c));
    }), { numRuns: 200 });
    holds(t, fc.property(optionsAnd((o) => nearMissArb(kind, o)), ([options, c]) => {
      assert.equal(validChoice(kind, options, c), false, JSON.stringify(c));
      assert.equal(validOracle(kind, options, c), false, 'the oracle agrees it is invalid');
    }), { numRuns: 300 });
    holds(t, fc.property(optionsAnd(() => fc.jsonValue({ maxDepth: 2 })), ([options, c]) => {
      assert.equal(validChoice(kind, options, c), validOracle(kind, options, c), JSON.stringify(c));
    }), { numRuns: 300 });
  }
});

// ---- the worked examples of docs/governance.md ----------------------------------------------------------------------
t.test('docs/governance.md: every worked example\'s result is what tally() gives for its input', async (t) => {
  const doc = fs.readFileSync(new URL('../../docs/governance.md', import.meta.url), 'utf8');
  const blocks = [...doc.matchAll(/```json (tally-example|tally-result)\n([\s\S]*?)\n```/g)].map((m) => ({ tag: m[1]!, json: JSON.parse(m[2]!) }));
  t.ok(blocks.length >= 16, `${blocks.length / 2} examples`);
  for (let i = 0; i < blocks.length; i += 2) {
    const [ex, shown] = [blocks[i]!, blocks[i + 1]!];
    t.same([ex.tag, shown?.tag], ['tally-example', 'tally-result'], 'an example is followed by its result');
    // The compact form of the page: ballots per college as [choice, how many] pairs.
    const e = ex.json as { kind: PollKind; options?: string[]; colleges: { id: number; weightPct: number | null }[]; eligible: Record<string, number>; ballots: Record<string, [unknown, number][]>; quorumPct: number; quorumPerCollege: boolean; blockStops: boolean };
    const r = tally({
      kind: e.kind, options: e.options ?? [], quorumPct: e.quorumPct, quorumPerCollege: e.quorumPerCollege, blockStops: e.blockStops,
      colleges: e.colleges.map((c) => ({ id: c.id, weightPct: c.weightPct })),
      eligible: new Map(Object.entries(e.eligible).map(([k, v]) => [Number(k), v])),
      ballots: Object.entries(e.ballots).flatMap(([k, list]) => list.flatMap(([choice, n]) => Array.from({ length: n }, () => ({ collegeId: e.colleges.length ? Number(k) : null, choice })))),
    });
    t.same({
      outcome: r.outcome, winner: r.winner, weighted: r.weighted, quorum: r.quorum,
      colleges: r.colleges.map((c) => ({ collegeId: c.collegeId, weightPct: c.weightPct, countedPct: c.countedPct, ballots: c.ballots })),
      ...(r.detail !== undefined ? { detail: r.detail } : {}),
    }, shown!.json, `example ${i / 2 + 1} (${e.kind})`);
  }
});

// ---- a known limit ---------------------------------------------------------------------------------------------------
t.test('a proposal passed by less than a billionth of the votes passes', {
  // Margins this thin need large colleges: among 20 random triples of colleges of 50–300 ballots (33.34/33.33/33.33 %),
  // the thinnest margin above one half was 7.4e-9.
  todo: 'the tally works in floating point with a 1e-9 tolerance, so a true margin below it reads as no majority; an '
    + 'exact verdict needs integer (BigInt) arithmetic over the weights in hundredths and the ballot counts',
}, async (t) => {
  // Two colleges at 50 %: 1 agree of 99,999 and 99,999 agree of 100,000: agree = 1/2 + 1/(2 × 99,999 × 100,000).
  const ballots = [
    ...Array.from({ length: 99999 }, (_, i) => ({ collegeId: 1, choice: i === 0 ? 'agree' : 'disagree' })),
    ...Array.from({ length: 100000 }, (_, i) => ({ collegeId: 2, choice: i < 99999 ? 'agree' : 'disagree' })),
  ];
  const r = tally({
    kind: 'proposal', options: [], ballots, colleges: [{ id: 1, weightPct: 50 }, { id: 2, weightPct: 50 }],
    eligible: new Map([[1, 99999], [2, 100000]]), quorumPct: 0, quorumPerCollege: false, blockStops: true,
  });
  t.equal(r.outcome, 'passed');
});
