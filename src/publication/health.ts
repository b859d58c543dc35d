// The administrators' view of how the hoster is doing: the operations journal per day (what finished, what failed, what
// the reconciler had to restart), the operations failed or still pending, and each server's and service's capacity
// with what is left before a service must say FULL (the same rule as ChatonsInfos' `service.registration.load`).
// Reads the orchestrator's, accounts' and metering's tables, never writes. Names of instances appear here: this is
// for administrators only (http/permissions.ts).
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { energyBetween } from '../metering/store.js';
import { instanceForNewResidents, listInstances } from '../orchestrator/instances.js';
import { rounded, type Chart, type Lang } from './charts.js';
import { loadOf } from './chatonsinfos.js';
import type { Config } from '../config.js';

const DAYS = 30;
/** A service says FULL once its accounts' measured usage reaches this share of its volumes (chatonsinfos.ts loadOf). */
export const FULL_AT = 0.9;

export function operationsChart(db: Db, lang: Lang, now = new Date()): Chart {
  const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - (DAYS - 1)));
  const labels = Array.from({ length: DAYS }, (_, i) => new Date(first.getTime() + i * 86_400_000).toISOString().slice(0, 10));
  const rows = db.$client.prepare(`SELECT substr(created_at, 1, 10) day, status, kind LIKE 'container-%' OR kind = 'restarted' restart, COUNT(*) n
    FROM operations WHERE created_at >= ? GROUP BY day, status, restart`).all(first.toISOString()) as { day: string; status: string; restart: number; n: number }[];
  const at = (pred: (r: (typeof rows)[number]) => boolean) => labels.map((d) => rows.filter((r) => r.day === d.slice(0, 10) && pred(r)).reduce((a, r) => a + r.n, 0));
  const fr = lang === 'fr';
  return rounded({
    id: 'operations', kind: 'stacked', labels, digits: 0, unit: fr ? 'opérations' : 'operations',
    title: fr ? 'Opérations par jour' : 'Operations per day',
    desc: fr ? 'Le journal des opérations sur 30 jours : terminées, échouées, en attente ou en cours, et les actions du réconciliateur sur les conteneurs (redémarrages).'
      : 'The operations journal over 30 days: done, failed, pending or running, and the reconciler’s actions on containers (restarts).',
    series: [
      { name: fr ? 'Terminées' : 'Done', values: at((r) => r.status === 'done' && !r.restart) },
      { name: fr ? 'Réconciliateur (conteneurs)' : 'Reconciler (containers)', values: at((r) => r.status === 'done' && !!r.restart) },
      { name: fr ? 'Échouées' : 'Failed', values: at((r) => r.status === 'failed') },
      { name: fr ? 'En attente ou en cours' : 'Pending or running', values: at((r) => r.status === 'pending' || r.status === 'running') },
    ],
  });
}

export interface OpenOperation { id: number; slug: string; kind: string; status: string; error: string | null; createdAt: string }

/** Failed operations of the last 30 days and every operation still pending or running, newest first. */
export function openOperations(db: Db, now = new Date(), limit = 50): OpenOperation[] {
  return db.$client.prepare(`SELECT id, instance_slug slug, kind, status, error, created_at createdAt FROM operations
    WHERE status IN ('pending', 'running') OR (status = 'failed' AND created_at >= ?) ORDER BY id DESC LIMIT ?`)
    .all(new Date(now.getTime() - DAYS * 86_400_000).toISOString(), limit) as OpenOperation[];
}

export interface ServerCapacity {
  name: string; instances: number; cpusReserved: number; memoryMbReserved: number; diskMbReserved: number;
  /** Over the last 24 hours, from metering's server line: mean CPU cores busy and mean memory in use. */
  cpuBusy: number | null; memoryMbUsed: number | null;
}

export interface ServiceCapacity {
  service: string; instance: string | null; capacityMb: number; usedMb: number; leftBeforeFullMb: number; load: 'OPEN' | 'FULL';
}

export function capacity(db: Db, catalog: Catalog, config: Config, now = new Date()): { servers: ServerCapacity[]; services: ServiceCapacity[] } {
  const live = listInstances(db).filter((i) => i.desired !== 'deleted');
  const rows = energyBetween(db, new Date(now.getTime() - 86_400_000), now).filter((r) => r.scope === 'server');
  const servers = (db.$client.prepare('SELECT id, name FROM servers ORDER BY name').all() as { id: number; name: string }[]).map((s) => {
    const mine = live.filter((i) => i.serverId === s.id);
    const m = (i: (typeof mine)[number]) => catalog.services.get(i.service)?.manifest;
    const line = rows.find((r) => r.serverId === s.id);
    return {
      name: s.name, instances: mine.length,
      cpusReserved: mine.reduce((a, i) => a + (m(i)?.limits.cpus ?? 0), 0),
      memoryMbReserved: mine.reduce((a, i) => a + (m(i)?.limits.memoryMb ?? 0), 0),
      diskMbReserved: mine.reduce((a, i) => a + (m(i)?.volumes.reduce((x, v) => x + v.sizeMb, 0) ?? 0), 0),
      cpuBusy: line && line.seconds > 0 ? line.cpuSeconds / line.seconds : null,
      memoryMbUsed: line ? line.meanMemoryBytes / 1048576 : null,
    };
  });
  const deps = { db, catalog, config };
  const services = [...catalog.services.values()].filter((s) => s.manifest.accounts).map(({ manifest: m }) => {
    const inst = instanceForNewResidents(db, m.id);
    const capacityMb = m.volumes.reduce((a, v) => a + v.sizeMb, 0);
    const used = inst ? (db.$client.prepare("SELECT COALESCE(SUM(usage_bytes), 0) n FROM accounts WHERE instance_id = ? AND state != 'deleting'").get(inst.id) as { n: number }).n / 1048576 : 0;
    return { service: m.id, instance: inst?.slug ?? null, capacityMb, usedMb: used, leftBeforeFullMb: Math.max(0, FULL_AT * capacityMb - used), load: loadOf(deps, m.id) };
  });
  return { servers, services };
}
