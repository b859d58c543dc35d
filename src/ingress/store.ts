// The front door's rows: which names each instance answers to, and what each server's Caddy serves now. Every
// function is synchronous (better-sqlite3); the reconciler reads these to compute Caddy's configuration.
import { and, asc, eq, ne } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { hostnames, ingressState, instances, type IngressState } from '../db/schema.js';
import { fail } from '../errors.js';
import { checkHostname } from './hostnames.js';

export interface HostnameRow { hostname: string; instanceId: number; slug: string; service: string; serverId: number; desired: string }

/** Every name with the instance it belongs to, in name order. */
export function listHostnames(db: Db): HostnameRow[] {
  return db.select({ hostname: hostnames.hostname, instanceId: hostnames.instanceId, slug: instances.slug, service: instances.service, serverId: instances.serverId, desired: instances.desired })
    .from(hostnames).innerJoin(instances, eq(instances.id, hostnames.instanceId)).orderBy(asc(hostnames.hostname)).all();
}

/** The names under one domain (the domain itself included). */
export function hostnamesUnder(db: Db, domain: string): HostnameRow[] {
  return listHostnames(db).filter((h) => h.hostname === domain || h.hostname.endsWith(`.${domain}`));
}

export function hostnamesOf(db: Db, instanceId: number): string[] {
  return db.select({ h: hostnames.hostname }).from(hostnames).where(eq(hostnames.instanceId, instanceId))
    .orderBy(asc(hostnames.hostname)).all().map((r) => r.h);
}

export const MAX_HOSTNAMES_PER_INSTANCE = 16;

/** Replace an instance's names with `given` (checked, lower-cased, deduplicated) in one transaction. A name another
 * instance holds is a 409 naming that instance; nothing changes unless every name passes. */
export function setHostnames(db: Db, instanceId: number, given: readonly string[], domains: readonly string[], ownHost?: string): string[] {
  const names = [...new Set(given.map((g) => checkHostname(g, domains, ownHost)))].sort();
  if (names.length > MAX_HOSTNAMES_PER_INSTANCE) throw fail('CATTERY_ERR_VALIDATION', `hostnames: at most ${MAX_HOSTNAMES_PER_INSTANCE} per instance`);
  return db.transaction((tx) => {
    for (const name of names) {
      const holder = tx.select({ slug: instances.slug }).from(hostnames).innerJoin(instances, eq(instances.id, hostnames.instanceId))
        .where(and(eq(hostnames.hostname, name), ne(hostnames.instanceId, instanceId))).get();
      if (holder) throw fail('CATTERY_ERR_CONFLICT', `hostname "${name}" is already used by instance "${holder.slug}"`);
    }
    tx.delete(hostnames).where(eq(hostnames.instanceId, instanceId)).run();
    for (const name of names) tx.insert(hostnames).values({ hostname: name, instanceId }).run();
    return names;
  });
}

export function ingressStateOf(db: Db, serverId: number): IngressState | undefined {
  return db.select().from(ingressState).where(eq(ingressState.serverId, serverId)).get();
}

/** Caddy accepted this configuration: it is what serves now, and an earlier refusal is over. */
export function recordApplied(db: Db, serverId: number, hash: string): void {
  const at = new Date().toISOString();
  db.insert(ingressState).values({ serverId, appliedHash: hash, appliedAt: at, lastError: null, lastErrorAt: null, updatedAt: at })
    .onConflictDoUpdate({ target: ingressState.serverId, set: { appliedHash: hash, appliedAt: at, lastError: null, lastErrorAt: null, updatedAt: at } }).run();
}

/** The latest configuration could not be applied; the previous one (appliedHash) goes on serving. */
export function recordIngressError(db: Db, serverId: number, error: string): void {
  const at = new Date().toISOString();
  db.insert(ingressState).values({ serverId, lastError: error, lastErrorAt: at, updatedAt: at })
    .onConflictDoUpdate({ target: ingressState.serverId, set: { lastError: error, lastErrorAt: at, updatedAt: at } }).run();
}
