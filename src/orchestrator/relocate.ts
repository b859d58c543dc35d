// Moving an instance to another server on purpose (maintenance, draining a server), and bringing a stateful instance
// whose server is down back on another one from its latest snapshot (issue 15). Data moves only through backup and
// restore, never by rescheduling onto an empty volume (the data loss CapRover and Dokploy users meet). The old volume
// stays untouched until the instance answers healthy on its new server: a move that fails anywhere goes back to the
// old server with its data as it was. Every step and the downtime (stop → healthy again) go to the operations journal.
//
// Only the server/engine abstraction is used here: the instance's row says which server it is on, the reconciler
// converges that server's engine to it (plain containers today, a pinned Swarm service once the reconciler runs
// them), and the old server's sweep removes what is no longer its own.
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import type { Instance, Server } from '../db/schema.js';
import { fail, isCatteryError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  accessOf, assertRepositoryReachable, backupInstance, getRepository, listRepositories, restoreVolumesAt, type BackupDeps,
} from '../backups/backups.js';
import {
  containerName, ensureContainerRemoved, ensureImageOn, ensureVolumeRemoved, isLocalEndpoint, ping, volumeName, type Engine,
} from './docker/index.js';
import { ensureInstanceVolumes } from './instance-pass.js';
import { getInstance, getServer, relocateRow, relocating, serverOf, updateInstance, type InstanceDeps } from './instances.js';
import { journal } from './journal.js';
import { demandOf, fleet, refusal, place, type ServerLoad, type Placed } from './placement.js';
import type { Reconciler } from './reconcile.js';
import { releaseSizedVolume } from './sized-volumes.js';
import { listServers } from './servers.js';

export interface RelocateDeps {
  db: Db; catalog: Catalog; hosterId: string; log: Logger;
  instanceDeps: InstanceDeps;
  backups: BackupDeps;
  reconciler: Pick<Reconciler, 'trigger' | 'waitConverged' | 'engineFor'>;
  /** The repository moves go through: this one, else the first registered. */
  repository?: string | undefined;
  /** The local engine's volume images (sized-volumes.ts), to drop an old sized volume's image with it. */
  volumesDir?: string | undefined;
}

export interface MoveReport {
  slug: string; from: string; to: string; stateful: boolean;
  /** Seconds the instance was not answering: from the stop asked to healthy on the target. */
  downtimeSeconds: number;
  snapshot: string | null;
  steps: { step: string; ms: number }[];
}

const isStateful = (catalog: Catalog, inst: Pick<Instance, 'service'>) => (catalog.services.get(inst.service)?.manifest.volumes.length ?? 0) > 0;

/** The repository a move backs up to; none registered: a stateful instance cannot move (its data would not follow). */
function repositoryFor(d: RelocateDeps): string {
  if (d.repository) return getRepository(d.db, d.repository).name;
  const first = listRepositories(d.db)[0];
  if (!first) throw fail('CATTERY_ERR_CONFLICT', 'no backup repository: a stateful instance moves only through a backup (add one with `cattery backup repo add`)');
  return first.name;
}

/** A server whose engine answers within its timeout (10 s at most), or why not. */
async function answers(engine: Engine, withinMs = Math.min(engine.timeoutMs, 10_000)): Promise<boolean> {
  return Promise.race([ping(engine).then(() => true, () => false),
    new Promise<boolean>((r) => setTimeout(() => r(false), withinMs).unref())]);
}

/** Down, for a restore elsewhere: no answer of any kind for 30 s, asked again every second. A server that is only
 * slow (a backup running, a congested link) still runs its instance, which still writes: a second copy from an older
 * snapshot beside it would fork the resident's data (found by the outside review of issue 15). Any answer (a status,
 * a refused TLS handshake) is a server that is there; a connection reset (a socket of the dead engine's last moment)
 * or refused, a missing route, a silence are asked again until the 30 s are over. */
async function surelyDown(engine: Engine, windowMs = 30_000): Promise<boolean> {
  const until = Date.now() + windowMs;
  while (Date.now() < until) {
    const left = Math.max(1, until - Date.now());
    const outcome = await Promise.race([
      engine.docker.ping().then(() => 'there' as const, (err: { statusCode?: number; code?: string }) =>
        (err.statusCode !== undefined || /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|UNABLE_TO|SELF_SIGNED)/.test(err.code ?? '') ? 'there' as const : 'silent' as const)),
      new Promise<'silent'>((r) => setTimeout(() => r('silent'), left).unref()),
    ]);
    if (outcome === 'there') return false;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  return true;
}

/** Placement's own capacity check, on the fleet as it is now (the instance itself counted on its old server only). */
async function checkRoom(d: RelocateDeps, inst: Instance, to: Server): Promise<void> {
  const loads = await fleet({ db: d.db, catalog: d.catalog, engineFor: d.reconciler.engineFor, servers: () => listServers(d.db) });
  const target = loads.find((s) => s.id === to.id);
  if (!target) throw fail('CATTERY_ERR_ENGINE_UNAVAILABLE', `server "${to.name}"`);
  if (target.unavailable !== undefined) throw fail('CATTERY_ERR_CONFLICT', `server "${to.name}" takes nothing new: ${target.unavailable}`);
  const why = refusal(target, demandOf(d, inst.service));
  if (why === 'isolation') throw fail('CATTERY_ERR_CONFLICT', `server "${to.name}" fails the isolation check: ${target.isolation}`);
  if (why) throw fail('CATTERY_ERR_CAPACITY', `server "${to.name}" lacks ${why === 'memory' ? 'memory' : 'CPU'} for "${inst.slug}"`);
}

/** The images the target needs: the service's, and restic's for the restore; carried from the engine that built them
 * (the local one) when the target lacks them. No registry is assumed (docs/swarm.md). */
async function carryImages(d: RelocateDeps, inst: Instance, engines: Engine[]): Promise<void> {
  const local = d.reconciler.engineFor(d.backups.localServer());
  for (const e of engines) {
    if (e === local) continue;
    await ensureImageOn(local, e, inst.image);
    if (isStateful(d.catalog, inst)) await ensureImageOn(local, e, d.backups.image);
  }
}

const sizedDirFor = (d: RelocateDeps, s: Server) => (d.volumesDir && isLocalEndpoint(s.dockerEndpoint) ? d.volumesDir : undefined);

/** The instance's volumes on a server it has left: its container first (stopped, no longer the server's: the sweep
 * would remove it too), then each volume, and a local sized volume's image. */
async function dropOldUnit(d: RelocateDeps, inst: Instance, from: Server): Promise<void> {
  const engine = d.reconciler.engineFor(from);
  await ensureContainerRemoved(engine, containerName(d.hosterId, inst.slug), `${inst.slug} on ${from.name}`);
  for (const v of d.catalog.services.get(inst.service)?.manifest.volumes ?? []) {
    const name = volumeName(d.hosterId, inst.slug, v.name);
    await ensureVolumeRemoved(engine, name);
    const dir = sizedDirFor(d, from);
    if (dir) await releaseSizedVolume(dir, name);
  }
}

/** A volume of this instance's name already on the target is an older copy of it (a server that came back after a
 * restore elsewhere keeps its volume as an orphan): it may hold what was written after the last snapshot, the only
 * copy of it. A restore would empty it: refused, for an administrator to archive or drop it first. */
async function refuseOldCopy(d: RelocateDeps, inst: Instance, to: Server, engine: Engine): Promise<void> {
  for (const v of d.catalog.services.get(inst.service)?.manifest.volumes ?? []) {
    const name = volumeName(d.hosterId, inst.slug, v.name);
    const there = await engine.docker.getVolume(name).inspect().then(() => true, (err: { statusCode?: number }) => {
      if (err.statusCode === 404) return false;
      throw fail('CATTERY_ERR_ENGINE', `inspect volume ${name} on ${to.name}`, err);
    });
    if (there) throw fail('CATTERY_ERR_CONFLICT', `server ${to.name} holds an older volume of "${inst.slug}" (${name}): archive or drop it on /admin first, it may hold what no backup has`);
  }
}

async function converged(d: RelocateDeps, slug: string): Promise<Instance | null> {
  const inst = getInstance(d.db, slug);
  await d.reconciler.trigger('relocate', slug);
  return d.reconciler.waitConverged(slug, inst.generation);
}

/** Instances being moved or restored by this process: a second request for one is refused, not interleaved. */
const underWay = relocating;
async function exclusively<T>(slug: string, fn: () => Promise<T>): Promise<T> {
  if (underWay.has(slug)) throw fail('CATTERY_ERR_CONFLICT', `"${slug}" is already being moved or restored`);
  underWay.add(slug);
  try { return await fn(); } finally { underWay.delete(slug); }
}

/** Moves `slug` to `targetName`: refused without a backup repository (stateful) or room on the target; then a warm
 * backup while it runs (so the next is small), stop, a final backup of the stopped volumes (nothing written after it
 * exists), restore on the target's engine, the row switched to the target, start, healthy. On a failure after the
 * stop, the row goes back to the old server, whose volumes were never touched, and the instance starts there again. */
export function moveInstance(d: RelocateDeps, slug: string, targetName: string, actor: string): Promise<MoveReport> {
  return exclusively(slug, () => move(d, slug, targetName, actor));
}

const SWARM_PLACES_STATELESS = (slug: string, server: string) => `"${slug}" keeps no data: Swarm places it on whichever node it `
  + `chooses. To take it off ${server}, set that server's node to drain (docker node update --availability drain NODE): `
  + 'Swarm moves it, and cattery places nothing new there';

async function move(d: RelocateDeps, slug: string, targetName: string, actor: string): Promise<MoveReport> {
  const inst = getInstance(d.db, slug);
  if (inst.desired === 'deleted') throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" is being deleted`);
  const from = serverOf(d.db, inst);
  const to = getServer(d.db, targetName);
  if (from.id === to.id) throw fail('CATTERY_ERR_VALIDATION', `"${slug}" is already on ${to.name}`);
  // A link is a network on one server's bridge (orchestrator/links.ts): linked instances move together or not at all.
  if (inst.config.links?.length) throw fail('CATTERY_ERR_CONFLICT', `"${slug}" is linked to another instance: links do not cross servers yet`);
  const stateful = isStateful(d.catalog, inst);
  // Swarm runs a stateless service on whichever node it chooses (it has no server constraint): switching its row
  // would change nothing of where it runs (found by the outside review of issue 15).
  if (!stateful && from.swarmRole && to.swarmRole) throw fail('CATTERY_ERR_CONFLICT', SWARM_PLACES_STATELESS(slug, from.name));
  const repo = stateful ? repositoryFor(d) : null;
  const fromEngine = d.reconciler.engineFor(from);
  const toEngine = d.reconciler.engineFor(to);
  if (!(await answers(fromEngine))) throw fail('CATTERY_ERR_CONFLICT', `server "${from.name}" does not answer: restore "${slug}" elsewhere from its backup instead`);
  await checkRoom(d, inst, to);
  if (stateful) await refuseOldCopy(d, inst, to, toEngine);
  const steps: MoveReport['steps'] = [];
  const timed = async <T>(step: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    const r = await fn();
    steps.push({ step, ms: Date.now() - t0 });
    return r;
  };
  const wanted = inst.desired;
  let step = 'images';
  let snapshot: string | null = null;
  // What happens before the stop costs no downtime and changes nothing: a failure there is a plain refusal.
  await timed('images', () => carryImages(d, inst, [fromEngine, toEngine]));
  // A repository one of the two engines cannot open (a folder on cattery's machine, absent there) is said now, with
  // nothing stopped.
  if (stateful) for (const e of [fromEngine, toEngine]) await assertRepositoryReachable(d.backups, e, repo!);
  if (stateful) {
    step = 'backup';
    const warm = await timed('backup', () => backupInstance(d.backups, repo!, slug, actor));
    if (warm.status !== 'done') throw fail('CATTERY_ERR_BACKUP', `the backup before the move failed: ${warm.error ?? 'unknown'}`);
    step = 'target volumes';
    await timed('target volumes', () => ensureInstanceVolumes({ catalog: d.catalog, hosterId: d.hosterId, sizedDir: sizedDirFor(d, to) }, toEngine, inst));
  }
  const stopAt = Date.now();
  let switched = false;
  try {
    if (wanted === 'running') {
      step = 'stop';
      updateInstance(d.instanceDeps, slug, { desired: 'stopped' }, actor, 'move-stop');
      await timed('stop', () => converged(d, slug));
    }
    if (stateful) {
      step = 'final backup';
      const last = await timed('final backup', () => backupInstance(d.backups, repo!, slug, actor));
      if (last.status !== 'done' || !last.snapshotId) throw fail('CATTERY_ERR_BACKUP', last.error ?? 'no snapshot');
      snapshot = last.snapshotId;
      step = 'restore';
      await timed('restore', () => restoreVolumesAt(d.backups, toEngine, accessOf(d.backups.dataDir, getRepository(d.db, repo!)),
        { slug, snapshot: snapshot! }, inst));
    }
    step = 'start';
    relocateRow(d.db, slug, to.id, wanted, actor);
    switched = true;
    await timed('start', () => converged(d, slug));
  } catch (err) {
    const downtime = (Date.now() - stopAt) / 1000;
    const error = `${step}: ${(err as Error).message}`.slice(0, 600);
    d.log.warn({ err, slug, from: from.name, to: to.name, step }, 'move failed: back to the old server');
    let rolledBack = false;
    try {
      relocateRow(d.db, slug, from.id, wanted, actor);
      await converged(d, slug);
      rolledBack = true;
    } catch (again) {
      d.log.error({ err: again, slug }, 'the instance did not come back on its old server after a failed move');
    }
    // What the move made on the target (its volumes, a container if it got that far) goes: the old server's are the data.
    if (stateful || switched) await dropOldUnit(d, inst, to).catch((e: unknown) => d.log.warn({ err: e, slug, server: to.name }, 'what a failed move made on the target was not removed'));
    journal(d.db, { slug, kind: 'move', actor, status: 'failed', error, detail: { from: from.name, to: to.name, step, rolledBack, downtimeSeconds: downtime, steps } });
    throw fail('CATTERY_ERR_CONFLICT', `moving "${slug}" to ${to.name} failed at ${error}; ${rolledBack ? `it runs on ${from.name} again, its data untouched` : `its data is untouched on ${from.name}, where it is being brought back`}`, err);
  }
  const downtimeSeconds = Math.round((Date.now() - stopAt) / 100) / 10;
  // Healthy on the target: only now does the old copy go.
  await timed('drop old volume', () => dropOldUnit(d, inst, from)).catch((err: unknown) =>
    d.log.warn({ err, slug, server: from.name }, 'the old volume of a moved instance was not dropped: drop it on /admin'));
  const report: MoveReport = { slug, from: from.name, to: to.name, stateful, downtimeSeconds, snapshot, steps };
  journal(d.db, { slug, kind: 'move', actor, status: 'done', detail: { ...report } });
  d.log.info({ ...report }, 'instance moved');
  return report;
}

// ── A server that is down, and draining one ────────────────────────────────────────────────────────────────────

export interface DownInstance { slug: string; service: string; server: string; stateful: boolean }

/** Instances whose server's engine does not answer: stateful ones stay down (pinned, never rescheduled onto an empty
 * volume) until an administrator restores their latest backup elsewhere or brings the server back. */
export async function downInstances(d: Pick<RelocateDeps, 'db' | 'catalog' | 'reconciler'>): Promise<DownInstance[]> {
  const out: DownInstance[] = [];
  const servers = listServers(d.db);
  const up = await Promise.all(servers.map((s) => answers(d.reconciler.engineFor(s))));
  for (const [i, s] of servers.entries()) {
    if (up[i]) continue;
    for (const inst of d.db.$client.prepare('SELECT slug, service FROM instances WHERE server_id = ? AND desired != ?').all(s.id, 'deleted') as { slug: string; service: string }[]) {
      out.push({ slug: inst.slug, service: inst.service, server: s.name, stateful: isStateful(d.catalog, inst) });
    }
  }
  return out;
}

/** A stateful instance whose server is down, back on `targetName` from its latest snapshot: made on the target, its
 * volumes restored, then started. The old volume stays on the dead server (it cannot be reached); when that server
 * comes back, its sweep removes the old container and keeps the volume as an orphan to archive or drop. */
export function restoreElsewhere(d: RelocateDeps, slug: string, targetName: string, actor: string): Promise<MoveReport> {
  return exclusively(slug, () => restoreOn(d, slug, targetName, actor));
}

async function restoreOn(d: RelocateDeps, slug: string, targetName: string, actor: string): Promise<MoveReport> {
  const inst = getInstance(d.db, slug);
  if (inst.desired === 'deleted') throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" is being deleted`);
  const from = serverOf(d.db, inst);
  const to = getServer(d.db, targetName);
  if (from.id === to.id) throw fail('CATTERY_ERR_VALIDATION', `"${slug}" is already on ${to.name}`);
  if (!(await surelyDown(d.reconciler.engineFor(from)))) throw fail('CATTERY_ERR_CONFLICT', `server "${from.name}" answers: move "${slug}" instead (its data is newer than any backup)`);
  const stateful = isStateful(d.catalog, inst);
  const repo = stateful ? repositoryFor(d) : null;
  await checkRoom(d, inst, to);
  const toEngine = d.reconciler.engineFor(to);
  if (stateful) await refuseOldCopy(d, inst, to, toEngine);
  const steps: MoveReport['steps'] = [];
  const t0 = Date.now();
  let snapshot: string | null = null;
  let step = 'images';
  try {
    await carryImages(d, inst, [toEngine]);
    if (stateful) {
      await assertRepositoryReachable(d.backups, toEngine, repo!);
      step = 'restore';
      await ensureInstanceVolumes({ catalog: d.catalog, hosterId: d.hosterId, sizedDir: sizedDirFor(d, to) }, toEngine, inst);
      const snap = await restoreVolumesAt(d.backups, toEngine, accessOf(d.backups.dataDir, getRepository(d.db, repo!)), { slug, notBefore: inst.createdAt }, inst);
      snapshot = snap.id;
      steps.push({ step: 'restore', ms: Date.now() - t0 });
    }
    step = 'start';
    relocateRow(d.db, slug, to.id, inst.desired, actor);
    const s = Date.now();
    await converged(d, slug);
    steps.push({ step: 'start', ms: Date.now() - s });
  } catch (err) {
    // Back on the dead server's row: nothing was lost there, and a second try (elsewhere, or the server back) starts clean.
    relocateRow(d.db, slug, from.id, inst.desired, actor);
    await dropOldUnit(d, inst, to).catch(() => undefined);
    const error = `${step}: ${(err as Error).message}`.slice(0, 600);
    journal(d.db, { slug, kind: 'restore-elsewhere', actor, status: 'failed', error, detail: { from: from.name, to: to.name, step } });
    if (isCatteryError(err) && err.statusCode < 500) throw err;
    throw fail('CATTERY_ERR_CONFLICT', `restoring "${slug}" on ${to.name} failed at ${error}`, err);
  }
  const report: MoveReport = { slug, from: from.name, to: to.name, stateful, downtimeSeconds: Math.round((Date.now() - t0) / 100) / 10, snapshot, steps };
  journal(d.db, { slug, kind: 'restore-elsewhere', actor, status: 'done', detail: { ...report } });
  return report;
}

export interface DrainPlan {
  server: string;
  moves: { slug: string; to: string; stateful: boolean }[];
  /** What cannot move, and why: no room, no backup repository, not healthy, the server not answering. */
  cannot: { slug: string; why: string }[];
}

/** What a drain plan weighs of one instance on the drained server. */
export interface DrainCandidate extends Placed { healthy: boolean }

/** Pure: where each of `instances` would go among `others` (placement, the largest first as a consolidation plan
 * does: what is hardest to fit gets the room first; each move counted against the room it takes), and what cannot
 * move and why. `hasRepository`: a stateful instance moves only through a backup. */
export function planDrain(server: string, others: readonly ServerLoad[], instances: readonly DrainCandidate[], hasRepository: boolean): DrainPlan {
  const room: ServerLoad[] = others.map((s) => ({ ...s }));
  const plan: DrainPlan = { server, moves: [], cannot: [] };
  for (const p of [...instances].sort((a, b) => b.memoryMb - a.memoryMb || a.slug.localeCompare(b.slug))) {
    if (p.stateful && !hasRepository) { plan.cannot.push({ slug: p.slug, why: 'no backup repository: a stateful instance moves only through a backup' }); continue; }
    if (!p.healthy) { plan.cannot.push({ slug: p.slug, why: 'not healthy: a move would not know whether it came up' }); continue; }
    let to: ServerLoad;
    try { to = place(room, p).server; } catch (err) { plan.cannot.push({ slug: p.slug, why: `no room: ${(err as Error).message}` }); continue; }
    const target = room.find((s) => s.id === to.id)!;
    target.busyCores += p.busyCores;
    target.memoryMbReserved += p.memoryMb;
    plan.moves.push({ slug: p.slug, to: target.name, stateful: p.stateful });
  }
  return plan;
}

/** Where each instance of `serverName` would go (placement over the other servers that answer), and what cannot
 * move. Changes nothing. */
export async function drainPlan(d: RelocateDeps, serverName: string): Promise<DrainPlan> {
  const server = getServer(d.db, serverName);
  const loads = await fleet({ db: d.db, catalog: d.catalog, engineFor: d.reconciler.engineFor, servers: () => listServers(d.db) });
  const mine = loads.find((s) => s.id === server.id);
  const rows = d.db.$client.prepare('SELECT slug FROM instances WHERE server_id = ? AND desired != ? ORDER BY slug').all(server.id, 'deleted') as { slug: string }[];
  if (!mine) {
    return { server: server.name, moves: [], cannot: rows.map((r) => ({ slug: r.slug, why: `server ${server.name} does not answer: restore it elsewhere from its backup` })) };
  }
  const placed = new Map<string, Placed>(mine.instances.map((p) => [p.slug, p]));
  const candidates = rows.map((r): DrainCandidate => {
    const inst = getInstance(d.db, r.slug);
    const p = placed.get(r.slug) ?? { slug: r.slug, busyCores: 0, memoryMb: 0, stateful: isStateful(d.catalog, inst) };
    // A stopped instance moves stopped; one meant to run must be seen running before, or its move could not be judged.
    return { ...p, healthy: inst.desired !== 'running' || inst.observed === 'healthy' || inst.observed === 'running' };
  });
  const hasRepo = d.repository ? true : listRepositories(d.db).length > 0;
  if (!server.swarmRole) return planDrain(server.name, loads.filter((s) => s.id !== server.id), candidates, hasRepo);
  // On Swarm a stateless instance is Swarm's to place: it is said, not moved (the node's availability moves it).
  const swarmPlaced = candidates.filter((c) => !c.stateful);
  const plan = planDrain(server.name, loads.filter((s) => s.id !== server.id), candidates.filter((c) => c.stateful), hasRepo);
  return { ...plan, cannot: [...plan.cannot, ...swarmPlaced.map((c) => ({ slug: c.slug, why: SWARM_PLACES_STATELESS(c.slug, server.name) }))] };
}

export interface DrainResult extends DrainPlan { moved: MoveReport[] }

/** The plan carried out, one move at a time (each its own backup and downtime); a move that fails is rolled back by
 * moveInstance and joins what could not move, and the drain goes on with the others. */
export async function drainServer(d: RelocateDeps, serverName: string, actor: string): Promise<DrainResult> {
  const plan = await drainPlan(d, serverName);
  const result: DrainResult = { ...plan, moves: [], moved: [] };
  for (const m of plan.moves) {
    try {
      result.moved.push(await moveInstance(d, m.slug, m.to, actor));
      result.moves.push(m);
    } catch (err) {
      result.cannot.push({ slug: m.slug, why: (err as Error).message });
    }
  }
  return result;
}
