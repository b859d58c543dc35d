// Charts drawn on the server as inline SVG: no script, no third-party request, readable without CSS. Every chart is one
// `Chart` value, and the SVG, the table beside it, the one-sentence summary and the CSV are all rendered from that same
// value, so the four can never disagree. A missing value (`null`: withheld by statistical secrecy, or not measured) is
// a gap in a line, an absent bar segment, and a marked cell in the table, never a zero.
//
// Pure: no database, no clock.

export type Lang = 'fr' | 'en';

export interface Series { name: string; values: (number | null)[] }

export interface Chart {
  /** Stable id: the anchor, the CSV file name, the SVG's ids. */
  id: string;
  kind: 'line' | 'stacked';
  title: string;
  /** What the chart shows, for `<desc>`. */
  desc: string;
  unit: string;
  /** One label per point on the x axis (a day, a week, a month). */
  labels: string[];
  series: Series[];
  /** Digits shown in the table and the CSV. */
  digits: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Numbers as the reader writes them: `1 234,5` in French (narrow no-break space, decimal comma), `1,234.5` in English. */
export function formatNumber(n: number, lang: Lang, digits = 0): string {
  // A formatter costs far more to build than to use: one per language and number of digits.
  const key = `${lang}${digits}`;
  let f = formatters.get(key);
  if (!f) { f = new Intl.NumberFormat(lang === 'fr' ? 'fr-FR' : 'en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits }); formatters.set(key, f); }
  return f.format(n);
}
const formatters = new Map<string, Intl.NumberFormat>();

/** Round ticks (1, 2, 2.5 or 5 times a power of ten) from 0 to at least `max`, about `count` of them. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v < max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1]! < max) out.push(Number((out[out.length - 1]! + step).toPrecision(12)));
  return out;
}

/** The digits a tick label needs: none for whole steps. */
const tickDigits = (ticks: number[]) => {
  const step = (ticks[1] ?? 1) - (ticks[0] ?? 0);
  return step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
};

// A palette readable by most colour-blind readers (Okabe & Ito, "Color Universal Design", 2008), and every series is
// named in the legend and the table too, so colour never carries the meaning alone.
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];
export const colourOf = (i: number) => COLOURS[i % COLOURS.length]!;

const W = 640, H = 260, L = 64, R = 12, T = 12, B = 48;

function maxOf(c: Chart): number {
  if (c.kind === 'line') return Math.max(0, ...c.series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  return Math.max(0, ...c.labels.map((_, i) => c.series.reduce((a, s) => a + Math.max(0, s.values[i] ?? 0), 0)));
}

/** The SVG of a chart: axes with round ticks, one line or one stacked bar per label, a legend; `role="img"` with its
 * title and description, so a screen reader reads the sentence and then the table beside it. */
export function svg(c: Chart, lang: Lang): string {
  const ticks = niceTicks(maxOf(c));
  const top = ticks[ticks.length - 1]!;
  const n = c.labels.length;
  const plotW = W - L - R, plotH = H - T - B;
  const y = (v: number) => T + plotH - (v / top) * plotH;
  const slot = plotW / Math.max(1, n);
  const x = (i: number) => L + slot * (i + 0.5);
  const digits = tickDigits(ticks);
  const f = (v: number) => Number(v.toFixed(1));
  const parts: string[] = [];
  const legendRows = Math.ceil((c.series.length + 1) / 3);
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H + 18 * legendRows}" role="img" aria-labelledby="${c.id}-t ${c.id}-d" class="chart">`);
  parts.push(`<title id="${c.id}-t">${esc(c.title)}</title><desc id="${c.id}-d">${esc(c.desc)}</desc>`);
  for (const t of ticks) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${f(y(t))}" y2="${f(y(t))}" stroke="#ddd"/>`);
    parts.push(`<text x="${L - 6}" y="${f(y(t) + 4)}" text-anchor="end" font-size="11">${esc(formatNumber(t, lang, digits))}</text>`);
  }
  parts.push(`<text x="4" y="${T + 8}" font-size="11">${esc(c.unit)}</text>`);
  parts.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${T + plotH}" stroke="#333"/><line x1="${L}" x2="${W - R}" y1="${T + plotH}" y2="${T + plotH}" stroke="#333"/>`);
  // At most about 12 labels under the axis; the table has them all.
  const every = Math.max(1, Math.ceil(n / 12));
  for (let i = 0; i < n; i += every) parts.push(`<text x="${f(x(i))}" y="${T + plotH + 16}" text-anchor="middle" font-size="10">${esc(c.labels[i]!)}</text>`);
  if (c.kind === 'line') {
    c.series.forEach((s, k) => {
      // A gap where a value is missing: each run of known values is its own path.
      let d = '';
      let open = false;
      s.values.forEach((v, i) => {
        if (v === null) { open = false; return; }
        d += `${open ? 'L' : 'M'}${f(x(i))} ${f(y(v))}`;
        open = true;
      });
      if (d) parts.push(`<path d="${d}" fill="none" stroke="${colourOf(k)}" stroke-width="2"/>`);
      // A lone point between gaps would be invisible as a path.
      s.values.forEach((v, i) => { if (v !== null && (s.values[i - 1] ?? null) === null && (s.values[i + 1] ?? null) === null) parts.push(`<circle cx="${f(x(i))}" cy="${f(y(v))}" r="2.5" fill="${colourOf(k)}"/>`); });
    });
  } else {
    const bw = Math.max(1, slot * 0.7);
    for (let i = 0; i < n; i++) {
      let acc = 0;
      c.series.forEach((s, k) => {
        const v = s.values[i];
        if (v === null || v === undefined || v <= 0) return;
        parts.push(`<rect x="${f(x(i) - bw / 2)}" y="${f(y(acc + v))}" width="${f(bw)}" height="${f(y(acc) - y(acc + v))}" fill="${colourOf(k)}"/>`);
        acc += v;
      });
      // A bar missing a part must not read as complete: a dashed box on top says something is withheld.
      if (c.series.some((s) => s.values[i] === null)) parts.push(`<rect x="${f(x(i) - bw / 2)}" y="${f(y(acc) - 8)}" width="${f(bw)}" height="8" fill="none" stroke="#333" stroke-dasharray="2 2"/>`);
    }
  }
  const withheld = c.kind === 'stacked' && c.series.some((s) => s.values.includes(null));
  c.series.forEach((s, k) => {
    const lx = L + (k % 3) * 190, ly = H - 8 + 18 * Math.floor(k / 3);
    parts.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${colourOf(k)}"/><text x="${lx + 14}" y="${ly}" font-size="11">${esc(s.name)}</text>`);
  });
  if (withheld) {
    const k = c.series.length, lx = L + (k % 3) * 190, ly = H - 8 + 18 * Math.floor(k / 3);
    parts.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="none" stroke="#333" stroke-dasharray="2 2"/><text x="${lx + 14}" y="${ly}" font-size="11">${lang === 'fr' ? 'valeur retenue (secret) ou inconnue' : 'value withheld (secret) or unknown'}</text>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

export interface Words { secret: string; total: string; period: string }

/** The table beside the chart: one row per label, one column per series (the same numbers as the CSV). */
export function table(c: Chart, lang: Lang, w: Words): string {
  const cell = (v: number | null) => (v === null ? `<td class="secret">${esc(w.secret)}</td>` : `<td>${esc(formatNumber(v, lang, c.digits))}</td>`);
  const head = `<tr><th scope="col">${esc(w.period)}</th>${c.series.map((s) => `<th scope="col">${esc(s.name)} (${esc(c.unit)})</th>`).join('')}</tr>`;
  const rows = c.labels.map((l, i) => `<tr><th scope="row">${esc(l)}</th>${c.series.map((s) => cell(s.values[i] ?? null)).join('')}</tr>`).join('');
  return `<table class="chart-table"><caption>${esc(c.title)}</caption><thead>${head}</thead><tbody>${rows}</tbody></table>`;
}

/** One sentence for screen readers: the span, the last value of each series (or of their sum), the highest point. */
export function summary(c: Chart, lang: Lang): string {
  const n = c.labels.length;
  if (!n || !c.series.length) return lang === 'fr' ? `${c.title} : aucune donnée pour cette période.` : `${c.title}: no data for this period.`;
  const sums = c.labels.map((_, i) => {
    const vs = c.series.map((s) => s.values[i] ?? null);
    return vs.some((v) => v !== null) ? vs.reduce<number>((a, v) => a + (v ?? 0), 0) : null;
  });
  const known = sums.map((v, i) => ({ v, i })).filter((p): p is { v: number; i: number } => p.v !== null);
  const partial = (i: number) => c.series.some((s) => s.values[i] === null);
  const fmt0 = (v: number) => `${formatNumber(v, lang, c.digits)} ${c.unit}`;
  // A sum with a part withheld says so, rather than pass for the whole.
  let at = -1;
  const fmt = (v: number) => fmt0(v) + (at >= 0 && partial(at) ? (lang === 'fr' ? ' (sans les valeurs retenues)' : ' (without the withheld values)') : '');
  if (!known.length) return lang === 'fr' ? `${c.title}, de ${c.labels[0]} à ${c.labels[n - 1]} : valeurs retenues par le secret statistique.` : `${c.title}, ${c.labels[0]} to ${c.labels[n - 1]}: values withheld by statistical secrecy.`;
  const last = known[known.length - 1]!, peak = known.reduce((a, p) => (p.v > a.v ? p : a));
  const what = c.kind === 'stacked' || c.series.length > 1 ? (lang === 'fr' ? 'au total ' : 'in total ') : '';
  at = last.i; const lastText = fmt(last.v);
  at = peak.i; const peakText = fmt(peak.v);
  return lang === 'fr'
    ? `${c.title}, de ${c.labels[0]} à ${c.labels[n - 1]} : ${what}${lastText} en ${c.labels[last.i]}, au plus haut ${peakText} en ${c.labels[peak.i]}.`
    : `${c.title}, ${c.labels[0]} to ${c.labels[n - 1]}: ${what}${lastText} in ${c.labels[last.i]}, highest ${peakText} in ${c.labels[peak.i]}.`;
}

/** The same numbers as a CSV (RFC 4180, CRLF; a text cell never read as a formula: OWASP "CSV injection"); a withheld
 * value is an empty cell. Numbers with a point and the table's digits, whatever the page's language. */
export function csv(c: Chart, periodHeader: string): string {
  const text = (s: string) => {
    const t = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
    return /[",\r\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  };
  const lines = [[periodHeader, ...c.series.map((s) => `${s.name} (${c.unit})`)].map(text).join(',')];
  c.labels.forEach((l, i) => lines.push([text(l), ...c.series.map((s) => { const v = s.values[i]; return v === null || v === undefined ? '' : v.toFixed(c.digits); })].join(',')));
  return `${lines.join('\r\n')}\r\n`;
}

/** Values rounded to the chart's digits before drawing, so that the SVG, the table and the CSV show one number. */
export function rounded(c: Chart): Chart {
  const k = 10 ** c.digits;
  return { ...c, series: c.series.map((s) => ({ ...s, values: s.values.map((v) => (v === null ? null : Math.round(v * k) / k)) })) };
}
