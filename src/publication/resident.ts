// A resident's own figures: the storage of each of their accounts and their energy estimate month by month, with
// what the year's CO2e would be in kilometres by bus. Their own accounts only: the caller hands in the person's id
// from the session, never from the request.
import { accountsOfUser } from '../accounts/accounts.js';
import type { Db } from '../db/connection.js';
import { accountFigure } from '../metering/report.js';
import { rounded, type Chart, type Lang } from './charts.js';
import { monthBounds } from './figures.js';
import { usageMonths } from './city.js';

/**
 * Grams of CO2e per passenger-kilometre by city bus with a combustion engine: ADEME's Impact CO2 figure for
 * `busthermique`, built on the Base Empreinte: 113.5 g of use (fuel upstream and combustion) plus 8.92 g of
 * manufacturing, 122.4 g in all (https://impactco2.fr/outils/transport/busthermique; docs/publication.md).
 */
export const BUS_G_PER_KM = 122.4;
export const BUS_SOURCE = { url: 'https://impactco2.fr/outils/transport/busthermique', name: 'ADEME, Impact CO₂ (Base Empreinte) : bus thermique' };

export interface ResidentView {
  charts: Chart[];
  accounts: { service: string; slug: string; storageMb: number | null; measuredAt: string | null }[];
  yearWh: number; yearCo2eG: number; busKm: number;
}

export function residentView(db: Db, userId: number, gridGPerKwh: number, lang: Lang, now = new Date()): ResidentView {
  const mine = accountsOfUser(db, userId).filter(({ account }) => account.state !== 'deleting');
  const months = usageMonths(now).filter((m) => monthBounds(m).start <= now);
  const fr = lang === 'fr';
  const per = mine.map(({ account, instance }) => months.map((m) => {
    const { start, end } = monthBounds(m);
    // The account's key (its share of the instance) is today's, applied to each past month: usage history is not kept.
    const f = accountFigure(db, instance.slug, account.username, { from: start, to: end > now ? now : end, gridGPerKwh });
    return { wh: f.energyWh + f.idleShareWh, co2: f.co2eG.total };
  }));
  const name = (i: number) => `${mine[i]!.instance.service} (${mine[i]!.account.username})`;
  const energy: Chart = {
    id: 'my-energy', kind: 'stacked', labels: months, digits: 1, unit: 'Wh',
    title: fr ? 'Énergie estimée de mes comptes' : 'Estimated energy of my accounts',
    desc: fr ? 'Énergie de chacun de mes comptes chaque mois : sa part de l’instance, selon son stockage et ses éléments, repos des serveurs compris.'
      : 'Energy of each of my accounts each month: its share of the instance, by its storage and items, servers at rest included.',
    series: mine.map((_, i) => ({ name: name(i), values: per[i]!.map((p) => p.wh) })),
  };
  const co2: Chart = {
    id: 'my-co2', kind: 'line', labels: months, digits: 1, unit: 'g CO2e',
    title: fr ? 'CO2e estimé de mes comptes' : 'Estimated CO2e of my accounts',
    desc: fr ? 'Émissions en équivalent CO2 de tous mes comptes chaque mois : électricité et fabrication des serveurs.' : 'Emissions in CO2 equivalent of all my accounts each month: electricity and the servers’ manufacturing.',
    series: [{ name: fr ? 'Tous mes comptes' : 'All my accounts', values: months.map((_, k) => per.reduce((a, p) => a + p[k]!.co2, 0)) }],
  };
  const storage: Chart = {
    id: 'my-storage', kind: 'stacked', labels: [now.toISOString().slice(0, 10)], digits: 1, unit: fr ? 'Mo' : 'MB',
    title: fr ? 'Stockage de mes comptes' : 'Storage of my accounts',
    desc: fr ? 'Dernière mesure du stockage de chacun de mes comptes (l’historique n’est pas conservé).' : 'Last measurement of each of my accounts’ storage (no history is kept).',
    series: mine.map(({ account }, i) => ({ name: name(i), values: [account.usageBytes === null ? null : account.usageBytes / 1e6] })),
  };
  const yearWh = per.reduce((a, p) => a + p.reduce((x, q) => x + q.wh, 0), 0);
  const yearCo2eG = per.reduce((a, p) => a + p.reduce((x, q) => x + q.co2, 0), 0);
  return {
    charts: [storage, energy, co2].map(rounded),
    accounts: mine.map(({ account, instance }) => ({ service: instance.service, slug: instance.slug, storageMb: account.usageBytes === null ? null : account.usageBytes / 1e6, measuredAt: account.usageAt })),
    yearWh, yearCo2eG, busKm: yearCo2eG / BUS_G_PER_KM,
  };
}
