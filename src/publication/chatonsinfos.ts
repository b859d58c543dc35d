// ChatonsInfos: what a CHATONS member publishes about itself and each service it offers, for StatoolInfos
// (stats.chatons.org) to read, under /.well-known/chatonsinfos/. Generated from the configuration (organization.*,
// host.*), the catalog (software.*), governance's service settings (registration), live state (load, status) and the
// month figures after statistical secrecy (metrics.*), the same hidden cells as the open data. Key names: see
// docs/publication.md.
import type { Catalog } from '../catalog/load.js';
import { isOpen } from '../catalog/offer.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { serviceSettingsMap } from '../governance/settings.js';
import { instanceForNewResidents } from '../orchestrator/instances.js';
import { monthBounds, monthFigures, monthOf, published, rulesOf, type MonthFigures, type Table } from './figures.js';
import { properties } from './properties.js';

export const PROTOCOL = 'ChatonsInfos-0.5';
export const GENERATOR = 'cattery';
export const WELL_KNOWN = '/.well-known/chatonsinfos';

export interface ChatonsDeps { db: Db; catalog: Catalog; config: Config }

const stamp = (now: Date) => now.toISOString().slice(0, 19);
/** ChatonsInfos writes dates as DD/MM/YYYY. */
const frDate = (iso: string) => (iso ? `${iso.slice(8, 10)}/${iso.slice(5, 7)}/${iso.slice(0, 4)}` : '');

/** The services offered: in the catalog, with an instance meant to run. */
export function offeredServices(d: ChatonsDeps): string[] {
  const rows = d.db.$client.prepare("SELECT DISTINCT service FROM instances WHERE desired = 'running' ORDER BY service").all() as { service: string }[];
  return rows.map((r) => r.service).filter((s) => d.catalog.services.has(s));
}

export function organizationFile(d: ChatonsDeps, now = new Date()): string {
  const o = d.config.publication.organization;
  const [lat = '', lon = ''] = o.geolocation ? o.geolocation.split(',') : [];
  const base = `${d.config.publicUrl}${WELL_KNOWN}`;
  return properties([
    { title: 'File', entries: fileKeys('organization', now) },
    {
      title: 'Organization', entries: [
        ['organization.name', o.name], ['organization.description', o.description], ['organization.website', o.website],
        ['organization.legal.url', o.legalUrl], ['organization.contact.url', o.contactUrl], ['organization.contact.email', o.contactEmail],
        ['organization.type', o.type], ['organization.status.level', o.status], ['organization.startdate', frDate(o.startDate)],
        ['organization.memberof.chatons.startdate', frDate(o.chatonsSince)],
        ['organization.country.name', d.config.publication.host.countryName], ['organization.country.code', d.config.publication.host.countryCode],
        ['organization.geolocation.latitude', lat], ['organization.geolocation.longitude', lon], ['organization.geolocation.address', o.address],
      ],
    },
    { title: 'Subs', entries: offeredServices(d).map((s) => [`subs.${s}`, `${base}/${s}.properties`]) },
  ]);
}

function fileKeys(cls: 'organization' | 'service', now: Date): [string, string][] {
  return [['file.class', cls], ['file.protocol', PROTOCOL], ['file.datetime', stamp(now)], ['file.generator', GENERATOR]];
}

/** None: nobody signs up (no accounts); Member: kept for the association's members; Free: anyone may sign up;
 * Client: accounts are given by the association on request (an administrator makes them). */
export function registrationOf(d: ChatonsDeps, service: string): 'None' | 'Free' | 'Member' | 'Client' {
  const m = d.catalog.services.get(service)!.manifest;
  const s = serviceSettingsMap(d.db).get(service);
  if (!m.accounts) return 'None';
  if (s?.membersOnly) return 'Member';
  return isOpen(m, s) ? 'Free' : 'Client';
}

/** FULL when no instance takes new residents, or when the one that does has its accounts' measured usage at 90 %
 * of its volumes' size (the quotas given may add up to more: they are promises, not use). */
export function loadOf(d: ChatonsDeps, service: string): 'OPEN' | 'FULL' {
  const inst = instanceForNewResidents(d.db, service);
  if (!inst) return 'FULL';
  const m = d.catalog.services.get(service)!.manifest;
  const capacity = m.volumes.reduce((a, v) => a + v.sizeMb, 0) * 1024 * 1024;
  const used = (d.db.$client.prepare("SELECT COALESCE(SUM(usage_bytes), 0) n FROM accounts WHERE instance_id = ? AND state != 'deleting'").get(inst.id) as { n: number }).n;
  return capacity > 0 && used >= 0.9 * capacity ? 'FULL' : 'OPEN';
}

/** What a newcomer meets for a service: its registration mode and its load. One reading for the ChatonsInfos files,
 * the hoster document federation/ signs, and the sign-up page's "full here" notice. */
export function serviceOffer(d: ChatonsDeps, service: string): { registration: ReturnType<typeof registrationOf>; load: 'OPEN' | 'FULL' } {
  return { registration: registrationOf(d, service), load: loadOf(d, service) };
}

function statusOf(d: ChatonsDeps, service: string): 'OK' | 'WARNING' | 'ERROR' {
  const o = instanceForNewResidents(d.db, service)?.observed;
  if (o === 'healthy' || o === 'running') return 'OK';
  if (o === 'failed' || o === 'stopped' || o === 'deleting' || o === undefined) return 'ERROR';
  return 'WARNING';
}

/** The tag of a pinned image reference (`nextcloud:29.0.4-apache@sha256:…` → 29.0.4-apache). */
export function versionOf(image: string): string {
  const noDigest = image.split('@')[0]!;
  const last = noDigest.slice(noDigest.lastIndexOf('/') + 1);
  return last.includes(':') ? last.slice(last.indexOf(':') + 1) : '';
}

/** Months of a year, each as published (empty when secret, not yet, or not kept). */
function series(figs: (MonthFigures | undefined)[], pick: (f: MonthFigures) => Table | undefined, service: string, col: number, fmt: (v: number) => string): string {
  return figs.map((f) => {
    if (!f) return '';
    const t = pick(f);
    if (!t) return '';
    const row = t.rows.indexOf(service);
    if (row < 0) return '';
    const v = published(t, row, col);
    return v === null ? '' : fmt(v);
  }).join(',');
}

/** The figures of every month of a year up to now (undefined for months to come). */
export function yearFigures(d: ChatonsDeps, year: number, now: Date): (MonthFigures | undefined)[] {
  const rules = rulesOf(d.config.publication.minGroup);
  return Array.from({ length: 12 }, (_, i) => {
    const month = `${year}-${String(i + 1).padStart(2, '0')}`;
    return monthBounds(month).start <= now ? monthFigures(d.db, d.catalog, month, rules, now) : undefined;
  });
}

export function serviceFile(d: ChatonsDeps, service: string, now = new Date(), years?: Map<number, (MonthFigures | undefined)[]>): string | undefined {
  if (!offeredServices(d).includes(service)) return undefined;
  const m = d.catalog.services.get(service)!.manifest;
  const h = d.config.publication.host;
  const sw = m.software;
  const offer = serviceOffer(d, service);
  const y = now.getUTCFullYear();
  const metrics: [string, string][] = [];
  const describe: [string, string, string][] = [
    ['metrics.service.accounts', 'Comptes', 'Comptes existants en fin de mois'],
    ['metrics.service.signups', 'Inscriptions', 'Inscriptions approuvées dans le mois, seul ou avec un médiateur'],
    ['metrics.storage.bytes', 'Stockage', 'Octets utilisés par les comptes (mois en cours seulement)'],
    ['metrics.energy.kwh', 'Énergie', 'kWh des instances du service sur le mois (mesurés ou modélisés)'],
  ];
  for (const [k, name, desc] of describe) metrics.push([`${k}.name`, name], [`${k}.description`, desc]);
  const int = (v: number) => String(Math.round(v));
  for (const year of [y - 1, y]) {
    const figs = years?.get(year) ?? yearFigures(d, year, now);
    years?.set(year, figs);
    metrics.push(
      [`metrics.service.accounts.${year}.months`, series(figs, (f) => f.accounts, service, 0, int)],
      [`metrics.service.signups.${year}.months`, series(figs, (f) => f.signups, service, 2, int)],
      [`metrics.storage.bytes.${year}.months`, series(figs, (f) => f.storage, service, 0, int)],
      [`metrics.energy.kwh.${year}.months`, series(figs, (f) => f.energy, service, 0, (v) => String(Math.round(v * 1000) / 1000))],
    );
  }
  return properties([
    { title: 'File', entries: fileKeys('service', now) },
    {
      title: 'Service', entries: [
        ['service.name', m.name.fr], ['service.description', m.description.fr], ['service.website', d.config.publicUrl],
        ['service.status.level', statusOf(d, service)], ['service.registration', offer.registration],
        ['service.registration.load', offer.load], ['service.install.type', 'CONTAINERS'],
      ],
    },
    {
      title: 'Software', entries: [
        ['software.name', sw?.name ?? m.name.en], ['software.website', sw?.website ?? ''], ['software.license.name', sw?.license ?? ''],
        ['software.license.url', sw ? `https://spdx.org/licenses/${sw.license.split(' ')[0]}.html` : ''],
        ['software.version', versionOf(m.image.production)], ['software.source.url', sw?.source ?? ''],
      ],
    },
    {
      title: 'Host', entries: [
        ['host.name', h.name], ['host.server.type', h.serverType], ['host.provider.type', h.providerType],
        ['host.country.name', h.countryName], ['host.country.code', h.countryCode],
      ],
    },
    { title: 'Metrics', entries: metrics },
  ]);
}

