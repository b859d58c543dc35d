// The statutes' rules on colleges and their weights, checked whenever the configuration changes. Sources, quoted in
// docs/governance.md: for a SCIC, loi n° 47-1775 du 10 septembre 1947 portant statut de la coopération, article 19
// octies (at least three colleges; no college above 50 % nor below 10 % of the votes) and article 9 (one member, one
// vote); for an association (loi du 1er juillet 1901), the statutes are free: one member one vote, or colleges.
import { fail } from '../errors.js';
import type { LegalForm } from './schema.js';

export const SCIC_MIN_COLLEGES = 3;
export const SCIC_MIN_PCT = 10;
export const SCIC_MAX_PCT = 50;
/** Weights are percentages with at most two decimals; their sum must be 100 within this. */
const EPS = 1e-6;

export interface CollegeWeight { id: number; weightPct: number | null }

/** What is wrong with a set of colleges under a legal form; empty when it may be used. */
export function collegeProblems(form: LegalForm, colleges: readonly { slug?: string; weightPct: number | null }[]): string[] {
  const out: string[] = [];
  const set = colleges.filter((c) => c.weightPct !== null);
  if (set.length > 0 && set.length < colleges.length) out.push('either every college has a weight, or none has (equal weights)');
  for (const c of set) {
    if (!(c.weightPct! > 0 && c.weightPct! <= 100)) out.push(`college ${c.slug ?? ''}: a weight is above 0 and at most 100 %`.replace('  ', ' '));
  }
  if (set.length === colleges.length && set.length > 0) {
    const sum = set.reduce((s, c) => s + c.weightPct!, 0);
    if (Math.abs(sum - 100) > EPS) out.push(`the weights add up to ${round2(sum)} %, not 100 %`);
  }
  if (form === 'scic') {
    if (colleges.length < SCIC_MIN_COLLEGES) out.push(`a SCIC has at least ${SCIC_MIN_COLLEGES} colleges (loi 1947, art. 19 octies): ${colleges.length} configured`);
    const n = colleges.length;
    for (const c of colleges) {
      const pct = c.weightPct ?? (n ? 100 / n : 0);
      if (pct > SCIC_MAX_PCT + EPS) out.push(`college ${c.slug ?? ''} holds ${round2(pct)} % of the votes: a SCIC college holds at most ${SCIC_MAX_PCT} % (loi 1947, art. 19 octies)`);
      if (pct < SCIC_MIN_PCT - EPS) out.push(`college ${c.slug ?? ''} holds ${round2(pct)} % of the votes: a SCIC college holds at least ${SCIC_MIN_PCT} % (loi 1947, art. 19 octies)`);
    }
  }
  return out;
}

/** Refuses (CATTERY_ERR_STATUTES, 422) a configuration the legal form forbids, with every reason at once. */
export function checkColleges(form: LegalForm, colleges: readonly { slug?: string; weightPct: number | null }[]): void {
  const problems = collegeProblems(form, colleges);
  if (problems.length) throw fail('CATTERY_ERR_STATUTES', problems.join('; '));
}

/** Each college's statutory share of the votes, as a fraction of 1: its weight, or an equal share. */
export function statutoryShares(colleges: readonly CollegeWeight[]): Map<number, number> {
  const n = colleges.length;
  const explicit = colleges.every((c) => c.weightPct !== null);
  const total = explicit ? colleges.reduce((s, c) => s + c.weightPct!, 0) : n;
  return new Map(colleges.map((c) => [c.id, explicit ? c.weightPct! / total : 1 / n]));
}

/** The shares of the colleges that took part: a college with no vote cast leaves its weight to the others in
 * proportion to theirs (docs/governance.md says why), so the shares of those present add up to 1. */
export function effectiveShares(colleges: readonly CollegeWeight[], present: ReadonlySet<number>): Map<number, number> {
  const stat = statutoryShares(colleges);
  const sum = [...stat].filter(([id]) => present.has(id)).reduce((s, [, w]) => s + w, 0);
  return new Map([...stat].filter(([id]) => present.has(id)).map(([id, w]) => [id, w / sum]));
}

const round2 = (x: number) => Math.round(x * 100) / 100;
