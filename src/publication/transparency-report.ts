// The yearly activity report: for one year, the month figures the open data and the city's dashboard publish
// (publication/figures.ts, after statistical secrecy: a hidden cell stays hidden here), the register's counts, and
// the software summary. As HTML (a page) and as a PDF that Chromium prints from the same HTML, offline.
import fs from 'node:fs';
import path from 'node:path';
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import { yearFigures } from './chatonsinfos.js';
import { published, type MonthFigures, type Table } from './figures.js';
import { registerCounts, type YearCounts } from './register.js';

/** The first year a report may be asked for: nothing of cattery's existed before. */
export const FIRST_YEAR = 2020;

/** Rows (services, colleges) × the year's twelve months; null: secret (or no figures: a month to come). */
export interface YearTable {
  rows: string[]; months: string[]; values: (number | null)[][]; total: (number | null)[];
  /** false for a month still to come: its cells are empty, not secret. */
  reached: boolean[];
}

export interface YearReport {
  year: number; complete: boolean; minGroup: number; gridGPerKwh: number;
  accounts: YearTable; signups: YearTable; energy: YearTable; members: YearTable;
  /** kWh of the year (sum of the monthly totals as published; null when a month's total is secret). */
  energyKwh: number | null;
  register: YearCounts | null;
}

function yearTable(figs: (MonthFigures | undefined)[], pick: (f: MonthFigures) => Table, col: (t: Table) => number, year: number): YearTable {
  const months = Array.from({ length: 12 }, (_, i) => `${year}-${String(i + 1).padStart(2, '0')}`);
  const rows = [...new Set(figs.flatMap((f) => (f ? pick(f).rows : [])))];
  const cell = (f: MonthFigures | undefined, name: string | null) => {
    if (!f) return null;
    const t = pick(f);
    const r = name === null ? t.rows.length : t.rows.indexOf(name);
    return r < 0 ? 0 : published(t, r, col(t));
  };
  return {
    rows, months,
    values: rows.map((name) => figs.map((f) => cell(f, name))),
    total: figs.map((f) => cell(f, null)),
    reached: figs.map((f) => f !== undefined),
  };
}

export function yearReport(d: { db: Db; catalog: Catalog; config: Config }, year: number, now = new Date()): YearReport {
  if (!Number.isInteger(year) || year < FIRST_YEAR || year > now.getUTCFullYear()) throw fail('CATTERY_ERR_NOT_FOUND', `No report for ${year}: from ${FIRST_YEAR} to this year`);
  const figs = yearFigures(d, year, now);
  const energy = yearTable(figs, (f) => f.energy, () => 0, year);
  const kwh = energy.total.filter((_, i) => figs[i]);
  return {
    year, complete: year < now.getUTCFullYear(), minGroup: d.config.publication.minGroup, gridGPerKwh: d.config.gridGCo2ePerKwh,
    accounts: yearTable(figs, (f) => f.accounts, () => 0, year),
    // Sign-ups: the total column (alone + with a mediator), the last of the table's columns.
    signups: yearTable(figs, (f) => f.signups, (t) => t.cols.length, year),
    energy,
    members: yearTable(figs, (f) => f.members, () => 0, year),
    energyKwh: kwh.some((v) => v === null) ? null : kwh.reduce<number>((a, v) => a + (v ?? 0), 0),
    register: registerCounts(d.db).find((c) => c.year === year) ?? null,
  };
}

// ---- PDF ----

export interface PdfOptions { chromium: string; cacheDir: string }

export const reportPdfFile = (cacheDir: string, year: number, lang: string) => path.join(cacheDir, `report-${year}-${lang}.pdf`);

/** A closed year's report never changes: printed once, kept as a file. The year in progress is printed again when
 * its file is older than an hour (the open data's own cache time), so that a public URL cannot make the server launch
 * Chromium at every request; and one print at a time per printer (one per app). */
const CURRENT_YEAR_MAX_AGE_MS = 3_600_000;

export type ReportPrinter = (year: number, lang: string, complete: boolean, html: () => string) => Promise<Buffer>;

export function reportPrinter(o: PdfOptions): ReportPrinter {
  let printing: Promise<unknown> = Promise.resolve();
  return (year, lang, complete, html) => {
    const file = reportPdfFile(o.cacheDir, year, lang);
    const fresh = () => fs.existsSync(file) && (complete || Date.now() - fs.statSync(file).mtimeMs < CURRENT_YEAR_MAX_AGE_MS);
    if (fresh()) return Promise.resolve(fs.readFileSync(file));
    const job = printing.then(async () => {
      if (fresh()) return fs.readFileSync(file);
      const pdf = await printPdf(o.chromium, html());
      fs.mkdirSync(o.cacheDir, { recursive: true, mode: 0o755 });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, pdf, { mode: 0o644 });
      fs.renameSync(tmp, file);
      return pdf;
    });
    printing = job.catch(() => undefined);
    return job;
  };
}

/** Print an HTML document to A4 PDF with Chromium through playwright-core, every request blocked: the document must
 * hold all it shows (its style sheet inline), and nothing it says can leak to, or be changed by, the network. */
export async function printPdf(chromium: string, html: string): Promise<Buffer> {
  if (!fs.existsSync(chromium)) throw fail('CATTERY_ERR_PDF_UNAVAILABLE', `no Chromium at ${chromium} (apt-get install chromium, or set CATTERY_CHROMIUM)`);
  const { chromium: launcher } = await import('playwright-core');
  let browser;
  try {
    // Chromium's sandbox refuses to start as root; any other user keeps it.
    browser = await launcher.launch({ executablePath: chromium, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [], timeout: 60_000 });
  } catch (err) {
    throw fail('CATTERY_ERR_PDF_UNAVAILABLE', `Chromium at ${chromium} did not start`, err);
  }
  try {
    const context = await browser.newContext({ offline: true, javaScriptEnabled: false });
    await context.route('**/*', (route) => route.abort('blockedbyclient'));
    const page = await context.newPage();
    await page.setContent(html, { waitUntil: 'load', timeout: 30_000 });
    return await page.pdf({ format: 'A4', printBackground: true, margin: { top: '15mm', bottom: '15mm', left: '12mm', right: '12mm' }, tagged: true });
  } catch (err) {
    // Chromium crashed or timed out while printing: the same condition for the reader as no Chromium at all.
    throw fail('CATTERY_ERR_PDF_UNAVAILABLE', 'Chromium did not print the report', err);
  } finally {
    await browser.close().catch(() => undefined);
  }
}

/** Where a printed report is kept: beside cattery's data, public like the report itself. */
export const reportCacheDir = (dataDir: string) => path.join(dataDir, 'transparency');
