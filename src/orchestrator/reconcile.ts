// The reconciler: level-triggered. Each pass reads what the engine has (by labels), then what the database wants,
// and acts on the difference (instance-pass.ts, deciding with converge.ts). It runs at start, on a timer, on Docker
// events and whenever desired state changes (scheduler.ts). A restart is an intent like the others: a pending
// operation the pass carries out and closes.
import pLimit from 'p-limit';
import type { Instance, Server } from '../db/schema.js';
import type { Logger } from '../log.js';
import { waitConverged } from './converged.js';
import { backoffSeconds, isDue, unitsBySlug } from './converge.js';
import {
  LABEL_INSTANCE, containerRuntime, isLocalEndpoint, listManaged, listServiceUnits, swarmRuntime, unitOf, watchContainerEvents,
  type Engine, type Managed, type Unit,
} from './docker/index.js';
import { createEngineRegistry, type EngineRegistry } from './engines.js';
import type { Firewall } from './firewall.js';
import {
  SWARM_TASK_LABEL, convergeInstance, destroyInstance, publish, sweepOrphans, type PassDeps, type ServerContext, type SwarmContext,
} from './instance-pass.js';
import { instancesOn, listInstances, recordFailure, requestRestart } from './instances.js';
import { lastOperationIds } from './journal.js';
import { convergeLinks } from './link-pass.js';
import { createScheduler, type Scheduler } from './scheduler.js';
import { listServers } from './servers.js';
import { sweepStaleLinks } from './sized-volumes.js';

/** What a pass needs (instance-pass.ts), less what each pass works out, plus the scheduling and the engines. */
export interface ReconcilerDeps extends Omit<PassDeps, 'sizedDir' | 'firewall'> {
  concurrency: number;
  dockerTimeoutSeconds: number;
  /** Shared with the accounts and metering (runtime.ts); one of its own otherwise. */
  engines?: EngineRegistry;
  /** Tests pass a shorter one. */
  maxBackoffSeconds?: number;
  /** Cattery's own isolation rules for the local engine's instance bridges (firewall.ts). */
  firewall?: Firewall;
  /** Where the local engine's volume images live (sized-volumes.ts); without it volumes have no size limit. */
  volumesDir?: string;
  /** Client certificates of the engines reached over TLS (`<dataDir>/engine-certs/<host>/`). */
  certsDir?: string;
  /** Run after each pass over a server, with what it left: the front door follows the instances (ingress/). Its
   * failure is logged and retried by the next pass; it never holds up the instances'. */
  afterServerPass?: (server: Server, engine: Engine, imageFrom?: Engine) => Promise<void>;
  /** On Swarm, the engine cattery builds its images on, carried from there to the nodes (the manager's unless said). */
  imageSource?: Engine;
}

export interface Reconciler {
  /** Ask for a pass; resolves when a pass that started after this call has finished. */
  trigger(reason: string, slug?: string): Promise<void>;
  /** Record a restart intent and pass; rejects with what kept the pass from doing it (the engine away, say). */
  /** Records the intent at once (throws 404/409 then), and resolves with the instance once a pass has acted on it. */
  restart(slug: string, actor: string): Promise<Instance>;
  /** After a change: resolves once the instance shows it reached (healthy, stopped, gone), or throws a clear error
   * when it failed or did not get there within the health timeout and one engine timeout (converged.ts). */
  waitConverged(slug: string, generation: number): Promise<Instance | null>;
  engineFor(server: Server): Engine;
  start(intervalSeconds: number): void;
  stop(): Promise<void>;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The folder of volume images when a server's engine is this host's (a loop device is a host object); a remote
 * engine gets plain volumes, said once in the log. */
function volumeSizing(volumesDir: string | undefined, log: Logger): (server: Server) => string | undefined {
  let warned = false;
  return (server) => {
    if (volumesDir && isLocalEndpoint(server.dockerEndpoint)) return volumesDir;
    if (!warned) log.warn({ server: server.name }, 'volume sizes are not enforced on a remote engine');
    warned = true;
    return undefined;
  };
}

/** Docker's own events bring the next pass for the instance they name. */
function watch(engine: Engine, scheduler: Scheduler): () => void {
  return watchContainerEvents(engine, (ev) => { scheduler.trigger(`docker ${ev.action}`, ev.slug).catch(() => undefined); },
    { log: engine.log, stopped: scheduler.isStopping });
}

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const log = deps.log;
  const engines = deps.engines ?? createEngineRegistry({ hosterId: deps.hosterId, timeoutSeconds: deps.dockerTimeoutSeconds, log, certsDir: deps.certsDir });
  // Instances converged at once, per engine: each server's engine takes `concurrency` at a time, so a second server
  // doubles what the association can create at once rather than sharing one queue (bench/swarm's spread_ratio).
  const limits = new Map<number, ReturnType<typeof pLimit>>();
  const limitOf = (serverId: number) => {
    let l = limits.get(serverId);
    if (!l) { l = pLimit(deps.concurrency); limits.set(serverId, l); }
    return l;
  };
  const scheduler = createScheduler(runPass);
  // What kept the last pass from doing its work, by instance and by server: a restart asked with ?wait says it.
  const failed = new Map<string, unknown>();
  const serverFailed = new Map<number, unknown>();
  const unwatch: (() => void)[] = [];
  const sizedOn = volumeSizing(deps.volumesDir, log);

  function onFailure(inst: Instance, err: unknown) {
    const attempts = inst.attempts + 1;
    const delay = backoffSeconds(attempts, deps.maxBackoffSeconds);
    log.warn({ slug: inst.slug, err, attempts, retryInSeconds: delay }, 'reconcile failed');
    recordFailure(deps.db, inst, errorText(err), attempts, delay);
    publish(deps, inst, inst.observed, errorText(err));
    failed.set(inst.slug, err);
    scheduler.retryIn(delay);
  }

  /** A server that is a swarm node acts through the manager's engine; one that is not, through its own, as before. */
  function swarmOf(server: Server, all: Server[]): SwarmContext | undefined {
    if (!server.swarmRole) return undefined;
    const mgr = all.find((s) => s.swarmRole === 'manager');
    if (!mgr) throw new Error(`server ${server.name} is a swarm ${server.swarmRole} but no server is the swarm's manager`);
    const manager = engines.engineFor(mgr);
    return {
      manager, imageSource: deps.imageSource ?? manager,
      nodeEngines: () => all.filter((s) => s.swarmRole).map((s) => ({ name: s.name, engine: engines.engineFor(s) })),
    };
  }

  async function reconcileServer(server: Server, all: Server[]) {
    const engine = engines.engineFor(server);
    const swarm = swarmOf(server, all);
    // Engine first, database second: a container is only ever created after its row is committed, so every
    // container listed here already has its row (or had one that a finished delete removed).
    // A swarm node's own engine is only needed to sweep it (its instances are the manager's services): one that
    // does not answer leaves its instances observed through the manager (`down` when pinned to it).
    const managed = swarm
      ? await listManaged(engine).catch((err) => { log.warn({ err, server: server.name }, 'swarm node engine not answering'); return undefined; })
      : await listManaged(engine);
    // On Swarm the units are the manager's services (one listing for every node's pass: they hold few).
    const units: Unit[] = swarm ? await listServiceUnits(swarm.manager) : managed!.containers.map(unitOf);
    // What the journal holds before the rows are read: a pass closes only the intents it saw (an intent written
    // while it acts on an older row waits for the next pass).
    const seen = lastOperationIds(deps.db);
    const rows = instancesOn(deps.db, server.id);
    const bySlug = unitsBySlug(units);
    const byId = new Map(rows.map((r) => [r.id, r]));
    const ctx: ServerContext = swarm
      ? { server, engine, runtime: swarmRuntime(swarm.manager, server.name, server.swarmNodeId ?? undefined), swarm }
      : { server, engine, runtime: containerRuntime(engine) };
    // Volume sizes (loop devices) are this host's; a swarm node's volumes are plain ones (docs/swarm.md).
    const passDeps: PassDeps = { ...deps, sizedDir: rows.length && !swarm ? sizedOn(server) : undefined };
    const now = Date.now();
    // On shutdown, instances not begun yet are left to the next start's pass (the state is level-triggered): a stop
    // waits for the Docker calls in flight only, not for a whole queue of creations on a loaded machine.
    const limit = limitOf(server.id);
    await Promise.all(rows.map((inst) => limit(async () => {
      if (scheduler.isStopping()) return;
      if (!isDue(inst.nextAttemptAt, scheduler.takeForced(inst.slug), now)) return;
      failed.delete(inst.slug);
      try {
        if (inst.desired === 'deleted') await destroyInstance(passDeps, ctx, inst, bySlug.get(inst.slug) ?? []);
        else await convergeInstance(passDeps, ctx, inst, bySlug.get(inst.slug) ?? [], seen.get(inst.slug) ?? 0, byId);
      } catch (err) {
        onFailure(inst, err);
      }
    })));
    if (scheduler.isStopping()) return;
    if (swarm) {
      await sweepSwarm(passDeps, server, swarm, engine, managed, units);
      // Links on Swarm (an overlay of two) are not built yet (docs/swarm.md). The swarm's one front door, on the
      // manager, comes after every node's pass (runPass): it serves the instances of all of them.
      return;
    }
    // Links once their instances' containers are there: a container made again in this pass joins again at once.
    if (!(await convergeLinks(passDeps, ctx, rows, managed!))) scheduler.retryIn(backoffSeconds(1, deps.maxBackoffSeconds));
    await sweepOrphans(passDeps, engine, managed!, new Set(rows.map((r) => r.slug)));
    if (deps.afterServerPass) {
      await deps.afterServerPass(server, engine).catch((err) => {
        log.warn({ err, server: server.name }, 'front door not converged');
        scheduler.retryIn(backoffSeconds(1, deps.maxBackoffSeconds));
      });
    }
  }

  /** A swarm node's leftovers: its plain containers and bridges no instance claims (Swarm's tasks and overlays are
   * Swarm's); on the manager's pass, the services no instance claims. An instance of another server may run on this
   * node (a stateless one goes where Swarm puts it): every instance counts as known. */
  async function sweepSwarm(passDeps: PassDeps, server: Server, swarm: SwarmContext, engine: Engine, managed: Managed | undefined, units: Unit[]) {
    const known = new Set(listInstances(deps.db).map((r) => r.slug));
    if (managed) await sweepSwarmNode(passDeps, engine, managed, known);
    if (server.swarmRole !== 'manager') return;
    const rt = swarmRuntime(swarm.manager, server.name, server.swarmNodeId ?? undefined);
    // Only instances' services: the node agents' and guards' (no instance label) are their deploys' to keep.
    for (const u of units.filter((x) => x.labels[LABEL_INSTANCE] !== undefined && !known.has(x.labels[LABEL_INSTANCE]))) {
      log.info({ service: u.names[0] }, 'removing orphan service');
      await rt.ensureRemoved(u.id, u.names[0] ?? u.id).catch((err) => log.warn({ err, service: u.names[0] }, 'orphan service not removed'));
    }
  }

  async function sweepSwarmNode(passDeps: PassDeps, engine: Engine, managed: Managed, known: Set<string>) {
    const plain: Managed = {
      ...managed,
      containers: managed.containers.filter((c) => !c.Labels?.[SWARM_TASK_LABEL]),
      networks: managed.networks.filter((n) => n.Driver !== 'overlay'),
    };
    await sweepOrphans(passDeps, engine, plain, known);
  }

  async function runPass(reason: string) {
    const started = Date.now();
    const all = listServers(deps.db);
    // Every server at once: each is its own engine's work (one slow or unreachable server holds up no other), each
    // with its own bound on the instances converged at once (`limitOf`).
    await Promise.all(all.map(async (server) => {
      serverFailed.delete(server.id);
      try {
        await reconcileServer(server, all);
      } catch (err) {
        serverFailed.set(server.id, err);
        log.error({ err, server: server.name }, 'reconcile pass failed for server');
      }
    }));
    const manager = all.find((s) => s.swarmRole === 'manager');
    if (manager && deps.afterServerPass && !scheduler.isStopping()) {
      // Once every node's services and overlays of this pass exist: the door joins the overlays of all of them.
      const swarm = swarmOf(manager, all)!;
      await deps.afterServerPass(manager, swarm.manager, swarm.imageSource).catch((err) => {
        log.warn({ err, server: manager.name }, 'front door not converged');
        scheduler.retryIn(backoffSeconds(1, deps.maxBackoffSeconds));
      });
    }
    log.debug({ reason, ms: Date.now() - started }, 'reconcile pass done');
  }

  return {
    trigger: scheduler.trigger,
    engineFor: (server) => engines.engineFor(server),
    waitConverged: (slug, generation) =>
      waitConverged(deps, slug, generation, (deps.healthTimeoutSeconds + deps.dockerTimeoutSeconds) * 1000),
    restart(slug, actor) {
      // Written at once, so that a refusal (no such instance, not meant to run) is the request's own answer.
      const inst = requestRestart(deps.db, slug, actor);
      return scheduler.trigger('restart', slug).then(() => {
        const err = serverFailed.get(inst.serverId) ?? failed.get(slug);
        if (err !== undefined) throw err;
        return inst;
      });
    },
    start(intervalSeconds) {
      // Before any pass attaches an image: a link left from before a reboot may name another volume's device now.
      if (deps.volumesDir) {
        const dropped = sweepStaleLinks(deps.volumesDir);
        if (dropped.length) log.info({ links: dropped }, 'stale volume device links dropped');
      }
      for (const server of listServers(deps.db)) unwatch.push(watch(engines.engineFor(server), scheduler));
      scheduler.every(intervalSeconds);
      scheduler.pass('start').catch(() => undefined);
    },
    async stop() {
      const done = scheduler.stop();
      for (const close of unwatch) close();
      await done;
    },
  };
}
