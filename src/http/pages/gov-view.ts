// What the governance pages share: dates as people read them, a decision's count shaped for a table, the action a
// proposal carries in words, and the domain's refusals said in plain French (or English) rather than in its own
// English detail.
import type { FastifyReply } from 'fastify';
import type { Db } from '../../db/connection.js';
import { isCatteryError } from '../../errors.js';
import { describeAction, type Action } from '../../governance/actions.js';
import { listCategories, listColleges } from '../../governance/settings.js';
import { GRADES, NO_COLLEGE, PROPOSAL_CHOICES, type CollegeResult, type TallyResult } from '../../governance/tally.js';
import type { Member, Poll } from '../../governance/schema.js';
import { hasMessage, translator, type Lang, type MessageKey, type Translate } from '../i18n.js';

/** A date and time in the server's time zone, the one the board's forms are typed in (datetime-local has none). */
export function when(iso: string | null | undefined, lang: Lang): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(lang === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'long', timeStyle: 'short' });
}

/** A calendar day (YYYY-MM-DD) as people read it. */
export function day(d: string | null | undefined, lang: Lang): string {
  if (!d) return '—';
  const t = new Date(`${d.slice(0, 10)}T12:00:00Z`);
  return Number.isNaN(t.getTime()) ? d : t.toLocaleDateString(lang === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'long', timeZone: 'UTC' });
}

/** The value of a datetime-local input for a moment, in the server's time zone. */
export function localInput(at: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${p(at.getMonth() + 1)}-${p(at.getDate())}T${p(at.getHours())}:${p(at.getMinutes())}`;
}

/** A journal line's kind in words (its code when no sentence exists for it yet). */
export function journalLabel(kind: string, lang: Lang): string {
  const key = `gov.journal.${kind}`;
  return hasMessage(key) ? translator(lang)(key) : kind;
}

export const euros = (cents: number, lang: Lang) =>
  (cents / 100).toLocaleString(lang === 'fr' ? 'fr-FR' : 'en-GB', { style: 'currency', currency: 'EUR' });

/** "12", "12.5" or "12,50" (euros) in cents; null when it is not an amount. */
export function centsOf(text: string): number | null {
  const m = /^\s*(\d{1,6})(?:[.,](\d{1,2}))?\s*(?:€)?\s*$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] ?? '0').padEnd(2, '0'));
}

/** Names of colleges and categories by id, in one language. */
export function namesOf(db: Db, lang: Lang) {
  const colleges = new Map(listColleges(db).map((c) => [c.id, lang === 'fr' ? c.nameFr : c.nameEn]));
  const categories = new Map(listCategories(db).map((c) => [c.id, lang === 'fr' ? c.nameFr : c.nameEn]));
  return {
    colleges, categories,
    college: (m: Pick<Member, 'collegeId'>) => (m.collegeId === null ? '—' : colleges.get(m.collegeId) ?? '—'),
    category: (m: Pick<Member, 'categoryId'>) => (m.categoryId === null ? '—' : categories.get(m.categoryId) ?? '—'),
  };
}

export function actionText(p: Pick<Poll, 'action'>, lang: Lang): string | null {
  return p.action ? describeAction(p.action as Action, lang) : null;
}

/** How each option of a poll is named on a page: a proposal's fixed answers are translated, others are as typed. */
export function optionLabel(p: Pick<Poll, 'kind'>, option: string, t: Translate): string {
  return p.kind === 'proposal' ? t(`gov.choice.${option}` as MessageKey) : option;
}

export interface TallyView {
  outcome: string;
  quorum: TallyResult['quorum'];
  winner: string | null;
  weighted: { label: string; value: string }[];
  colleges: { name: string; weightPct: number; countedPct: number; eligible: number; ballots: number; counts: { label: string; value: string }[] }[];
}

/** A closed poll's stored result, shaped for the register and the meeting page (nothing in it names a voter). */
export function tallyView(db: Db, p: Poll, lang: Lang, t: Translate): TallyView | null {
  const r = p.result as unknown as TallyResult | null;
  if (!r) return null;
  const names = new Map(listColleges(db).map((c) => [c.id, lang === 'fr' ? c.nameFr : c.nameEn]));
  const collegeName = (c: CollegeResult) => (c.collegeId === NO_COLLEGE ? t('gov.college.all') : names.get(c.collegeId) ?? t('gov.college.gone'));
  const countText = (v: number | number[]) => (Array.isArray(v) ? v.map((n, i) => `${t(`gov.grade.${GRADES[i]}` as MessageKey)} ${n}`).join(', ') : String(v));
  const options = p.kind === 'proposal' ? [...PROPOSAL_CHOICES] : p.options;
  const weighted = p.kind === 'judgment'
    ? options.map((o) => ({ label: optionLabel(p, o, t), value: t(`gov.grade.${GRADES[r.weighted[o] ?? 0]}` as MessageKey) }))
    : Object.entries(r.weighted).map(([o, v]) => ({ label: optionLabel(p, o, t), value: `${fmt(v, lang)} %` }));
  return {
    outcome: r.outcome, quorum: r.quorum, winner: r.winner === null ? null : optionLabel(p, r.winner, t), weighted,
    colleges: r.colleges.map((c) => ({
      name: collegeName(c), weightPct: c.weightPct, countedPct: c.countedPct, eligible: c.eligible, ballots: c.ballots,
      counts: options.map((o) => ({ label: optionLabel(p, o, t), value: countText(c.counts[o] ?? 0) })),
    })),
  };
}

const fmt = (x: number, lang: Lang) => x.toLocaleString(lang === 'fr' ? 'fr-FR' : 'en-GB', { maximumFractionDigits: 2 });

// The domain's refusals (governance/*.ts) in words a person reads. Each domain detail has its sentence here; one that
// has none yet is shown after a plain lead-in, so that nothing is ever hidden. tests/governance/pages.test.ts makes
// every refusal it provokes come back in French.
const REFUSALS: [RegExp, MessageKey][] = [
  [/the vote opens at/, 'gov.err.notOpen'],
  [/the vote is closed/, 'gov.err.closed'],
  [/only an admitted member votes/, 'gov.err.notMember'],
  [/dues are not paid/, 'gov.err.lapsed'],
  [/this vote is for the board/, 'gov.err.boardOnly'],
  [/proxies are for a meeting/, 'gov.err.proxyNoMeeting'],
  [/you do not hold this member/, 'gov.err.notHolder'],
  [/you gave your proxy/, 'gov.err.gaveProxy'],
  [/you have already voted/, 'gov.err.already'],
  [/this member has already voted/, 'gov.err.alreadyFor'],
  [/a proxy goes to another member/, 'gov.err.proxySelf'],
  [/has already given their proxy/, 'gov.err.proxyGiven'],
  [/the holder has given their own proxy/, 'gov.err.proxyChain'],
  [/carries proxies of others/, 'gov.err.proxyCarries'],
  [/a member carries at most (\d+)/, 'gov.err.proxyMax'],
  [/choice: not a valid ballot/, 'gov.err.ballot'],
  [/already (a member|applying)/, 'gov.err.alreadyMember'],
  [/cannot become/, 'gov.err.status'],
  [/college: choose the member/, 'gov.err.admitCollege'],
  [/^Invalid input: college:/, 'gov.err.college'],
  [/^Invalid input: category:/, 'gov.err.category'],
  [/^Invalid input: email:/, 'err.email'],
  [/^Invalid input: name:/, 'gov.err.name'],
  [/^Invalid input: reason:/, 'gov.err.reason'],
  [/^Invalid input: decision:/, 'gov.err.decision'],
  [/^Invalid input: reference:/, 'gov.err.reference'],
  [/^Invalid input: paidOn:/, 'gov.err.paidOn'],
  [/^Invalid input: amountCents:/, 'gov.err.amount'],
  [/^Invalid input: (opensAt|closesAt|startsAt):/, 'gov.err.date'],
  [/^Invalid input: options/, 'gov.err.options'],
  [/^Invalid input: title:/, 'gov.err.title'],
  [/^Invalid input: action:/, 'gov.err.action'],
  [/only an admitted member sits on the board/, 'gov.err.boardSeat'],
  [/is (applicant|refused|resigned|excluded)$/, 'gov.err.status'],
];

export interface Refusal { code: string; status: number; text: string }

/** A domain refusal a page shows in its own words; anything else (a 5xx, a bug) is thrown on to the error page. */
export function refusal(err: unknown, t: Translate): Refusal {
  if (!isCatteryError(err) || err.statusCode >= 500) throw err;
  for (const [re, key] of REFUSALS) {
    const m = re.exec(err.message);
    if (m) return { code: err.code, status: err.statusCode, text: t(key, { n: m[1] ?? '' }) };
  }
  if (err.code === 'CATTERY_ERR_NOT_FOUND') return { code: err.code, status: 404, text: t('err.CATTERY_ERR_NOT_FOUND') };
  return { code: err.code, status: err.statusCode, text: t('gov.err.other', { detail: err.message }) };
}

/** A refused form: its code on the answer (x-cattery-error), and what the page says. */
export function refused(reply: FastifyReply, err: unknown, t: Translate): Refusal {
  const r = refusal(err, t);
  reply.header('x-cattery-error', r.code);
  return r;
}
