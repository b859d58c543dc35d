// Statistical secrecy as a property (src/publication/suppression.ts), on thousands of generated tables with their
// margins, counts and magnitudes alike. What a reader sees — the published cells and totals — is checked by means
// independent of the implementation: each published cell against the rules, the difference "total − published cells"
// of every row and column, and, by Gaussian elimination over the whole system of the table's sums, that no hidden
// cell is determined exactly by everything published.
import t from 'tap';
import fc from 'fast-check';
import { DOMINANCE, suppress, type Cell, type Rules } from '../../src/publication/suppression.js';
import { loadConfig } from '../../src/config.js';

const RULES: Rules = { minGroup: 11, dominance: DOMINANCE };

// A cell: nobody, a few persons (the secret kind), or many; a count (each person 1) or a magnitude with its largest
// contribution somewhere between an equal share and all of it.
const cellArb = (magnitude: boolean): fc.Arbitrary<Cell> => fc.oneof(
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 10 }) },
  { weight: 1, arbitrary: fc.constant(11) },
  { weight: 4, arbitrary: fc.integer({ min: 12, max: 300 }) },
).chain((persons) => {
  if (persons === 0) return fc.constant({ persons: 0, value: 0, top: 0 });
  if (!magnitude) return fc.constant({ persons, value: persons, top: 1 });
  return fc.tuple(fc.integer({ min: 1, max: 100_000 }), fc.double({ min: 0, max: 1, noNaN: true })).map(([value, f]) => {
    const equal = value / persons;
    return { persons, value, top: equal + f * (value - equal) };
  });
});

const tableArb = fc.boolean().chain((magnitude) => fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }))
  .chain(([r, c]) => fc.array(fc.array(cellArb(magnitude), { minLength: c, maxLength: c }), { minLength: r, maxLength: r })));

const sensitive = (c: Cell, rules: Rules) => (c.persons > 0 && c.persons < rules.minGroup) || (c.value > 0 && c.top > rules.dominance * c.value);

/** The table with margins, summed here (not by the code under test). */
function margins(rows: Cell[][]): Cell[][] {
  const add = (cs: Cell[]) => cs.reduce((a, c) => ({ persons: a.persons + c.persons, value: a.value + c.value, top: Math.max(a.top, c.top) }), { persons: 0, value: 0, top: 0 });
  const ext = rows.map((r) => [...r, add(r)]);
  return [...ext, ext[0]!.map((_, j) => add(ext.map((r) => r[j]!)))];
}

/** Whether hidden cell k is fixed by the linear system of all row and column sums (published values known). */
function determined(hidden: boolean[][], k: [number, number]): boolean {
  const R = hidden.length, C = hidden[0]!.length;
  const vars: [number, number][] = [];
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) if (hidden[i]![j]) vars.push([i, j]);
  const idx = (i: number, j: number) => vars.findIndex(([a, b]) => a === i && b === j);
  const eqs: number[][] = [];
  // Row i: Σ_{j<C-1} x_ij − x_i,C-1 = 0 ; column j: Σ_{i<R-1} x_ij − x_R-1,j = 0. Known terms go to the right.
  for (let i = 0; i < R; i++) {
    const e = new Array(vars.length).fill(0);
    for (let j = 0; j < C; j++) { const v = idx(i, j); if (v >= 0) e[v] += j === C - 1 ? -1 : 1; }
    eqs.push(e);
  }
  for (let j = 0; j < C; j++) {
    const e = new Array(vars.length).fill(0);
    for (let i = 0; i < R; i++) { const v = idx(i, j); if (v >= 0) e[v] += i === R - 1 ? -1 : 1; }
    eqs.push(e);
  }
  const unit = new Array(vars.length).fill(0); unit[idx(k[0], k[1])] = 1;
  return rank([...eqs, unit]) === rank(eqs);
}

function rank(m: number[][]): number {
  const a = m.map((r) => [...r]);
  let rk = 0;
  const cols = a[0]?.length ?? 0;
  for (let c = 0; c < cols && rk < a.length; c++) {
    let p = rk;
    while (p < a.length && Math.abs(a[p]![c]!) < 1e-9) p++;
    if (p === a.length) continue;
    [a[rk], a[p]] = [a[p]!, a[rk]!];
    for (let r = 0; r < a.length; r++) {
      if (r === rk) continue;
      const f = a[r]![c]! / a[rk]![c]!;
      if (f !== 0) for (let k = c; k < cols; k++) a[r]![k]! -= f * a[rk]![k]!;
    }
    rk++;
  }
  return rk;
}

/** What a reader learns, checked against the rules; returns a problem or undefined. */
function leak(rows: Cell[][], rules: Rules): string | undefined {
  const s = suppress(rows, rules);
  const ext = margins(rows);
  const R = ext.length, C = ext[0]!.length;
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) {
    const got = s.cells[i]![j]!, want = ext[i]![j]!;
    if (got.persons !== want.persons || Math.abs(got.value - want.value) > 1e-6 * Math.max(1, want.value)) return `cell ${i},${j} is not the true sum`;
    if (!s.hidden[i]![j] && sensitive(want, rules)) return `published cell ${i},${j} is secret: ${JSON.stringify(want)}`;
  }
  // Every row and column: with its total published, total − published cells is the group of its hidden cells.
  const lines: [number, number][][] = [];
  for (let i = 0; i < R; i++) lines.push(Array.from({ length: C }, (_, j) => [i, j]));
  for (let j = 0; j < C; j++) lines.push(Array.from({ length: R }, (_, i) => [i, j]));
  for (const line of lines) {
    const [ti, tj] = line[line.length - 1]!;
    const inner = line.slice(0, -1);
    const hid = inner.filter(([i, j]) => s.hidden[i]![j]);
    if (s.hidden[ti]![tj]) { if (hid.length === 0) return `a hidden total ${ti},${tj} equals the sum of its published cells`; continue; }
    if (hid.length === 0) continue;
    if (hid.length === 1) return `hidden cell ${hid[0]} is its line's total minus the published cells`;
    const group = hid.map(([i, j]) => ext[i]![j]!).reduce((a, c) => ({ persons: a.persons + c.persons, value: a.value + c.value, top: Math.max(a.top, c.top) }));
    if (sensitive(group, rules)) return `line ending ${ti},${tj} reveals a secret group ${JSON.stringify(group)}`;
  }
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) if (s.hidden[i]![j] && determined(s.hidden, [i, j])) return `hidden cell ${i},${j} is determined by the published sums`;
  return undefined;
}

t.test('no published cell, line difference or combination of sums reveals a secret group', async (t) => {
  let hiddenSeen = 0, tables = 0;
  fc.assert(fc.property(tableArb, (rows) => {
    tables++;
    const problem = leak(rows, RULES);
    if (problem) throw new Error(problem);
    hiddenSeen += suppress(rows, RULES).hidden.flat().filter(Boolean).length;
  }), { numRuns: 4000 });
  t.ok(hiddenSeen > tables, `suppression was exercised (${hiddenSeen} hidden cells over ${tables} tables)`);
});

t.test('a raised threshold holds the same property', async (t) => {
  fc.assert(fc.property(tableArb, fc.integer({ min: 11, max: 60 }), (rows, minGroup) => {
    const problem = leak(rows, { minGroup, dominance: DOMINANCE });
    if (problem) throw new Error(problem);
  }), { numRuns: 1500 });
  t.pass();
});

t.test('nothing is hidden when no group is secret', async (t) => {
  // Every cell of 11 persons or more (or nobody), no account dominating: the table is published whole.
  const big = fc.oneof(fc.constant(0), fc.integer({ min: 11, max: 500 })).map((p) => ({ persons: p, value: p, top: p ? 1 : 0 }));
  fc.assert(fc.property(fc.integer({ min: 1, max: 6 }).chain((c) => fc.array(fc.array(big, { minLength: c, maxLength: c }), { minLength: 1, maxLength: 6 })), (rows) => {
    const s = suppress(rows, RULES);
    if (s.hidden.flat().some(Boolean)) throw new Error('a cell was hidden needlessly');
  }), { numRuns: 1000 });
  // And the classic case: one small cell costs its row and column partners, the smallest ones, and no more.
  const c = (p: number): Cell => ({ persons: p, value: p, top: 1 });
  const s = suppress([[c(3), c(40), c(50)], [c(30), c(60), c(70)], [c(20), c(80), c(90)]], RULES);
  t.same(s.hidden.map((r) => r.map((h) => (h ? 1 : 0))), [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], 'the 3 is hidden with 40, 20 and 80: a 4-cycle');
  t.equal(s.reason[0]![0], 'primary');
  t.equal(s.reason[0]![1], 'secondary');
});

t.test('the threshold is configurable upward only', async (t) => {
  t.throws(() => loadConfig({ CATTERY_SECRET_MIN_GROUP: '5' }), /below 11, INSEE's threshold/);
  t.throws(() => loadConfig({ CATTERY_SECRET_MIN_GROUP: 'ten' }), /not a whole number/);
  t.throws(() => loadConfig({}, { publication: { ...loadConfig({}).publication, minGroup: 10 } }), /below 11/);
  t.equal(loadConfig({ CATTERY_SECRET_MIN_GROUP: '20' }).publication.minGroup, 20);
  t.equal(loadConfig({}).publication.minGroup, 11);
});

// The series rule (figures.ts seriesWithheld): accounts at the end of each month are a series, and the difference of
// two published months would be the residents who came between them. Over generated histories (services, months,
// residents with one or more accounts), every two published months of a row differ by nothing or by at least the
// threshold; and a history whose months all differ by at least the threshold is published whole.
t.test('the series rule: no two published months of accounts differ by a group under the threshold', async (t) => {
  const { seriesWithheld, rulesOf } = await import('../../src/publication/figures.js');
  const rules = rulesOf(11);
  const months = ['2025-01', '2025-02', '2025-03', '2025-04', '2025-05', '2025-06'];
  const history = fc.array(fc.record({ service: fc.constantFrom('mail', 'files'), month: fc.integer({ min: 0, max: 5 }), user: fc.integer({ min: 1, max: 60 }) }), { maxLength: 120 });
  fc.assert(fc.property(history, (h) => {
    const live = h.map((a) => ({ service: a.service, slug: a.service, bytes: 0, items: 0, userId: a.user, createdAt: `${months[a.month]}-10T00:00:00.000Z` }));
    for (const row of ['mail', 'files', '\u0000total']) {
      const published: number[] = [];
      for (const m of months) {
        if (seriesWithheld(live, ['files', 'mail'], m, rules).has(row)) continue;
        const end = `${m}-31T23:59:59.999Z`;
        const v = live.filter((a) => (row === '\u0000total' || a.service === row) && a.createdAt < end).length;
        if (published.some((p) => p !== v && Math.abs(p - v) < 11)) return false;
        published.push(v);
      }
    }
    return true;
  }), { numRuns: 1500 });
  // Not vacuous: steps of 11 distinct residents each month are all published.
  const steady = months.flatMap((m, i) => Array.from({ length: 11 }, (_, k) => ({ service: 'files', slug: 'files', bytes: 0, items: 0, userId: i * 100 + k + 1, createdAt: `${m}-10T00:00:00.000Z` })));
  t.same(months.map((m) => seriesWithheld(steady, ['files'], m, rules).has('files')), months.map(() => false), 'steps of 11 are published every month');
  const small = [...steady.slice(0, 11), { service: 'files', slug: 'files', bytes: 0, items: 0, userId: 999, createdAt: '2025-02-10T00:00:00.000Z' }];
  t.same(months.slice(0, 2).map((m) => seriesWithheld(small, ['files'], m, rules).has('files')), [false, true], 'one resident more the next month: that month withheld');
});
