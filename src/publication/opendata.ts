// Open data the city can publish: one CSV per dataset and month, with a frictionless Table Schema beside it, under
// the Licence Ouverte 2.0 (Etalab). The columns follow Etalab's `schema-impact-service-public-numerique` v0.3.0
// (indicateur, valeur, unite_mesure, est_cible, frequence_monitoring, date, est_periode, date_debut, est_automatise,
// source_collecte, code_insee, commentaires; docs/publication.md), with `service` or `college` added to say which
// row of the table a line is, and `secret_statistique` to say that a value is withheld. Every value comes from
// figures.ts after suppression: a hidden cell has an empty `valeur`, whatever the reason it was hidden.
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { listColleges } from '../governance/settings.js';
import { monthBounds, monthFigures, published, rulesOf, type MonthFigures, type Table } from './figures.js';

export const DATASETS = ['energy-per-service', 'usage-per-service', 'members-per-college'] as const;
export type Dataset = (typeof DATASETS)[number];

export const LICENCE = {
  name: 'etalab-2.0',
  title: 'Licence Ouverte / Open Licence version 2.0',
  path: 'https://www.etalab.gouv.fr/licence-ouverte-open-licence/',
} as const;

/** The Etalab schema these files follow where its columns fit. */
export const ETALAB_SCHEMA = 'https://github.com/etalab/schema-impact-service-public-numerique/raw/v0.3.0/schema.json';

const TOTAL = 'total';

interface Indicator { id: string; label: string; unit: string; period: boolean }

// Labels stay the same from month to month (the Etalab schema asks it of `indicateur`).
const INDICATORS: Record<Dataset, Indicator[]> = {
  'energy-per-service': [{ id: 'kwh', label: 'Énergie consommée par les instances du service', unit: 'kWh', period: true }],
  'usage-per-service': [
    { id: 'accounts', label: 'Nombre de comptes', unit: 'unité', period: false },
    { id: 'self', label: 'Inscriptions faites seul', unit: 'unité', period: true },
    { id: 'mediator', label: 'Inscriptions faites avec un médiateur', unit: 'unité', period: true },
    { id: 'signups', label: 'Inscriptions', unit: 'unité', period: true },
    { id: 'bytes', label: 'Stockage utilisé', unit: 'octet', period: false },
  ],
  'members-per-college': [{ id: 'members', label: 'Nombre de membres', unit: 'unité', period: false }],
};

const keyColumn = (d: Dataset) => (d === 'members-per-college' ? 'college' : 'service');

export interface Field {
  name: string; type: 'string' | 'number' | 'boolean' | 'date'; description: string;
  constraints: { required: boolean; enum?: string[]; pattern?: string };
}

/** The frictionless Table Schema of a dataset (https://specs.frictionlessdata.io/table-schema/). */
export function tableSchema(d: Dataset, config: Config): Record<string, unknown> {
  const ind = INDICATORS[d];
  const keys = d === 'members-per-college'
    ? { pattern: '^([a-z][a-z0-9-]{0,39}|members|total)$', description: 'Le collège (son identifiant), « members » sans collèges, « total » pour l’ensemble' }
    : { pattern: '^([a-z][a-z0-9-]{1,30}|total)$', description: 'Le service (son identifiant au catalogue), « total » pour l’ensemble des services' };
  const fields: Field[] = [
    { name: 'administration_rattachement', type: 'string', description: 'L’association qui publie', constraints: { required: true } },
    { name: 'nom_service_public_numerique', type: 'string', description: 'Le nom du service, ou du collège', constraints: { required: true } },
    { name: keyColumn(d), type: 'string', description: keys.description, constraints: { required: true, pattern: keys.pattern } },
    { name: 'indicateur', type: 'string', description: 'Intitulé de l’indicateur, le même chaque mois', constraints: { required: true, enum: ind.map((i) => i.label) } },
    { name: 'valeur', type: 'number', description: 'La valeur; vide quand elle relève du secret statistique (secret_statistique = true)', constraints: { required: false } },
    { name: 'unite_mesure', type: 'string', description: 'L’unité de la valeur', constraints: { required: true, enum: [...new Set(ind.map((i) => i.unit))] } },
    { name: 'est_cible', type: 'boolean', description: 'Toujours false : des valeurs mesurées', constraints: { required: true } },
    { name: 'frequence_monitoring', type: 'string', description: 'Fréquence de publication', constraints: { required: true, enum: ['mensuelle'] } },
    { name: 'date', type: 'date', description: 'Le dernier jour du mois (fin de la période, ou date du stock)', constraints: { required: true } },
    { name: 'est_periode', type: 'boolean', description: 'true : un total sur le mois ; false : un stock à la fin du mois', constraints: { required: true } },
    { name: 'date_debut', type: 'date', description: 'Le premier jour du mois, pour une période', constraints: { required: false } },
    { name: 'est_automatise', type: 'boolean', description: 'Toujours true : tiré de la base de cattery', constraints: { required: true } },
    { name: 'source_collecte', type: 'string', description: 'Comment la valeur est obtenue', constraints: { required: true } },
    { name: 'code_insee', type: 'string', description: 'Code officiel géographique de la commune, si configuré', constraints: { required: false, pattern: '^[0-9][0-9AB][0-9]{3}$' } },
    { name: 'secret_statistique', type: 'boolean', description: 'true : valeur retenue (moins de ' + config.publication.minGroup + ' personnes, une personne au-delà de 85 %, ou secret secondaire)', constraints: { required: true } },
    { name: 'commentaires', type: 'string', description: 'Limites connues de l’indicateur', constraints: { required: false } },
  ];
  return {
    $schema: 'https://specs.frictionlessdata.io/schemas/table-schema.json',
    name: d,
    title: TITLES[d],
    description: `${TITLES[d]}, publié chaque mois après application du secret statistique (docs/publication.md).`,
    countryCode: 'FR',
    licenses: [LICENCE],
    sources: [{ title: 'schema-impact-service-public-numerique (Etalab), colonnes reprises', path: ETALAB_SCHEMA }],
    fields,
    missingValues: [''],
  };
}

const TITLES: Record<Dataset, string> = {
  'energy-per-service': 'Énergie consommée par service',
  'usage-per-service': 'Usage par service : comptes, inscriptions, stockage',
  'members-per-college': 'Membres par collège',
};

const SOURCE: Record<string, string> = {
  kwh: 'script : relevés de cattery (metering), mesurés ou modélisés',
  accounts: 'script : comptes existants en fin de mois',
  self: 'script : demandes d’inscription approuvées', mediator: 'script : demandes d’inscription approuvées', signups: 'script : demandes d’inscription approuvées',
  bytes: 'script : dernière mesure de l’usage des comptes',
  members: 'script : registre des membres',
};
const COMMENT: Record<string, string> = {
  kwh: 'Hors consommation au repos des serveurs et hors processus système, publiés à part.',
  accounts: 'Les comptes supprimés depuis ne sont plus comptés dans les mois passés. Le total compte des comptes, une personne pouvant en avoir plusieurs.',
  bytes: 'Publié pour le mois en cours seulement : l’historique du stockage n’est pas conservé.',
  members: 'Chaque membre est compté dans son collège actuel.',
};

export interface Row { key: string; name: string; indicator: Indicator; value: number | null }

/** The rows of a dataset for a month, every hidden cell already withheld. */
export function datasetRows(d: Dataset, f: MonthFigures, catalog: Catalog, db: Db): Row[] {
  const svcName = (id: string) => (id === TOTAL ? 'Tous les services' : catalog.services.get(id)?.manifest.name.fr ?? id);
  const out: Row[] = [];
  const ind = (id: string) => INDICATORS[d].find((i) => i.id === id)!;
  const each = (t: Table, col: number, indicator: Indicator, name: (k: string) => string) => {
    for (let r = 0; r <= t.rows.length; r++) {
      const key = r === t.rows.length ? TOTAL : t.rows[r]!;
      out.push({ key, name: name(key), indicator, value: published(t, r, col) });
    }
  };
  if (d === 'energy-per-service') each(f.energy, 0, ind('kwh'), svcName);
  if (d === 'usage-per-service') {
    each(f.accounts, 0, ind('accounts'), svcName);
    each(f.signups, 0, ind('self'), svcName);
    each(f.signups, 1, ind('mediator'), svcName);
    each(f.signups, 2, ind('signups'), svcName);
    if (f.storage) each(f.storage, 0, ind('bytes'), svcName);
  }
  if (d === 'members-per-college') {
    const names = new Map(listColleges(db).map((c) => [c.slug, c.nameFr]));
    each(f.members, 0, ind('members'), (k) => (k === TOTAL ? 'Tous les collèges' : names.get(k) ?? 'Membres'));
  }
  return out;
}

/** A cell as a spreadsheet must read it: text never taken for a formula (OWASP "CSV Injection": a leading = + - @,
 * tab or carriage return gets an apostrophe), quoted as RFC 4180 says when it holds a separator, quote or line break. */
function cell(v: string | number | boolean | null): string {
  if (v === null) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Numbers as Table Schema reads them: plain decimal, a point, no exponent; kWh to the watt-hour. */
function num(v: number, unit: string): string {
  return String(unit === 'kWh' ? Math.round(v * 1000) / 1000 : Math.round(v));
}

export function datasetCsv(d: Dataset, month: string, config: Config, db: Db, catalog: Catalog, now = new Date()): string {
  const f = monthFigures(db, catalog, month, rulesOf(config.publication.minGroup), now);
  const { first, last } = monthBounds(month);
  const org = config.publication.organization;
  const schema = tableSchema(d, config) as { fields: Field[] };
  const header = schema.fields.map((x) => x.name);
  const lines = [header.join(',')];
  for (const r of datasetRows(d, f, catalog, db)) {
    const rec: Record<string, string | number | boolean | null> = {
      administration_rattachement: org.name || config.hosterId,
      nom_service_public_numerique: r.name,
      [keyColumn(d)]: r.key,
      indicateur: r.indicator.label,
      valeur: r.value === null ? null : num(r.value, r.indicator.unit),
      unite_mesure: r.indicator.unit,
      est_cible: false,
      frequence_monitoring: 'mensuelle',
      date: last,
      est_periode: r.indicator.period,
      date_debut: r.indicator.period ? first : null,
      est_automatise: true,
      source_collecte: SOURCE[r.indicator.id] ?? 'script',
      code_insee: org.inseeCode || null,
      secret_statistique: r.value === null,
      commentaires: COMMENT[r.indicator.id] ?? null,
    };
    lines.push(header.map((h) => cell(rec[h] ?? null)).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** A Data Package (https://specs.frictionlessdata.io/data-package/) naming every dataset's latest file and schema. */
export function dataPackage(config: Config, month: string): Record<string, unknown> {
  const base = `${config.publicUrl}/open-data`;
  return {
    name: `${config.hosterId}-open-data`,
    title: `Données ouvertes de ${config.publication.organization.name || config.hosterId}`,
    licenses: [LICENCE],
    resources: DATASETS.map((d) => ({
      name: d, title: TITLES[d], path: `${base}/${d}/${month}.csv`, format: 'csv', mediatype: 'text/csv', encoding: 'utf-8',
      schema: `${base}/${d}/schema.json`,
    })),
  };
}
