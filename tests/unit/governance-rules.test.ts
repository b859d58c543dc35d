// The statutes' rules on colleges (src/governance/rules.ts) as properties over generated configurations: a SCIC
// (loi 1947, art. 19 octies) is refused outside 10–50 % per college or below three colleges and accepted inside; weights
// are all explicit or all equal, and add up to 100 %; an association (loi 1901) is free within those two rules. The
// shares the tally uses (statutory, then effective when some colleges cast no vote) are checked against exact integers.
import assert from 'node:assert/strict';
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { checkColleges, collegeProblems, effectiveShares, statutoryShares } from '../../src/governance/rules.js';
import { isCatteryError } from '../../src/errors.js';

const RUNS = { numRuns: 500 };

/** Runs a property and reports it as one tap assertion, with fast-check's counterexample when it fails. */
function holds<Ts>(t: Test, property: fc.IProperty<Ts>, params: fc.Parameters<Ts> = RUNS) {
  const out = fc.check(property, params);
  t.notOk(out.failed, out.failed ? fc.defaultReportMessage(out) ?? 'failed' : `${out.numRuns} generated cases`);
}

/** n positive integers adding up to `total`: the cut points of [0, total]. */
const composition = (n: number, total: number): fc.Arbitrary<number[]> => (n === 1
  ? fc.constant([total])
  : fc.uniqueArray(fc.integer({ min: 1, max: total - 1 }), { minLength: n - 1, maxLength: n - 1 }).map((cuts) => {
    const s = [0, ...cuts.sort((a, b) => a - b), total];
    return s.slice(1).map((x, i) => x - s[i]!);
  }));

/** n integers in [lo, hi] adding up to `total` (lo·n ≤ total ≤ hi·n): start at lo and hand out the rest in random
 * steps, never past hi. */
const boundedComposition = (n: number, lo: number, hi: number, total: number) =>
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: hi - lo })), { minLength: 64, maxLength: 64 }).map((steps) => {
    const w = Array.from({ length: n }, () => lo);
    let left = total - lo * n;
    for (const [at, by] of steps) {
      if (left === 0) break;
      const i = at % n;
      const give = Math.min(by, hi - w[i]!, left);
      w[i]! += give; left -= give;
    }
    // Whatever the steps left over goes to the first colleges that still have room (always enough: total ≤ hi·n).
    for (let i = 0; left > 0; i++) { const give = Math.min(hi - w[i]!, left); w[i]! += give; left -= give; }
    return w;
  });

/** Weights in hundredths of a percent (two decimals, as the pages take them) turned into the stored percent. */
const pct = (hundredths: number[]) => hundredths.map((h, i) => ({ slug: `c${i}`, weightPct: h / 100 }));

t.test('SCIC: explicit weights adding up to 100 % are accepted exactly when there are ≥ 3 colleges and each holds 10–50 %', async (t) => {
  const seen = { accepted: 0, refused: 0 };
  // Any split, one inside the bounds, or one near them (9.5–50.5 %), so that both sides of each bound come up often.
  const split = fc.integer({ min: 1, max: 12 }).chain((n) => fc.oneof(
    composition(n, 10000),
    ...(n >= 2 && n <= 10 ? [boundedComposition(n, 1000, 5000, 10000), boundedComposition(n, 950, 5050, 10000)] : []),
  ));
  holds(t, fc.property(split, (w) => {
    // The law's figures, written out here rather than imported, so that a changed constant in rules.ts shows.
    const inside = w.length >= 3 && w.every((h) => h >= 1000 && h <= 5000);
    const problems = collegeProblems('scic', pct(w));
    seen[inside ? 'accepted' : 'refused']++;
    assert.equal(problems.length === 0, inside, `${w.join('/')}: ${problems.join('; ')}`);
    // Every refusal names the article it applies.
    for (const p of problems) assert.match(p, /art\. 19 octies/);
  }), RUNS);
  t.ok(seen.accepted > 10 && seen.refused > 10, `both sides generated: ${JSON.stringify(seen)}`);
});

t.test('SCIC: any configuration inside the rules is accepted (generated inside 10–50 %, 3 to 10 colleges)', async (t) => {
  holds(t, fc.property(fc.integer({ min: 3, max: 10 }).chain((n) => boundedComposition(n, 1000, 5000, 10000)), (w) => {
    assert.equal(w.reduce((s, x) => s + x, 0), 10000);
    assert.deepEqual(collegeProblems('scic', pct(w)), [], w.join('/'));
    checkColleges('scic', pct(w));
  }), RUNS);
});

t.test('SCIC: one college a hundredth of a point outside 10–50 % is refused', async (t) => {
  // The bounds themselves are allowed ("no more than 50 %, no less than 10 %").
  t.same(collegeProblems('scic', pct([5000, 4000, 1000])), [], '50/40/10');
  t.same(collegeProblems('scic', pct([3000, 3000, 3000, 1000])), [], '30/30/30/10');
  holds(t, fc.property(fc.integer({ min: 3, max: 9 }).chain((n) => fc.tuple(
    boundedComposition(n, 1000, 5000, 10000), fc.nat(n - 1), fc.boolean(),
  )), ([w, i, up]) => {
    // Move one hundredth of a point to or from college i, past the bound it is nearest to, taking it from or giving it
    // to another college that stays inside: only college i breaks the rule.
    const target = up ? 5001 : 999;
    const moved = target - w[i]!;
    const out = [...w]; out[i] = target;
    let rest = -moved;
    for (let j = 0; j < out.length && rest !== 0; j++) {
      if (j === i) continue;
      const room = rest > 0 ? 5000 - out[j]! : 1000 - out[j]!;
      const step = rest > 0 ? Math.min(rest, room) : Math.max(rest, room);
      out[j]! += step; rest -= step;
    }
    fc.pre(rest === 0);
    const problems = collegeProblems('scic', pct(out));
    assert.equal(problems.length, 1, `${out.join('/')}: ${problems.join('; ')}`);
    assert.match(problems[0]!, up ? /at most 50 %/ : /at least 10 %/);
  }), RUNS);
});

t.test('SCIC with equal weights: accepted exactly from 3 to 10 colleges (100/n within 10–50 %)', async (t) => {
  for (let n = 0; n <= 15; n++) {
    const colleges = Array.from({ length: n }, (_, i) => ({ slug: `c${i}`, weightPct: null }));
    t.equal(collegeProblems('scic', colleges).length === 0, n >= 3 && n <= 10, `SCIC, ${n} colleges`);
    // An association may have any number of colleges with equal weights, none at all included.
    t.same(collegeProblems('association', colleges), [], `association, ${n} colleges`);
  }
});

t.test('both forms: weights either all explicit or all equal', async (t) => {
  holds(t, fc.property(
    fc.constantFrom('scic' as const, 'association' as const),
    fc.array(fc.option(fc.integer({ min: 1, max: 10000 }), { nil: null }), { minLength: 2, maxLength: 8 }),
    (form, hs) => {
      const mixed = hs.some((h) => h === null) && hs.some((h) => h !== null);
      fc.pre(mixed);
      const problems = collegeProblems(form, hs.map((h, i) => ({ slug: `c${i}`, weightPct: h === null ? null : h / 100 })));
      assert.ok(problems.some((p) => /either every college has a weight, or none has/.test(p)), problems.join('; '));
    },
  ), RUNS);
});

t.test('both forms: explicit weights that do not add up to 100 % are refused; an association takes any that do', async (t) => {
  holds(t, fc.property(
    fc.constantFrom('scic' as const, 'association' as const),
    fc.array(fc.integer({ min: 1, max: 10000 }), { minLength: 1, maxLength: 8 }),
    (form, hs) => {
      const sum = hs.reduce((s, x) => s + x, 0);
      const problems = collegeProblems(form, pct(hs));
      const sumProblem = problems.some((p) => /add up to/.test(p));
      assert.equal(sumProblem, sum !== 10000, `${hs.join('/')}: ${problems.join('; ')}`);
      if (form === 'association') assert.equal(problems.length === 0, sum === 10000);
    },
  ), RUNS);
  // Any split of 100 % suits an association, a 95/5 one included.
  holds(t, fc.property(fc.integer({ min: 1, max: 12 }).chain((n) => composition(n, 10000)), (w) => {
    assert.deepEqual(collegeProblems('association', pct(w)), []);
  }), RUNS);
});

t.test('both forms: a weight is above 0 and at most 100 %', async (t) => {
  for (const bad of [0, -5, 100.01, Number.NaN, Number.POSITIVE_INFINITY]) {
    for (const form of ['scic', 'association'] as const) {
      const problems = collegeProblems(form, [{ slug: 'a', weightPct: bad }, { slug: 'b', weightPct: 50 }, { slug: 'c', weightPct: 50 }]);
      t.ok(problems.some((p) => /above 0 and at most 100/.test(p)), `${form} ${bad}: ${problems.join('; ')}`);
    }
  }
});

t.test('checkColleges throws CATTERY_ERR_STATUTES (422) with every reason, exactly when there is one', async (t) => {
  holds(t, fc.property(
    fc.constantFrom('scic' as const, 'association' as const),
    fc.array(fc.option(fc.integer({ min: 0, max: 10000 }), { nil: null }), { maxLength: 8 }),
    (form, hs) => {
      const colleges = hs.map((h, i) => ({ slug: `c${i}`, weightPct: h === null ? null : h / 100 }));
      const problems = collegeProblems(form, colleges);
      let thrown: unknown = null;
      try { checkColleges(form, colleges); } catch (e) { thrown = e; }
      if (!problems.length) { assert.equal(thrown, null); return; }
      assert.ok(isCatteryError(thrown));
      const e = thrown as Error & { code: string; statusCode: number };
      assert.equal(e.code, 'CATTERY_ERR_STATUTES');
      assert.equal(e.statusCode, 422);
      for (const p of problems) assert.ok(e.message.includes(p));
    },
  ), RUNS);
});

t.test('statutory shares: the weights over their sum (or 1/n), adding up to 1', async (t) => {
  holds(t, fc.property(
    fc.integer({ min: 1, max: 10 }).chain((n) => fc.tuple(
      fc.uniqueArray(fc.integer({ min: 1, max: 10000 }), { minLength: n, maxLength: n }),
      fc.option(composition(n, 10000), { nil: null }),
    )),
    ([ids, w]) => {
      const colleges = ids.map((id, i) => ({ id, weightPct: w ? w[i]! / 100 : null }));
      const s = statutoryShares(colleges);
      assert.ok(Math.abs([...s.values()].reduce((a, x) => a + x, 0) - 1) < 1e-12);
      ids.forEach((id, i) => assert.ok(Math.abs(s.get(id)! - (w ? w[i]! / 10000 : 1 / ids.length)) < 1e-12));
    },
  ), RUNS);
});

t.test('effective shares: the colleges that took part share 1 in the proportions of their statutory weights', async (t) => {
  holds(t, fc.property(
    fc.integer({ min: 1, max: 10 }).chain((n) => fc.tuple(
      fc.uniqueArray(fc.integer({ min: 1, max: 10000 }), { minLength: n, maxLength: n }),
      fc.option(composition(n, 10000), { nil: null }),
      fc.array(fc.boolean(), { minLength: n, maxLength: n }),
    )),
    ([ids, w, took]) => {
      fc.pre(took.some(Boolean));
      const colleges = ids.map((id, i) => ({ id, weightPct: w ? w[i]! / 100 : null }));
      const present = new Set(ids.filter((_, i) => took[i]));
      const e = effectiveShares(colleges, present);
      assert.deepEqual([...e.keys()].sort((a, b) => a - b), [...present].sort((a, b) => a - b), 'only those present');
      assert.ok(Math.abs([...e.values()].reduce((a, x) => a + x, 0) - 1) < 1e-12);
      // Exactly: share_i = W_i / Σ_present W, with W the weight in hundredths (or 1 each when equal).
      const W = (i: number) => (w ? w[i]! : 1);
      const sum = ids.reduce((s, _, i) => s + (took[i] ? W(i) : 0), 0);
      ids.forEach((id, i) => { if (took[i]) assert.ok(Math.abs(e.get(id)! - W(i) / sum) < 1e-12); });
      // Everyone present: effective is statutory.
      const all = effectiveShares(colleges, new Set(ids));
      const stat = statutoryShares(colleges);
      for (const id of ids) assert.ok(Math.abs(all.get(id)! - stat.get(id)!) < 1e-12);
    },
  ), RUNS);
});
