// The city's dashboard as charts: energy and CO2e over time per server and per service (with the measured and the
// modelled parts apart), and usage per month (accounts per service, sign-ups alone and with a mediator, accounts open,
// members per college, storage, energy per account). Aggregates only. Every count of people comes from figures.ts,
// which has put each month's tables through statistical secrecy (the same cells hidden as in the open data), and the
// energy per service is drawn only where the open data publishes it for every month under a bucket (figures.ts
// energyWithheld; docs/publication.md, "Dashboards").
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { energyReport } from '../metering/report.js';
import { J_PER_KWH } from '../metering/energy-model.js';
import { energyBetween, energyByPeriods, type EnergyRow } from '../metering/store.js';
import { rounded, type Chart, type Lang, type Series } from './charts.js';
import { energyWithheld, liveAccounts, personsOf, topKey, monthBounds, monthFigures, monthOf, published, rulesOf, type Table } from './figures.js';
import { suppress } from './suppression.js';

export const GRAINS = ['day', 'week', 'month', 'year'] as const;
export type Grain = (typeof GRAINS)[number];

/** How many buckets each grain draws: a month of days, half a year of weeks, two years of months, five years. */
const COUNT: Record<Grain, number> = { day: 31, week: 26, month: 24, year: 5 };
/** Months of usage drawn: a year (each month's tables are read and suppressed on their own). */
export const USAGE_MONTHS = 12;

/** The buckets' bounds, oldest first, the last one holding `now`; and their labels. */
export function buckets(grain: Grain, now: Date): { bounds: Date[]; labels: string[] } {
  const n = COUNT[grain];
  const y = now.getUTCFullYear(), m = now.getUTCMonth(), d = now.getUTCDate();
  const start = (k: number): Date => {
    if (grain === 'day') return new Date(Date.UTC(y, m, d - k));
    if (grain === 'week') { const monday = d - ((now.getUTCDay() + 6) % 7); return new Date(Date.UTC(y, m, monday - 7 * k)); }
    if (grain === 'month') return new Date(Date.UTC(y, m - k, 1));
    return new Date(Date.UTC(y - k, 0, 1));
  };
  const bounds = Array.from({ length: n + 1 }, (_, i) => start(n - 1 - i));
  const label = (b: Date) => (grain === 'month' ? b.toISOString().slice(0, 7) : grain === 'year' ? b.toISOString().slice(0, 4) : b.toISOString().slice(0, 10));
  return { bounds, labels: bounds.slice(0, -1).map(label) };
}

export interface CityOptions { minGroup: number; gridGPerKwh: number; lang: Lang; now?: Date }

/** Words of the charts, in the page's language. */
const TXT = {
  fr: {
    energyServers: 'Énergie par serveur, mesurée ou estimée', energyServersD: 'Énergie consommée par chaque serveur, barres empilées : la part mesurée par un compteur et la part estimée par le modèle de puissance.',
    co2Servers: 'CO2e par serveur', co2ServersD: 'Émissions en équivalent CO2 de chaque serveur : électricité et fabrication amortie.',
    energyServices: 'Énergie par service', energyServicesD: 'Énergie des instances de chaque service, du repos des serveurs et des autres processus. Un service de moins de {min} personnes n’est pas montré seul.',
    co2Services: 'CO2e par service', co2ServicesD: 'Émissions en équivalent CO2 de chaque service, selon la même règle de secret.',
    accounts: 'Comptes par service', accountsD: 'Comptes existants à la fin de chaque mois, par service, après secret statistique.',
    signups: 'Inscriptions par mois', signupsD: 'Inscriptions acceptées chaque mois, faites seul ou avec un médiateur, après secret statistique.',
    open: 'Comptes ouverts', openD: 'Comptes ouverts à la fin de chaque mois, tous services (actifs ou suspendus).',
    members: 'Membres par collège', membersD: 'Membres admis à la fin de chaque mois, par collège, après secret statistique.',
    storage: 'Stockage utilisé par service', storageD: 'Dernière mesure du stockage des comptes, par service : l’historique n’est pas conservé.',
    perAccount: 'Énergie par compte ouvert', perAccountD: 'Énergie des services du mois divisée par le nombre de comptes ouverts à la fin du mois.',
    measured: 'mesuré', modelled: 'estimé', idle: 'Repos des serveurs', other: 'Système et autres', withheld: 'Autres services (secret statistique)',
    alone: 'Seul', mediator: 'Avec un médiateur', all: 'Tous les services', noCollege: 'Membres',
  },
  en: {
    energyServers: 'Energy per server, measured or modelled', energyServersD: 'Energy drawn by each server, stacked bars: the part a meter measured and the part the power model estimated.',
    co2Servers: 'CO2e per server', co2ServersD: 'Emissions in CO2 equivalent of each server: electricity and amortised manufacturing.',
    energyServices: 'Energy per service', energyServicesD: 'Energy of each service’s instances, of the servers at rest and of other processes. A service of fewer than {min} persons is not shown alone.',
    co2Services: 'CO2e per service', co2ServicesD: 'Emissions in CO2 equivalent of each service, under the same secrecy rule.',
    accounts: 'Accounts per service', accountsD: 'Accounts existing at the end of each month, per service, after statistical secrecy.',
    signups: 'Sign-ups per month', signupsD: 'Sign-ups approved each month, made alone or with a mediator, after statistical secrecy.',
    open: 'Open accounts', openD: 'Accounts open at the end of each month, all services (active or suspended).',
    members: 'Members per college', membersD: 'Admitted members at the end of each month, per college, after statistical secrecy.',
    storage: 'Storage used per service', storageD: 'Last measurement of the accounts’ storage, per service: no history is kept.',
    perAccount: 'Energy per open account', perAccountD: 'The services’ energy in the month divided by the accounts open at the month’s end.',
    measured: 'measured', modelled: 'modelled', idle: 'Servers at rest', other: 'System and other', withheld: 'Other services (statistical secrecy)',
    alone: 'Alone', mediator: 'With a mediator', all: 'All services', noCollege: 'Members',
  },
} as const;

/** Which services may be drawn on their own over the span: the energy table (services × kWh, with its total) put
 * through suppression, with each service's persons (distinct residents with an account now) and its largest account's part (metering's
 * own per-account key, as figures.ts does for the open data). */
function servicesShown(live: ReturnType<typeof liveAccounts>, rows: EnergyRow[], services: string[], minGroup: number): { shown: Set<string>; totalPublished: boolean } {
  const bySlug = new Map<string, { bytes: number; items: number }[]>();
  const byService = new Map<string, typeof live>();
  for (const a of live) {
    const l = bySlug.get(a.slug) ?? [];
    l.push({ bytes: a.bytes ?? 0, items: a.items ?? 0 });
    bySlug.set(a.slug, l);
    byService.set(a.service, [...(byService.get(a.service) ?? []), a]);
  }
  // Persons are distinct residents, as in the open data (figures.ts personsOf): one resident with accounts in two
  // instances of a service is one person, not two.
  const persons = new Map([...byService].map(([s, accs]) => [s, personsOf(accs)]));
  const cells = services.map((s) => {
    let value = 0, top = 0;
    for (const r of rows) {
      if (r.scope !== 'instance' || r.service !== s) continue;
      const kwh = r.energyJ / J_PER_KWH;
      value += kwh;
      top = Math.max(top, kwh * topKey(bySlug.get(r.slug) ?? []));
    }
    return [{ persons: persons.get(s) ?? 0, value, top }];
  });
  if (!services.length) return { shown: new Set(), totalPublished: true };
  const t = suppress(cells, rulesOf(minGroup));
  return { shown: new Set(services.filter((_, i) => !t.hidden[i]![0])), totalPublished: !t.hidden[services.length]![0] };
}

export function energyCharts(db: Db, catalog: Catalog, grain: Grain, o: CityOptions): Chart[] {
  const now = o.now ?? new Date();
  const w = TXT[o.lang];
  const { bounds, labels } = buckets(grain, now);
  const n = labels.length;
  const periods = energyByPeriods(db, bounds.map((b) => (b > now ? now : b)));
  const per = bounds.slice(0, -1).map((from, i) => {
    const to = bounds[i + 1]! > now ? now : bounds[i + 1]!;
    const rows = periods[i] ?? [];
    const ro = { from, to, gridGPerKwh: o.gridGPerKwh };
    return { rows, byServer: energyReport(db, 'server', ro, rows).figures, byService: energyReport(db, 'service', ro, rows).figures };
  });
  const serverNames = [...new Set(per.flatMap((p) => p.byServer.filter((f) => f.kind === 'server').map((f) => f.key)))].sort();
  // Measured and modelled apart, per server: the part of a bucket's energy whose seconds a meter measured.
  const ids = new Map((db.$client.prepare('SELECT id, name FROM servers').all() as { id: number; name: string }[]).map((s) => [s.name, s.id]));
  const measuredShare = (p: (typeof per)[number], server: string) => {
    const r = p.rows.find((x) => x.scope === 'server' && x.serverId === ids.get(server));
    return r && r.seconds > 0 ? r.measuredSeconds / r.seconds : 0;
  };
  const serverSeries: Series[] = serverNames.flatMap((s) => {
    const kwh = per.map((p) => (p.byServer.find((f) => f.kind === 'server' && f.key === s)?.energyWh ?? 0) / 1000);
    const share = per.map((p) => measuredShare(p, s));
    return [
      { name: `${s} (${w.measured})`, values: kwh.map((v, i) => v * share[i]!) },
      { name: `${s} (${w.modelled})`, values: kwh.map((v, i) => v * (1 - share[i]!)) },
    ];
  });
  const co2Servers: Series[] = serverNames.map((s) => ({ name: s, values: per.map((p) => (p.byServer.find((f) => f.kind === 'server' && f.key === s)?.co2eG.total ?? 0) / 1000) }));

  const allRows = energyBetween(db, bounds[0]!, now);
  const services = [...new Set(allRows.filter((r) => r.scope === 'instance').map((r) => r.service))].sort();
  // What the open data withholds for the months each bucket touches is withheld here too (figures.ts
  // energyWithheld): a service's part of a bucket is drawn only when every month under it is published, so no bucket
  // gives back a month the open data hides.
  // And a service that today's residents make secret (fewer than `minGroup`, or one account's part dominating) is not
  // drawn alone in any bucket: the open data judges each month by the residents of that month, the chart by both.
  const { shown: shownToday } = servicesShown(liveAccounts(db), allRows, services, o.minGroup);
  const withheld = bounds.slice(0, -1).map((from, i) => {
    const w = energyWithheld(db, catalog, from, bounds[i + 1]! > now ? now : bounds[i + 1]!, o.minGroup, now);
    for (const s of services) if (!shownToday.has(s)) w.services.add(s);
    return w;
  });
  const svcName = (id: string) => catalog.services.get(id)?.manifest.name[o.lang] ?? id;
  const serviceSeries = (pick: (f: { energyWh: number; co2eG: { total: number } }) => number): Series[] => {
    const of = (p: (typeof per)[number], key: string, kind: string) => { const f = p.byService.find((x) => x.kind === kind && x.key === key); return f ? pick(f) : 0; };
    const out: Series[] = services.filter((s) => withheld.some((w) => !w.services.has(s)))
      .map((s) => ({ name: svcName(s), values: per.map((p, i) => (withheld[i]!.services.has(s) ? null : of(p, s, 'service'))) }));
    // Withheld services together, only where the services' total is published: their sum is then what "total −
    // shown" gives anyway, and rule 1 of suppression.ts made sure it is a group of at least `minGroup` persons.
    if (withheld.some((w) => services.some((s) => w.services.has(s)))) {
      out.push({ name: w.withheld, values: per.map((p, i) => (withheld[i]!.total ? null : services.filter((s) => withheld[i]!.services.has(s)).reduce((a, s) => a + of(p, s, 'service'), 0))) });
    }
    out.push({ name: w.idle, values: per.map((p) => of(p, 'idle', 'idle')) });
    out.push({ name: w.other, values: per.map((p) => of(p, 'other', 'other')) });
    return out;
  };
  const min = String(o.minGroup);
  return [
    { id: 'energy-servers', kind: 'stacked', title: w.energyServers, desc: w.energyServersD, unit: 'kWh', labels, series: serverSeries, digits: 3 },
    { id: 'co2-servers', kind: 'stacked', title: w.co2Servers, desc: w.co2ServersD, unit: 'kg CO2e', labels, series: co2Servers, digits: 3 },
    { id: 'energy-services', kind: 'stacked', title: w.energyServices, desc: w.energyServicesD.replace('{min}', min), unit: 'kWh', labels, series: serviceSeries((f) => f.energyWh / 1000), digits: 3 },
    { id: 'co2-services', kind: 'stacked', title: w.co2Services, desc: w.co2ServicesD, unit: 'kg CO2e', labels, series: serviceSeries((f) => f.co2eG.total / 1000), digits: 3 },
  ].map((c) => rounded(c as Chart)).filter(() => n > 0);
}

/** The last `USAGE_MONTHS` months, oldest first, the month in progress last. */
export function usageMonths(now: Date): string[] {
  return Array.from({ length: USAGE_MONTHS }, (_, i) => monthOf(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - (USAGE_MONTHS - 1 - i), 1))));
}

export function usageCharts(db: Db, catalog: Catalog, o: CityOptions, collegeName: (slug: string) => string): Chart[] {
  const now = o.now ?? new Date();
  const w = TXT[o.lang];
  const months = usageMonths(now).filter((m) => monthBounds(m).start <= now);
  const live = liveAccounts(db);
  // Each month's energy read in one sweep (each line's running total once per month's bound).
  const energy = energyByPeriods(db, [...months.map((m) => monthBounds(m).start), monthBounds(months[months.length - 1]!).end]);
  const figs = months.map((m, i) => monthFigures(db, catalog, m, rulesOf(o.minGroup), now, live, energy[i]));
  const svcName = (id: string) => catalog.services.get(id)?.manifest.name[o.lang] ?? id;
  // One series per row of a table (rows may differ between months: a college added); a row a month lacks is 0.
  const byRow = (pick: (f: (typeof figs)[number]) => Table, name: (k: string) => string, col = 0): Series[] => {
    const keys = [...new Set(figs.flatMap((f) => pick(f).rows))];
    return keys.map((k) => ({ name: name(k), values: figs.map((f) => { const t = pick(f); const r = t.rows.indexOf(k); return r < 0 ? 0 : published(t, r, col); }) }));
  };
  const total = (t: Table, col = 0) => published(t, t.rows.length, col);
  const openAccounts = figs.map((f) => total(f.accounts));
  const energyKwh = figs.map((f) => total(f.energy));
  const last = figs[figs.length - 1];
  const charts: Chart[] = [
    { id: 'accounts', kind: 'stacked', title: w.accounts, desc: w.accountsD, unit: o.lang === 'fr' ? 'comptes' : 'accounts', labels: months, series: byRow((f) => f.accounts, svcName), digits: 0 },
    { id: 'signups', kind: 'stacked', title: w.signups, desc: w.signupsD, unit: o.lang === 'fr' ? 'inscriptions' : 'sign-ups', labels: months,
      series: [{ name: w.alone, values: figs.map((f) => total(f.signups, 0)) }, { name: w.mediator, values: figs.map((f) => total(f.signups, 1)) }], digits: 0 },
    { id: 'open-accounts', kind: 'line', title: w.open, desc: w.openD, unit: o.lang === 'fr' ? 'comptes' : 'accounts', labels: months, series: [{ name: w.all, values: openAccounts }], digits: 0 },
    { id: 'members', kind: 'stacked', title: w.members, desc: w.membersD, unit: o.lang === 'fr' ? 'membres' : 'members', labels: months,
      series: byRow((f) => f.members, (k) => (k === 'members' ? w.noCollege : collegeName(k))), digits: 0 },
    { id: 'energy-per-account', kind: 'line', title: w.perAccount, desc: w.perAccountD, unit: o.lang === 'fr' ? 'Wh par compte' : 'Wh per account', labels: months,
      series: [{ name: w.all, values: months.map((_, i) => { const a = openAccounts[i], e = energyKwh[i]; return a && e !== null && e !== undefined ? (e * 1000) / a : null; }) }], digits: 1 },
  ];
  if (last?.storage) {
    charts.splice(4, 0, { id: 'storage', kind: 'stacked', title: w.storage, desc: w.storageD, unit: o.lang === 'fr' ? 'Mo' : 'MB', labels: [last.month],
      series: byRow(() => last.storage!, svcName).map((s) => ({ ...s, values: [s.values[s.values.length - 1]! === null ? null : s.values[s.values.length - 1]! / 1e6] })), digits: 1 });
  }
  return charts.map(rounded);
}

/** Every chart of the city's page, in the order they are drawn. */
export function cityCharts(db: Db, catalog: Catalog, grain: Grain, o: CityOptions, collegeName: (slug: string) => string): Chart[] {
  return [...energyCharts(db, catalog, grain, o), ...usageCharts(db, catalog, o, collegeName)];
}
