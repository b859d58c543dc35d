// One server's share of a reconcile pass, carried out: converge each instance (network, volumes, unit), finish
// deletions (archive, remove, forget), sweep what no row claims. Every decision is converge.ts's; this file acts on
// it through the Docker surface (docker/) and records the outcome (instances.ts, journal.ts), never inside a
// transaction that waits on the engine.
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import type { Instance, Observed, Server } from '../db/schema.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import {
  LABEL_GENERATION, LABEL_INSTANCE, LABEL_ROLE, ROLE_BACKUP, ROLE_INGRESS, archiveVolumes, containerName, ensureContainerRemoved, ensureNetwork,
  ensureNetworkRemoved, ensureVolume, ensureVolumeRemoved, imageExists, instanceLabels, isLocalEndpoint, listManaged,
  networkName, pauseHeld, ensureImageOn, isStateful, removeNetwork, unpauseContainer, ROLE_ARCHIVE, ROLE_LINK, serviceImageRef, volumeName, type Engine, type InstanceRuntime, type Managed, type Unit,
} from './docker/index.js';
import { adoption, isConverged, nextAction, observedOf, planUnits } from './converge.js';
import type { EventBus } from './events.js';
import { bridgeOf, type Firewall } from './firewall.js';
import { markDeleting, recordLinkedEnv, recordObservation, removeInstance } from './instances.js';
import { linkStatus, sameEnv, type LinkHostOf } from './links.js';
import { closeRestarts, journal, pendingRestart } from './journal.js';
import { ensureSizedVolume, reattachIfPresent, releaseSizedVolume } from './sized-volumes.js';

/** Docker's label on a Swarm task's container: Swarm's to manage, never a leftover of ours. */
export const SWARM_TASK_LABEL = 'com.docker.swarm.task.id';

export interface PassDeps {
  db: Db;
  catalog: Catalog;
  hosterId: string;
  log: Logger;
  events: EventBus;
  backupsDir: string;
  healthTimeoutSeconds: number;
  firewall?: Firewall | undefined;
  /** The folder of volume images when this server's engine is this host's; undefined: sizes are not enforced. */
  sizedDir: string | undefined;
  /** Asked of the accounts domain when an instance is gone: its accounts' rows go with it (runtime.ts wires it). */
  forgetAccounts: (tx: Db, instanceId: number) => void;
  /** The name a linked instance answers to (ingress/mail-host.ts, handed down by runtime.ts). */
  linkHostOf?: LinkHostOf | undefined;
}

/** A server that is a Swarm node (servers.swarm_role): its instances are services made through the manager. */
export interface SwarmContext {
  manager: Engine;
  /** Where cattery builds its images (no registry is assumed): carried from there to the nodes before a create. */
  imageSource: Engine;
  /** Every swarm node's engine, by server name: a stateless instance may be scheduled on any of them. */
  nodeEngines: () => { name: string; engine: Engine }[];
}

/** `engine` is the server's own; on Swarm `runtime` acts through the manager (swarm-runtime.ts). */
export interface ServerContext { server: Server; engine: Engine; runtime: InstanceRuntime; swarm?: SwarmContext | undefined }

export function publish(deps: Pick<PassDeps, 'events'>, inst: Instance, observed: Observed | 'deleted', error: string | null) {
  deps.events.publish({
    type: 'instance', slug: inst.slug, service: inst.service, desired: inst.desired, observed, generation: inst.generation, error,
    at: new Date().toISOString(),
  });
}

function act(deps: PassDeps, slug: string, kind: string, detail?: Record<string, unknown>) {
  journal(deps.db, { slug, kind, actor: 'reconciler', status: 'done', detail });
}

/** Network and volumes first: they outlive generations, so they carry generation 0. */
/** An instance's volumes, made as a pass makes them (sized where the engine is local): a restore fills them before
 * the instance's first container starts (backups/, `cattery restore`). */
export async function ensureInstanceVolumes(deps: Pick<PassDeps, 'catalog' | 'hosterId' | 'sizedDir'>, engine: Engine, inst: Instance): Promise<void> {
  const m = deps.catalog.services.get(inst.service)!.manifest;
  const labels = { ...instanceLabels(deps.hosterId, inst), [LABEL_GENERATION]: '0' };
  await Promise.all(m.volumes.map((v) => {
    const vname = volumeName(deps.hosterId, inst.slug, v.name);
    return deps.sizedDir ? ensureSizedVolume(engine, deps.sizedDir, vname, labels, v.sizeMb) : ensureVolume(engine, vname, labels);
  }));
}

/** On Swarm the overlay is the runtime's to make (with the service); a stateful instance's volumes are made on its
 * pinned node ahead, as a pass makes them on a plain engine (a restore fills them first). What the server ran before
 * it joined the swarm (its container and bridge, same names) goes: the service replaces it, the volumes stay. */
async function ensureSwarmSurroundings(deps: PassDeps, ctx: ServerContext, inst: Instance): Promise<void> {
  const m = deps.catalog.services.get(inst.service)!.manifest;
  const plain = await listManaged(ctx.engine);
  for (const c of plain.containers.filter((x) => x.Labels?.[LABEL_INSTANCE] === inst.slug && !x.Labels?.[SWARM_TASK_LABEL] && x.Labels?.[LABEL_ROLE] === undefined)) {
    await ensureContainerRemoved(ctx.engine, c.Id, c.Names[0] ?? c.Id);
    act(deps, inst.slug, 'container-replaced', { by: 'swarm service' });
  }
  for (const n of plain.networks.filter((x) => x.Labels?.[LABEL_INSTANCE] === inst.slug && x.Driver === 'bridge' && x.Labels?.[LABEL_ROLE] === undefined)) {
    await ensureNetworkRemoved(ctx.engine, n.Id, n.Name);
    await deps.firewall?.release(bridgeOf(n.Id));
  }
  if (isStateful(m)) await ensureInstanceVolumes(deps, ctx.engine, inst);
}

/** The instance's image on every engine that may run it: its pinned node, or every node for a stateless one (a node
 * that does not answer then gets it on a later pass; Swarm cannot start it there before). */
async function ensureSwarmImage(deps: PassDeps, ctx: ServerContext, sw: SwarmContext, inst: Instance): Promise<void> {
  const m = deps.catalog.services.get(inst.service)!.manifest;
  if (isStateful(m)) {
    if ((await ensureImageOn(sw.imageSource, ctx.engine, inst.image)) === 'copied') act(deps, inst.slug, 'image-copied', { to: ctx.server.name });
    return;
  }
  await Promise.all(sw.nodeEngines().map(async (n) => {
    try {
      if ((await ensureImageOn(sw.imageSource, n.engine, inst.image)) === 'copied') act(deps, inst.slug, 'image-copied', { to: n.name });
    } catch (err) {
      if ((err as { code?: string }).code === 'CATTERY_ERR_IMAGE_MISSING') throw err;
      deps.log.warn({ err, slug: inst.slug, server: n.name }, 'image not carried to a swarm node');
    }
  }));
}

async function ensureSurroundings(deps: PassDeps, ctx: ServerContext, inst: Instance): Promise<void> {
  // On Swarm they are made before a create only (ensureUnit): a pass over a made service needs nothing of its
  // node's engine, so that a node that is down is observed so, not a failure to reach it.
  if (ctx.swarm) return;
  const labels = { ...instanceLabels(deps.hosterId, inst), [LABEL_GENERATION]: '0' };
  const [networkId] = await Promise.all([
    ensureNetwork(ctx.engine, networkName(deps.hosterId, inst.slug), labels, inst.config.subnet),
    ensureInstanceVolumes(deps, ctx.engine, inst),
  ]);
  // Before any container joins it (firewall.ts).
  if (isLocalEndpoint(ctx.server.dockerEndpoint)) await deps.firewall?.guard(bridgeOf(networkId));
}

/** This generation's unit, created or adopted when missing; every other unit of the instance removed. */
async function ensureUnit(deps: PassDeps, ctx: ServerContext, inst: Instance, found: Unit[]): Promise<{ id: string; listedRunning: boolean }> {
  const name = containerName(deps.hosterId, inst.slug);
  const plan = planUnits(found, name, inst.generation);
  for (const { unit, kind } of plan.remove) {
    await ctx.runtime.ensureRemoved(unit.id, unit.names[0] ?? unit.id);
    act(deps, inst.slug, kind, { generation: unit.labels[LABEL_GENERATION] });
  }
  // What the listing already says spares an inspect: a unit just created is known not to run.
  if (plan.current) return { id: plan.current.id, listedRunning: plan.current.running };
  // On Swarm the node is made ready and the image carried to the node(s) first; a plain engine must have it built.
  if (ctx.swarm) {
    await ensureSwarmSurroundings(deps, ctx, inst);
    await ensureSwarmImage(deps, ctx, ctx.swarm, inst);
  } else if (!(await imageExists(ctx.engine, inst.image))) throw fail('CATTERY_ERR_IMAGE_MISSING', inst.image);
  if (inst.observed !== 'pending' && inst.observed !== 'creating' && inst.containerId) {
    act(deps, inst.slug, 'container-missing', { was: inst.containerId });
  }
  const manifest = deps.catalog.services.get(inst.service)!.manifest;
  const made = await ctx.runtime.createOrAdopt({ manifest, instance: inst, server: ctx.server },
    (labels) => adoption(labels, { hosterId: deps.hosterId, slug: inst.slug, generation: inst.generation }));
  act(deps, inst.slug, made.how === 'created' ? 'container-created' : 'container-adopted', { generation: inst.generation });
  return { id: made.id, listedRunning: false };
}

export async function convergeInstance(
  deps: PassDeps, ctx: ServerContext, row: Instance, found: Unit[], seenUpTo = 0, targets: ReadonlyMap<number, Instance> = new Map(),
): Promise<void> {
  if (!deps.catalog.services.get(row.service)) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', row.service);
  // What its links fill in today; when that changed, a new generation first (the container is replaced below).
  const links = linkStatus(deps, row, targets);
  const inst = sameEnv(links.linkedEnv, row.config.linkedEnv) ? row : recordLinkedEnv(deps.db, row, links.linkedEnv);
  if (!inst) return;
  await ensureSurroundings(deps, ctx, inst);
  const { id, listedRunning } = await ensureUnit(deps, ctx, inst, found);
  const name = containerName(deps.hosterId, inst.slug);
  const startedNow = inst.desired === 'running' && !listedRunning;
  if (startedNow) await ctx.runtime.ensureStarted(id, name);
  let state = await ctx.runtime.state(id, name);
  if (state.paused) {
    // A backup or a restore holds it paused and unpauses it (backups/): nothing to do, and nothing true to observe
    // (Docker's health check fails against a frozen container). The next pass after the copy looks again.
    if (await pauseHeld(ctx.engine, inst.slug)) return;
    // Paused with no run holding it: a crash between the pause and the unpause left the service frozen.
    await unpauseContainer(ctx.engine, name);
    act(deps, inst.slug, 'unpaused', { why: 'paused with no backup or restore holding it' });
    state = await ctx.runtime.state(id, name);
  }
  // A restart asked for is carried out once, then closed by its id: a unit this pass just started is fresh already.
  const restartId = pendingRestart(deps.db, inst.slug);
  const action = nextAction(inst.desired, state, restartId !== undefined && !startedNow);
  if (action !== 'none') {
    if (action === 'start') await ctx.runtime.ensureStarted(id, name);
    else if (action === 'stop') await ctx.runtime.ensureStopped(id, name);
    else await ctx.runtime.restart(id, name);
    if (action === 'restart') act(deps, inst.slug, 'restarted');
    state = await ctx.runtime.state(id, name);
  }
  if (restartId !== undefined && inst.desired === 'running') closeRestarts(deps.db, inst.slug, restartId);
  const seen = observedOf(state, inst.desired, deps.healthTimeoutSeconds, Date.now());
  // A running instance whose link is broken (the linked instance deleted) cannot do its work: unhealthy, and why.
  const broken = links.problems.length > 0 && (seen.observed === 'running' || seen.observed === 'healthy');
  const observed = broken ? 'unhealthy' : seen.observed;
  const problem = [seen.problem, ...links.problems].filter(Boolean).join('; ') || undefined;
  const converged = isConverged(inst.desired, observed);
  recordObservation(deps.db, inst, { observed, containerId: id, problem: problem ?? null, converged, seenUpTo });
  if (observed !== inst.observed || inst.lastError !== (problem ?? null)) publish(deps, inst, observed, problem ?? null);
}

/** An image to create the (never started) archive helper from: the instance's own, else the service's current
 * one. Any image that exists would do, since the helper only lends Docker a container to read the volumes from. */
async function archiveImage(deps: PassDeps, engine: Engine, inst: Instance): Promise<string | null> {
  const svc = deps.catalog.services.get(inst.service);
  for (const ref of [inst.image, ...(svc ? [serviceImageRef(svc)] : [])]) if (await imageExists(engine, ref)) return ref;
  return null;
}

/** The volumes' content to data/backups (unless purged), or a clear refusal when it cannot be archived. */
async function archiveOrRefuse(deps: PassDeps, ctx: ServerContext, inst: Instance, volumes: Set<string>): Promise<string | null> {
  const m = deps.catalog.services.get(inst.service)?.manifest;
  const helperImage = m && !inst.purge ? await archiveImage(deps, ctx.engine, inst) : null;
  if (m && helperImage) {
    // After a reboot the images are not attached yet: Docker needs the devices to mount the volumes.
    if (deps.sizedDir) for (const n of volumes) await reattachIfPresent(deps.sizedDir, n);
    return archiveVolumes(ctx.engine, { ...inst, image: helperImage }, m, deps.backupsDir);
  }
  if (!inst.purge) {
    throw fail('CATTERY_ERR_CONFLICT',
      `cannot archive ${inst.slug}'s volumes (service or image missing); delete again with purge=true to drop them`);
  }
  return null;
}

/** Swarm removes a removed service's task containers a moment later, and until then they hold its volumes (Docker
 * refuses to remove a volume in use): the archive and the volumes wait for them, on the node that held them. */
async function swarmTasksGone(engine: Engine, slug: string, waitMs = 60_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const left = (await listManaged(engine)).containers.filter((c) => c.Labels?.[LABEL_INSTANCE] === slug && c.Labels?.[SWARM_TASK_LABEL]);
    if (!left.length) return;
    if (Date.now() > deadline) throw fail('CATTERY_ERR_CONFLICT', `${slug}'s task containers are still on its node after the service was removed`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function destroyInstance(deps: PassDeps, ctx: ServerContext, inst: Instance, found: Unit[]): Promise<void> {
  if (inst.observed !== 'deleting') {
    markDeleting(deps.db, inst);
    publish(deps, inst, 'deleting', null);
  }
  for (const u of found) await ctx.runtime.ensureRemoved(u.id, u.names[0] ?? u.id);
  if (ctx.swarm) await swarmTasksGone(ctx.engine, inst.slug);
  const m = deps.catalog.services.get(inst.service)?.manifest;
  const volumes = new Set((m?.volumes ?? []).map((v) => volumeName(deps.hosterId, inst.slug, v.name)));
  const archive = await archiveOrRefuse(deps, ctx, inst, volumes);
  const managed = await listManaged(ctx.engine);
  for (const v of managed.volumes.filter((x) => x.Labels[LABEL_INSTANCE] === inst.slug)) {
    await ensureVolumeRemoved(ctx.engine, v.Name);
    volumes.add(v.Name);
  }
  // The data is in the archive (or purged on purpose): the images go with the volumes.
  if (deps.sizedDir) for (const n of volumes) await releaseSizedVolume(deps.sizedDir, n);
  for (const n of managed.networks.filter((x) => x.Labels?.[LABEL_INSTANCE] === inst.slug)) {
    await ensureNetworkRemoved(ctx.engine, n.Id, n.Name);
    await deps.firewall?.release(bridgeOf(n.Id));
  }
  // Its accounts lived in its volumes, archived above (or purged): their rows go with the instance.
  removeInstance(deps.db, inst, deps.forgetAccounts, { archive, purge: inst.purge });
  publish(deps, inst, 'deleted', null);
}

/** A day: an archive is a copy to this host's disk; a helper older than that was left by a crash. */
const ARCHIVE_HELPER_GRACE_S = 24 * 3600;

/** Objects with our hoster label and no instance row (a crash, or a row removed by hand): containers and
 * networks hold no data and go. Volumes stay, with a warning: data is never dropped without an archive, and a
 * database restored from an old backup must not wipe residents' files. */
export async function sweepOrphans(deps: PassDeps, engine: Engine, managed: Managed, known: Set<string>): Promise<void> {
  // The front door belongs to no instance: it is the ingress domain's to keep or remove; link networks are the
  // link pass's (link-pass.ts), which removes them with either of their instances.
  const mine = new Set([ROLE_INGRESS, ROLE_LINK]);
  const orphan = (labels: Record<string, string> | undefined) => !mine.has(labels?.[LABEL_ROLE] ?? '')
    && !known.has(labels?.[LABEL_INSTANCE] ?? '');
  // An archive helper of a volume with no row (housekeeping.ts) has no row by definition, nor has a backup's restic
  // container (one-shot.ts, removed by its run): each is let be while it may still be working, and swept once older
  // than any archive or backup takes (a crash left it).
  const reading = (c: Managed['containers'][number]) => (c.Labels?.[LABEL_ROLE] === ROLE_ARCHIVE || c.Labels?.[LABEL_ROLE] === ROLE_BACKUP)
    && Date.now() / 1000 - c.Created < ARCHIVE_HELPER_GRACE_S;
  for (const c of managed.containers.filter((x) => orphan(x.Labels) && !reading(x))) {
    deps.log.info({ container: c.Names[0] }, 'removing orphan container');
    await ensureContainerRemoved(engine, c.Id, c.Names[0] ?? c.Id);
  }
  for (const n of managed.networks.filter((x) => orphan(x.Labels))) {
    deps.log.info({ network: n.Name }, 'removing orphan network');
    await removeNetwork(engine, n.Id, n.Name)
      .then(() => deps.firewall?.release(bridgeOf(n.Id)))
      .catch((err) => deps.log.warn({ err, network: n.Name }, 'orphan network not removed'));
  }
  // restic's cache and the files a run on this engine reads (backups/backups.ts) are the backups' own, not orphans.
  const vols = managed.volumes.filter((x) => orphan(x.Labels) && x.Labels[LABEL_ROLE] !== ROLE_BACKUP).map((v) => v.Name);
  if (vols.length) deps.log.warn({ volumes: vols }, 'volumes with no instance are kept: archive and drop them with `cattery volumes` or on /admin');
}
