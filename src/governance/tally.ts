// Counting a poll, weighted by college. Pure: the ballots (each with its voter's college, never its voter), the
// colleges' weights and the electorate in; the result per college, the weighted total, the quorum and the outcome
// out. Inside a college one member is one vote (loi 1947, art. 9); each college's result then counts for its weight,
// whatever its size (art. 19 octies). docs/governance.md gives the rules with their sources and examples.
import { effectiveShares, type CollegeWeight } from './rules.js';
import type { PollKind, PollOutcome } from './schema.js';

export const PROPOSAL_CHOICES = ['agree', 'abstain', 'disagree', 'block'] as const;
export type ProposalChoice = (typeof PROPOSAL_CHOICES)[number];
/** Majority judgment's grades, worst to best (Balinski & Laraki, Majority Judgment, MIT Press 2011). */
export const GRADES = ['reject', 'poor', 'fair', 'good', 'very-good', 'excellent'] as const;

/** The college key of a ballot: the college's id, or 0 for an association without colleges (one member one vote). */
export const NO_COLLEGE = 0;

export interface TallyInput {
  kind: PollKind;
  /** The options of a single, judgment or ranked poll; a proposal's are PROPOSAL_CHOICES. */
  options: readonly string[];
  /** Empty: one member one vote, no colleges. */
  colleges: readonly CollegeWeight[];
  /** Each ballot with its voter's college; `count` identical ballots may come as one (default 1). */
  ballots: readonly { collegeId: number | null; choice: unknown; count?: number }[];
  /** Members with the right to vote in this poll, per college (for the quorum). */
  eligible: ReadonlyMap<number, number>;
  quorumPct: number;
  quorumPerCollege: boolean;
  blockStops: boolean;
}

export interface CollegeResult {
  collegeId: number;
  /** The college's statutory share and the share it counted for (a college with no vote leaves its share to the
   * others), in percent. */
  weightPct: number;
  countedPct: number;
  eligible: number;
  ballots: number;
  /** Ballots per option (per grade for a judgment: option → counts per grade; first preferences for a ranked poll). */
  counts: Record<string, number | number[]>;
}

export interface TallyResult {
  outcome: PollOutcome;
  quorum: { requiredPct: number; perCollege: boolean; reached: boolean; voted: number; eligible: number };
  colleges: CollegeResult[];
  /** The weighted share of each option in percent (agree/disagree/block for a proposal: of the decisive votes). */
  weighted: Record<string, number>;
  /** The option chosen (single, judgment, ranked), or the proposal's verdict. */
  winner: string | null;
  /** Majority judgment: each option's majority grade; ranked: the rounds. */
  detail?: unknown;
}

const EPS = 1e-12;

export function tally(input: TallyInput): TallyResult {
  const weighted = input.colleges.length > 0;
  const key = (c: number | null) => (weighted ? c ?? -1 : NO_COLLEGE);
  const groups = new Map<number, Weighted[]>();
  for (const b of input.ballots) {
    const k = key(b.collegeId);
    const n = b.count ?? 1;
    if (!(Number.isInteger(n) && n >= 1)) continue;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push({ choice: b.choice, n });
  }
  const colleges: CollegeWeight[] = weighted ? input.colleges.map((c) => ({ id: c.id, weightPct: c.weightPct })) : [{ id: NO_COLLEGE, weightPct: 100 }];
  // Ballots of a college that no longer exists count for nothing (a college is never deleted while it has members).
  const present = new Set(colleges.filter((c) => size(groups.get(c.id)) > 0).map((c) => c.id));
  const quorum = checkQuorum(input, colleges, groups);
  const options = input.kind === 'proposal' ? [...PROPOSAL_CHOICES] : [...input.options];
  const count = COUNTERS[input.kind];
  const perCollege = colleges.map((c) => ({ c, counts: count.counts(groups.get(c.id) ?? [], options) }));
  // For a proposal, a college whose members all abstained takes no side: its share goes to the colleges that did.
  const sides = input.kind === 'proposal'
    ? new Set(perCollege.filter(({ c, counts }) => present.has(c.id) && decisive(counts as Record<string, number>) > 0).map(({ c }) => c.id))
    : present;
  const shares = effectiveShares(colleges, sides);
  const statutory = effectiveShares(colleges, new Set(colleges.map((c) => c.id)));
  const result: CollegeResult[] = perCollege.map(({ c, counts }) => ({
    collegeId: c.id, weightPct: pct(statutory.get(c.id) ?? 0), countedPct: pct(shares.get(c.id) ?? 0),
    eligible: input.eligible.get(c.id) ?? 0, ballots: size(groups.get(c.id)), counts,
  }));
  const ballotsOf = new Map([...groups].filter(([id]) => shares.has(id)));
  const decided = count.decide(ballotsOf, shares, options, input);
  let outcome: PollOutcome = decided.outcome;
  if (!quorum.reached) outcome = 'no_quorum';
  return { outcome, quorum, colleges: result, weighted: decided.weighted, winner: outcome === 'no_quorum' ? null : decided.winner, detail: decided.detail };
}

function checkQuorum(input: TallyInput, colleges: CollegeWeight[], groups: Map<number, Weighted[]>): TallyResult['quorum'] {
  // Only ballots of a known college count: one of a college since removed counts for nothing, quorum included.
  const voted = colleges.reduce((s, c) => s + size(groups.get(c.id)), 0);
  const eligible = colleges.reduce((s, c) => s + (input.eligible.get(c.id) ?? 0), 0);
  const enough = (v: number, e: number) => (input.quorumPct <= 0 ? true : e > 0 && v * 100 >= input.quorumPct * e - EPS);
  const reached = input.quorumPerCollege && input.colleges.length > 0
    ? colleges.every((c) => enough(size(groups.get(c.id)), input.eligible.get(c.id) ?? 0))
    : enough(voted, eligible);
  return { requiredPct: input.quorumPct, perCollege: input.quorumPerCollege, reached, voted, eligible };
}

const pct = (x: number) => Math.round(x * 1e6) / 1e4;
/** A distinct ballot and how many voters of the college cast it. */
interface Weighted { choice: unknown; n: number }
const size = (g: readonly Weighted[] | undefined) => (g ?? []).reduce((s, b) => s + b.n, 0);
const decisive = (c: Record<string, number>) => (c.agree ?? 0) + (c.disagree ?? 0) + (c.block ?? 0);

interface Counter {
  counts(choices: Weighted[], options: string[]): Record<string, number | number[]>;
  decide(groups: Map<number, Weighted[]>, shares: Map<number, number>, options: string[], input: TallyInput):
    { outcome: PollOutcome; weighted: Record<string, number>; winner: string | null; detail?: unknown };
}

/** Each option's weighted share: per college, the share of its ballots that chose it, times the college's share. */
function sharesOf(groups: Map<number, Weighted[]>, shares: Map<number, number>, options: string[], pick: (choice: unknown) => string | null, among?: (o: string) => boolean) {
  const out: Record<string, number> = Object.fromEntries(options.map((o) => [o, 0]));
  for (const [id, choices] of groups) {
    const w = shares.get(id) ?? 0;
    const picked = choices.map((b) => ({ o: pick(b.choice), n: b.n })).filter((x): x is { o: string; n: number } => x.o !== null && (!among || among(x.o)));
    const total = picked.reduce((s, x) => s + x.n, 0);
    if (!total) continue;
    for (const x of picked) out[x.o] = (out[x.o] ?? 0) + (w * x.n) / total;
  }
  return out;
}

const single: Counter = {
  counts: (choices, options) => Object.fromEntries(options.map((o) => [o, size(choices.filter((b) => b.choice === o))])),
  decide(groups, shares, options) {
    const w = sharesOf(groups, shares, options, (c) => (typeof c === 'string' ? c : null));
    const best = Math.max(...options.map((o) => w[o]!));
    const top = options.filter((o) => Math.abs(w[o]! - best) < 1e-9);
    const weighted = Object.fromEntries(options.map((o) => [o, pct(w[o]!)]));
    if (best <= 0) return { outcome: 'tied', weighted, winner: null };
    return top.length === 1 ? { outcome: 'decided', weighted, winner: top[0]! } : { outcome: 'tied', weighted, winner: null };
  },
};

const proposal: Counter = {
  counts: single.counts,
  decide(groups, shares, options, input) {
    const w = sharesOf(groups, shares, options, (c) => (typeof c === 'string' ? c : null), (o) => o !== 'abstain');
    const weighted = Object.fromEntries(['agree', 'disagree', 'block'].map((o) => [o, pct(w[o]!)]));
    const blocked = input.blockStops && [...groups.values()].some((g) => g.some((b) => b.choice === 'block'));
    const passed = !blocked && w.agree! > 0.5 + 1e-9;
    return { outcome: passed ? 'passed' : 'rejected', weighted, winner: passed ? 'agree' : (blocked ? 'block' : 'disagree'), detail: { blocked } };
  },
};

/** A judgment ballot: every option gets a grade, 0 (reject) to 5 (excellent). */
const gradesOf = (c: unknown, options: string[]): number[] | null => {
  if (!c || typeof c !== 'object' || Array.isArray(c)) return null;
  const g = options.map((o) => (c as Record<string, unknown>)[o]);
  return g.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < GRADES.length) ? g as number[] : null;
};

const judgment: Counter = {
  counts: (choices, options) => Object.fromEntries(options.map((o, i) => {
    const per = GRADES.map(() => 0);
    for (const b of choices) { const g = gradesOf(b.choice, options); if (g) per[g[i]!]! += b.n; }
    return [o, per];
  })),
  decide(groups, shares, options) {
    // Each ballot weighs its college's share divided by the college's number of ballots.
    const dist = options.map(() => GRADES.map(() => 0));
    for (const [id, choices] of groups) {
      const valid = choices.map((b) => ({ g: gradesOf(b.choice, options), n: b.n })).filter((x): x is { g: number[]; n: number } => x.g !== null);
      const total = valid.reduce((s, x) => s + x.n, 0);
      for (const x of valid) x.g.forEach((grade, i) => { dist[i]![grade]! += ((shares.get(id) ?? 0) * x.n) / total; });
    }
    const gauges = dist.map((d) => gauge(d));
    const order = options.map((_, i) => i).sort((a, b) => compareGauge(gauges[b]!, gauges[a]!));
    const weighted = Object.fromEntries(options.map((o, i) => [o, gauges[i]!.grade]));
    const detail = Object.fromEntries(options.map((o, i) => [o, { grade: GRADES[gauges[i]!.grade], sign: gauges[i]!.sign, share: pct(gauges[i]!.share) }]));
    if (!order.length || dist.every((d) => d.every((x) => x === 0))) return { outcome: 'tied', weighted, winner: null, detail };
    const tied = order.length > 1 && compareGauge(gauges[order[0]!]!, gauges[order[1]!]!) === 0;
    return { outcome: tied ? 'tied' : 'decided', weighted, winner: tied ? null : options[order[0]!]!, detail };
  },
};

/** The majority gauge (Balinski & Laraki): the majority grade (lower median), then the side the rest leans to. */
interface Gauge { grade: number; sign: '+' | '-'; share: number }
function gauge(d: number[]): Gauge {
  const total = d.reduce((s, x) => s + x, 0);
  if (total <= 0) return { grade: 0, sign: '-', share: 1 };
  let grade = 0;
  for (let g = d.length - 1; g >= 0; g--) {
    const atLeast = d.slice(g).reduce((s, x) => s + x, 0) / total;
    if (atLeast > 0.5 + 1e-9) { grade = g; break; }
  }
  const above = d.slice(grade + 1).reduce((s, x) => s + x, 0) / total;
  const below = d.slice(0, grade).reduce((s, x) => s + x, 0) / total;
  return above > below + 1e-9 ? { grade, sign: '+', share: above } : { grade, sign: '-', share: below };
}
function compareGauge(a: Gauge, b: Gauge): number {
  if (a.grade !== b.grade) return a.grade - b.grade;
  if (a.sign !== b.sign) return a.sign === '+' ? 1 : -1;
  const diff = a.sign === '+' ? a.share - b.share : b.share - a.share;
  return Math.abs(diff) < 1e-9 ? 0 : Math.sign(diff);
}

/** A ranked ballot: options in order of preference, each at most once (a shorter list is allowed). */
const rankingOf = (c: unknown, options: string[]): string[] | null =>
  (Array.isArray(c) && c.length > 0 && c.every((o) => typeof o === 'string' && options.includes(o)) && new Set(c).size === c.length ? c as string[] : null);

const ranked: Counter = {
  counts: (choices, options) => Object.fromEntries(options.map((o) => [o, size(choices.filter((b) => rankingOf(b.choice, options)?.[0] === o))])),
  decide(groups, shares, options) {
    // Instant run-off: each ballot weighs its college's share over its number of ballots and goes to its highest
    // option still running; the weakest option drops out until one holds more than half of the ballots still counted.
    const ballots: { w: number; r: string[] }[] = [];
    for (const [id, choices] of groups) {
      const valid = choices.map((b) => ({ r: rankingOf(b.choice, options), n: b.n })).filter((x): x is { r: string[]; n: number } => x.r !== null);
      const total = valid.reduce((s, x) => s + x.n, 0);
      for (const x of valid) ballots.push({ w: ((shares.get(id) ?? 0) * x.n) / total, r: x.r });
    }
    // Options tied for the fewest votes drop out together only when together they hold fewer votes than any other
    // option, so that none of them could overtake it (bulk exclusion). Otherwise the count is followed for each of them
    // dropping out first, and an option wins only if it wins every way: dropping them all at once could elect an option
    // that a majority ranks last (34/33/33 with B's and C's voters ranking A last elected A). Memoised by the options
    // still running, so at most 2^options counts, and ties are rare in weighted polls.
    const memo = new Map<string, { winner: string | null; rounds: Record<string, number>[] }>();
    const count = (running: string[]): { winner: string | null; rounds: Record<string, number>[] } => {
      const key = running.join('\u0000');
      const known = memo.get(key);
      if (known) return known;
      const t: Record<string, number> = Object.fromEntries(running.map((o) => [o, 0]));
      for (const b of ballots) { const top = b.r.find((o) => running.includes(o)); if (top) t[top]! += b.w; }
      const round = Object.fromEntries(Object.entries(t).map(([o, w]) => [o, pct(w)]));
      const live = Object.values(t).reduce((s, x) => s + x, 0);
      const lead = running.find((o) => t[o]! > live / 2 + 1e-9);
      let out: { winner: string | null; rounds: Record<string, number>[] };
      if (live <= 0) out = { winner: null, rounds: [round] };
      else if (lead) out = { winner: lead, rounds: [round] };
      else {
        const low = Math.min(...running.map((o) => t[o]!));
        const weakest = running.filter((o) => Math.abs(t[o]! - low) < 1e-9);
        const rest = running.filter((o) => !weakest.includes(o));
        const together = weakest.reduce((s, o) => s + t[o]!, 0);
        if (rest.length > 0 && (weakest.length === 1 || together < Math.min(...rest.map((o) => t[o]!)) - 1e-9)) {
          const next = count(rest);
          out = { winner: next.winner, rounds: [round, ...next.rounds] };
        } else {
          // The rounds shown follow the first way (in the options' order); the winner must be the same in all.
          const ways = weakest.map((o) => count(running.filter((x) => x !== o)));
          const winner = ways[0]!.winner !== null && ways.every((w) => w.winner === ways[0]!.winner) ? ways[0]!.winner : null;
          out = { winner, rounds: [round, ...ways[0]!.rounds] };
        }
      }
      memo.set(key, out);
      return out;
    };
    const { winner, rounds } = count([...options]);
    const weighted = rounds[0]!;
    return { outcome: winner === null ? 'tied' : 'decided', weighted, winner, detail: { rounds } };
  },
};

const COUNTERS: Record<PollKind, Counter> = { proposal, single, judgment, ranked };

/** Whether a choice is a valid ballot for the poll: checked before it is stored, so that every stored ballot counts. */
export function validChoice(kind: PollKind, options: readonly string[], choice: unknown): boolean {
  const opts = [...options];
  switch (kind) {
    case 'proposal': return typeof choice === 'string' && (PROPOSAL_CHOICES as readonly string[]).includes(choice);
    case 'single': return typeof choice === 'string' && opts.includes(choice);
    case 'judgment': return gradesOf(choice, opts) !== null && Object.keys(choice as object).length === opts.length;
    case 'ranked': return rankingOf(choice, opts) !== null;
  }
}
