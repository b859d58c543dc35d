// Signed monthly reports: a closed month's open data (publication/opendata.ts, every cell already through statistical
// secrecy) as one JWS a peer can keep and show beside its own. Ours are signed when asked for; a peer's are fetched
// with its document (peers.ts) and checked again each time they are shown, against the keys its pinned chain gives.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { fail } from '../errors.js';
import { DATASETS, LICENCE, datasetRows } from '../publication/opendata.js';
import { MONTH, monthBounds, monthFigures, rulesOf } from '../publication/figures.js';
import type { DocumentDeps } from './document.js';
import { verifyDocument, type PublicJwk } from './jws.js';

export const ReportSchema = Type.Object({
  v: Type.Literal(1),
  iss: Type.String({ pattern: '^https://[^/?#@\\s]{1,300}$' }),
  iat: Type.Integer({ minimum: 0 }),
  month: Type.String({ pattern: MONTH.source }),
  licence: Type.String({ maxLength: 200 }),
  datasets: Type.Array(Type.Object({
    id: Type.String({ maxLength: 64 }),
    rows: Type.Array(Type.Object({
      /** A service's catalog id, a college, or `total`. */
      key: Type.String({ maxLength: 64 }),
      indicator: Type.String({ maxLength: 64 }),
      unit: Type.String({ maxLength: 32 }),
      /** null: withheld by statistical secrecy. */
      value: Type.Union([Type.Number(), Type.Null()]),
    }), { maxItems: 2000 }),
  }), { maxItems: 16 }),
});
export type Report = Static<typeof ReportSchema>;

/** A month one may publish a report of: a whole month, already over. */
export function closedMonth(month: string, now = new Date()): boolean {
  return MONTH.test(month) && monthBounds(month).end <= now;
}

export function reportOf(d: Omit<DocumentDeps, 'keys'>, month: string, now = new Date()): Report {
  const f = monthFigures(d.db, d.catalog, month, rulesOf(d.config.publication.minGroup), now);
  return {
    v: 1, iss: d.config.publicUrl, iat: Math.floor(now.getTime() / 1000), month, licence: LICENCE.path,
    datasets: DATASETS.map((id) => ({
      id, rows: datasetRows(id, f, d.catalog, d.db).map((r) => ({ key: r.key, indicator: r.indicator.id, unit: r.indicator.unit, value: r.value })),
    })),
  };
}

export async function signedReport(d: DocumentDeps, month: string, now = new Date()): Promise<string> {
  if (!closedMonth(month, now)) throw fail('CATTERY_ERR_NOT_FOUND', `No report for ${month}: a report is of a month already over`);
  return d.keys.sign('report', reportOf(d, month, now));
}

export type CheckedReport = { ok: true; report: Report } | { ok: false; why: string };

/** A report is good when one of the peer's keys (its pinned one, or one its verified rotation chain passed through)
 * signed it, it follows the format, and it is the right hoster's and month's. */
export async function checkReport(jws: string, keys: readonly PublicJwk[], iss: string, month: string): Promise<CheckedReport> {
  let last = 'no key of this peer signed it';
  for (const key of keys) {
    try {
      const { payload } = await verifyDocument(jws, 'report', key);
      if (!Value.Check(ReportSchema, payload)) return { ok: false, why: 'the report does not follow the format' };
      if (payload.iss !== iss || payload.month !== month) return { ok: false, why: 'the report is of another hoster or month' };
      return { ok: true, report: payload };
    } catch (err) {
      last = (err as Error).message;
    }
  }
  return { ok: false, why: last };
}
