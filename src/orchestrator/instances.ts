// The desired state of instances: what the association asked for. Every function here is synchronous and writes in
// one SQLite transaction (intent first); the reconciler then converges Docker to it.
import crypto from 'node:crypto';
import { and, asc, eq } from 'drizzle-orm';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { instances, servers, type Desired, type Instance, type InstanceConfig, type Observed, type Server } from '../db/schema.js';
import { fail } from '../errors.js';
import { instanceEnvProblem } from '../catalog/env.js';
import { serviceImageRef } from './docker/index.js';
import { closePending, dropUnderWay, journal, notePendingError } from './journal.js';
import { allocateSubnet } from './subnets.js';
import { linkView, makeLinks, usedSubnets, type LinkHostOf, type LinkRequest } from './links.js';

export interface InstanceDeps {
  db: Db; catalog: Catalog; portRange: readonly [number, number]; subnetPool: string;
  /** The name a linked instance answers to (orchestrator/links.ts); needed only by instances that ask for links. */
  linkHostOf?: LinkHostOf | undefined;
}

export const SLUG_PATTERN = '^[a-z][a-z0-9-]{1,40}[a-z0-9]$';

/** An intent: the reconciler closes it once the instance shows it (journal.ts closePending). */
function intend(db: Db, slug: string, kind: string, actor: string, detail?: Record<string, unknown>) {
  journal(db, { slug, kind, actor, status: 'pending', detail });
}

function allocatePorts(db: Db, names: string[], range: readonly [number, number]): Record<string, number> {
  const used = new Set<number>();
  for (const row of db.select({ config: instances.config }).from(instances).all()) {
    for (const p of Object.values(row.config.ports)) used.add(p);
    // A well-known number published on the public address (public-ports.ts) is taken too, whatever the range.
    for (const p of Object.values(row.config.publicPorts?.ports ?? {})) used.add(p);
  }
  const out: Record<string, number> = {};
  let next = range[0];
  for (const name of names) {
    while (used.has(next) && next <= range[1]) next++;
    if (next > range[1]) throw fail('CATTERY_ERR_PORTS_EXHAUSTED', `${range[0]}-${range[1]}`);
    out[name] = next;
    used.add(next);
  }
  return out;
}

function secret(length: number): string {
  // base64url keeps secrets safe to place in any config file format without quoting.
  return crypto.randomBytes(length).toString('base64url').slice(0, length);
}

export function getServer(db: Db, name?: string): Server {
  const row = name
    ? db.select().from(servers).where(eq(servers.name, name)).get()
    : db.select().from(servers).orderBy(asc(servers.id)).limit(1).get();
  if (!row) throw fail('CATTERY_ERR_NOT_FOUND', name ? `No server named "${name}"` : 'No server is registered');
  return row;
}

export function findInstance(db: Db, slug: string): Instance | undefined {
  return db.select().from(instances).where(eq(instances.slug, slug)).get();
}

/** The instance by its slug, or 404. */
export function getInstance(db: Db, slug: string): Instance {
  const row = findInstance(db, slug);
  if (!row) throw fail('CATTERY_ERR_NOT_FOUND', `No instance "${slug}"`);
  return row;
}

/** The server an instance lives on (a foreign key: it exists while the instance does). */
export function serverOf(db: Db, inst: Pick<Instance, 'serverId'>): Server {
  return db.select().from(servers).where(eq(servers.id, inst.serverId)).get()!;
}

/** The instance that takes new residents for a service: the oldest one meant to run. */
export function instanceForNewResidents(db: Db, service: string): Instance | undefined {
  return db.select().from(instances).where(and(eq(instances.service, service), eq(instances.desired, 'running')))
    .orderBy(asc(instances.id)).get();
}

export function listInstances(db: Db, filter: { service?: string; server?: number } = {}): Instance[] {
  const conds = [];
  if (filter.service) conds.push(eq(instances.service, filter.service));
  if (filter.server) conds.push(eq(instances.serverId, filter.server));
  return db.select().from(instances).where(conds.length ? and(...conds) : undefined).orderBy(asc(instances.id)).all();
}

export interface CreateInstanceInput {
  service: string; slug: string; server?: string; env?: Record<string, string>; desired?: 'running' | 'stopped';
  /** Link name → the slug of the instance to link to (manifest `links`). */
  links?: LinkRequest;
}

function checkEnv(deps: InstanceDeps, service: string, env: Record<string, string>, linked?: Record<string, string>) {
  const problem = instanceEnvProblem(deps.catalog.services.get(service)!.manifest, env, linked);
  if (problem) throw fail('CATTERY_ERR_VALIDATION', `${problem} (service ${service})`);
}

export function createInstance(deps: InstanceDeps, input: CreateInstanceInput, actor: string): Instance {
  const svc = deps.catalog.services.get(input.service);
  if (!svc) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', input.service);
  const env = input.env ?? {};
  return deps.db.transaction((tx) => {
    const db = tx as unknown as Db;
    const server = getServer(db, input.server);
    if (db.select({ id: instances.id }).from(instances).where(eq(instances.slug, input.slug)).get()) {
      throw fail('CATTERY_ERR_CONFLICT', `An instance named "${input.slug}" already exists`);
    }
    // A volume this instance would use (same name) is being dropped (housekeeping.ts): its row must not appear
    // between the drop's check and the removal.
    if (dropUnderWay(db, input.slug)) {
      throw fail('CATTERY_ERR_CONFLICT', `A volume named for "${input.slug}" is being dropped: try again in a minute`);
    }
    const m = svc.manifest;
    const subnet = allocateSubnet(deps.subnetPool, usedSubnets(db));
    const linked = makeLinks(deps, db, { service: input.service, slug: input.slug, serverId: server.id }, input.links ?? {}, [], [subnet]);
    // Required variables may come from a link; an override's shape is checked all the same.
    checkEnv(deps, input.service, env, linked.linkedEnv);
    const config: InstanceConfig = {
      ports: allocatePorts(db, m.ports.filter((p) => p.publish ?? true).map((p) => p.name), deps.portRange),
      secrets: Object.fromEntries(Object.entries(m.environment).flatMap(([k, v]) => ('secret' in v ? [[k, secret(v.secret.length)]] : []))),
      env,
      subnet,
      ...(linked.links.length ? { links: linked.links, linkedEnv: linked.linkedEnv } : {}),
    };
    const row = db.insert(instances).values({
      slug: input.slug, service: input.service, serverId: server.id, desired: input.desired ?? 'running',
      image: serviceImageRef(svc), config,
    }).returning().get();
    intend(db, input.slug, 'create', actor, { service: input.service, server: server.name });
    return row;
  });
}

/** Change the desired state; a change of environment or image starts a new generation (recreate, keep volumes). */
/** Instances a move or a restore elsewhere (orchestrator/relocate.ts) holds in this process: any other change of them
 * is refused until it is over. Accepted meanwhile, a delete or a stop would be written back by the move's switch of
 * the row, and a start between its stop and its final backup would write what the backup never holds (found by the
 * outside review of issue 15). */
export const relocating = new Set<string>();
const RELOCATION_KINDS = new Set(['move-stop', 'move-start', 'restore-elsewhere']);

function refuseWhileRelocating(slug: string, kind: string): void {
  if (relocating.has(slug) && !RELOCATION_KINDS.has(kind)) {
    throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" is being moved to another server: try again once the move is over`);
  }
}

export function updateInstance(
  deps: InstanceDeps, slug: string,
  change: { desired?: Desired; env?: Record<string, string>; links?: LinkRequest; upgrade?: boolean; purge?: boolean }, actor: string, kind: string,
): Instance {
  refuseWhileRelocating(slug, kind);
  return deps.db.transaction((tx) => {
    const db = tx as unknown as Db;
    const cur = getInstance(db, slug);
    // A delete whose archive cannot be made (image gone) may still be finished by asking again with purge.
    const purgeAfterDelete = change.desired === 'deleted' && change.purge === true && !change.env && !change.links && !change.upgrade;
    if (cur.desired === 'deleted' && !purgeAfterDelete) throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" is being deleted`);
    const set: Partial<Instance> = { updatedAt: new Date().toISOString(), attempts: 0, nextAttemptAt: null };
    if (change.desired) set.desired = change.desired;
    if (change.purge !== undefined) set.purge = change.purge;
    if (change.env || change.links) {
      // Links are replaced whole, as env is; a link kept (same name, same instance) keeps its network.
      const linked = change.links
        ? makeLinks(deps, db, { service: cur.service, slug: cur.slug, serverId: cur.serverId, id: cur.id }, change.links, cur.config.links ?? [])
        : { links: cur.config.links ?? [], linkedEnv: cur.config.linkedEnv ?? {} };
      const env = change.env ?? cur.config.env;
      checkEnv(deps, cur.service, env, linked.linkedEnv);
      const { links: _l, linkedEnv: _e, ...rest } = cur.config;
      set.config = { ...rest, env, ...(linked.links.length ? { links: linked.links, linkedEnv: linked.linkedEnv } : {}) };
      set.generation = cur.generation + 1;
    }
    if (change.upgrade) {
      const svc = deps.catalog.services.get(cur.service);
      if (!svc) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', cur.service);
      set.image = serviceImageRef(svc);
      set.generation = cur.generation + 1;
    }
    // A new generation has no container yet: what was observed was the old one's (a wait must not take it for done).
    if (set.generation !== undefined && cur.desired !== 'deleted') set.observed = 'creating';
    const row = db.update(instances).set(set).where(eq(instances.id, cur.id)).returning().get();
    intend(db, slug, kind, actor, { ...change, env: change.env ? Object.keys(change.env) : undefined });
    return row;
  });
}

/** Ask for a restart: the intent is a pending `restart` operation; the reconciler restarts the container while it
 * started before the intent, and closes it once the instance has converged (converge.ts nextAction). */
export function requestRestart(db: Db, slug: string, actor: string): Instance {
  refuseWhileRelocating(slug, 'restart');
  const inst = getInstance(db, slug);
  if (inst.desired !== 'running') {
    throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" is not meant to run (desired: ${inst.desired})`);
  }
  db.transaction((tx) => {
    intend(tx as unknown as Db, slug, 'restart', actor);
    // Seen as starting until a pass sees it up again: account operations meanwhile are queued, not run in a
    // container about to go down (accounts.ts isComingUp).
    tx.update(instances).set({ observed: 'starting' }).where(eq(instances.id, inst.id)).run();
  });
  return inst;
}

// ── what the reconciler records ───────────────────────────────────────────────────────────────────────────────

/** What the engine shows now, for this generation; once it is what was asked, the open intents are done. */
export function recordObservation(
  db: Db, inst: Instance,
  o: { observed: Observed; containerId: string | null; problem: string | null; converged: boolean; seenUpTo?: number },
): void {
  const now = new Date().toISOString();
  db.transaction((tx) => {
    tx.update(instances).set({
      observed: o.observed, containerId: o.containerId, lastError: o.problem, attempts: 0, nextAttemptAt: null, updatedAt: now,
    }).where(and(eq(instances.id, inst.id), eq(instances.generation, inst.generation))).run();
    if (o.converged) closePending(tx as unknown as Db, inst.slug, o.seenUpTo);
  });
}

/** A failed pass: the error, one more attempt, and when to try again. */
export function recordFailure(db: Db, inst: Instance, error: string, attempts: number, retryInSeconds: number): void {
  db.transaction((tx) => {
    tx.update(instances).set({
      lastError: error, attempts, nextAttemptAt: new Date(Date.now() + retryInSeconds * 1000).toISOString(),
      observed: inst.observed === 'pending' ? 'failed' : inst.observed, updatedAt: new Date().toISOString(),
    }).where(eq(instances.id, inst.id)).run();
    notePendingError(tx as unknown as Db, inst.slug, error);
  });
}

/** The variables an instance's links fill in are not what its container has (the linked instance got another name or
 * domain): a new generation with today's values, as a change of environment would start; the pass then replaces the
 * container. Written only if the row is still the one the pass read; undefined otherwise (the next pass looks again). */
export function recordLinkedEnv(db: Db, inst: Instance, linkedEnv: Record<string, string>): Instance | undefined {
  return db.transaction((tx) => {
    const row = tx.update(instances).set({
      config: { ...inst.config, linkedEnv }, generation: inst.generation + 1, observed: 'creating', updatedAt: new Date().toISOString(),
    }).where(and(eq(instances.id, inst.id), eq(instances.generation, inst.generation))).returning().get();
    const changed = Object.keys({ ...inst.config.linkedEnv, ...linkedEnv }).filter((k) => inst.config.linkedEnv?.[k] !== linkedEnv[k]);
    if (row) journal(tx as unknown as Db, { slug: inst.slug, kind: 'relinked', actor: 'reconciler', status: 'done', detail: { changed, generation: row.generation } });
    return row;
  });
}

export function markDeleting(db: Db, inst: Instance): void {
  db.update(instances).set({ observed: 'deleting' }).where(eq(instances.id, inst.id)).run();
}

/** The last step of a delete, in one transaction: what lived in the instance is forgotten first (its accounts, by
 * their own domain's function), then the row; the open intents are done and the deletion is journaled. */
export function removeInstance(
  db: Db, inst: Instance, forgetContents: (tx: Db, instanceId: number) => void, detail: Record<string, unknown>,
): void {
  db.transaction((t) => {
    const tx = t as unknown as Db;
    forgetContents(tx, inst.id);
    tx.delete(instances).where(eq(instances.id, inst.id)).run();
    closePending(tx, inst.slug);
    journal(tx, { slug: inst.slug, kind: 'deleted', actor: 'reconciler', status: 'done', detail });
  });
}

export function instancesOn(db: Db, serverId: number): Instance[] {
  return db.select().from(instances).where(eq(instances.serverId, serverId)).all();
}

/** What the API shows of an instance: never its secrets. */
export function publicInstance(row: Instance, serverName?: string) {
  return {
    slug: row.slug, service: row.service, server: serverName ?? String(row.serverId), desired: row.desired, observed: row.observed,
    generation: row.generation, image: row.image, ports: row.config.ports, publicPorts: row.config.publicPorts ?? null, env: row.config.env,
    links: linkView(row), linkedEnv: row.config.linkedEnv ?? {},
    lastError: row.lastError, attempts: row.attempts, createdAt: row.createdAt, updatedAt: row.updatedAt,
  };
}

/** A database restored on another machine (`cattery restore`) knows nothing of this machine's engine yet: every
 * instance is pending until the reconciler has seen its new container, so that nothing reads "healthy" from the
 * old machine's last pass. */
export function forgetObservations(db: Db): number {
  return db.update(instances).set({ observed: 'pending', containerId: null, updatedAt: new Date().toISOString() }).run().changes;
}

/** The instance now lives on another server (a move, or a restore elsewhere: orchestrator/relocate.ts): its row says
 * so in one transaction with the intent, and what was observed was the old server's unit (a wait must not take it for
 * the new one's). The reconciler makes the unit on the new server; the old server's sweep removes the old one. */
export function relocateRow(db: Db, slug: string, serverId: number, desired: Desired, actor: string): Instance {
  return db.transaction((t) => {
    const tx = t as unknown as Db;
    const cur = getInstance(tx, slug);
    const server = tx.select().from(servers).where(eq(servers.id, serverId)).get();
    if (!server) throw fail('CATTERY_ERR_NOT_FOUND', `No server ${serverId}`);
    const row = tx.update(instances).set({
      serverId, desired, observed: 'creating', containerId: null, lastError: null, attempts: 0, nextAttemptAt: null, updatedAt: new Date().toISOString(),
    }).where(eq(instances.id, cur.id)).returning().get();
    intend(tx, slug, 'relocate', actor, { from: cur.serverId, to: server.name, desired });
    return row;
  });
}
