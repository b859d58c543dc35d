// The reconciler: level-triggered. Each pass reads what the engine has (by labels), then what the database wants,
// and acts on the difference. It runs at start, on a timer, on Docker events and whenever desired state changes;
// passes never overlap, and a request during a pass asks for one more pass after it.
import { and, eq } from 'drizzle-orm';
import pLimit from 'p-limit';
import type Docker from 'dockerode';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { accounts, instances, operations, servers, type Instance, type Observed, type Server } from '../db/schema.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import { archiveVolumes } from './archive.js';
import { buildContainerSpec, containerName, instanceLabels, networkName, volumeName } from './container-spec.js';
import {
  LABEL_GENERATION, LABEL_INSTANCE, LABEL_ROLE, call, isLocalEndpoint, connectEngine, ensureNetwork, ensureVolume, imageExists, listManaged, statusOf, type Engine, type Managed,
} from './engine.js';
import type { EventBus } from './events.js';
import { bridgeOf, type Firewall } from './firewall.js';
import { serviceImageRef } from './images.js';
import { waitConverged } from './converged.js';
import { ensureSizedVolume, reattachIfPresent, releaseSizedVolume, sweepStaleLinks } from './sized-volumes.js';

export interface ReconcilerDeps {
  db: Db;
  catalog: Catalog;
  hosterId: string;
  log: Logger;
  events: EventBus;
  backupsDir: string;
  concurrency: number;
  dockerTimeoutSeconds: number;
  healthTimeoutSeconds: number;
  /** Tests pass a shorter one. */
  maxBackoffSeconds?: number;
  /** Cattery's own isolation rules for the local engine's instance bridges (firewall.ts). */
  firewall?: Firewall;
  /** Where the local engine's volume images live (sized-volumes.ts); without it volumes have no size limit. */
  volumesDir?: string;
}

export interface Reconciler {
  /** Ask for a pass; resolves when a pass that started after this call has finished. */
  trigger(reason: string, slug?: string): Promise<void>;
  restart(slug: string, actor: string): Promise<void>;
  /** After a change: resolves once the instance shows it reached (healthy, stopped, gone), or throws a clear error
   * when it failed or did not get there within the health timeout and one engine timeout (converged.ts). */
  waitConverged(slug: string, generation: number): Promise<Instance | null>;
  engineFor(server: Server): Engine;
  start(intervalSeconds: number): void;
  stop(): Promise<void>;
}


function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const log = deps.log;
  const firewall = deps.firewall;
  const engines = new Map<number, Engine>();
  const limit = pLimit(deps.concurrency);
  const forced = new Set<string>();
  let running: Promise<void> | null = null;
  let again: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopping = false;
  const eventStreams: NodeJS.ReadableStream[] = [];

  function engineFor(server: Server): Engine {
    let e = engines.get(server.id);
    if (!e) {
      e = connectEngine(server.dockerEndpoint, { hosterId: deps.hosterId, timeoutSeconds: deps.dockerTimeoutSeconds, log: log.child({ server: server.name }) });
      engines.set(server.id, e);
    }
    return e;
  }

  function publish(inst: Instance, observed: Observed | 'deleted', error: string | null) {
    deps.events.publish({
      type: 'instance', slug: inst.slug, service: inst.service, desired: inst.desired, observed, generation: inst.generation, error, at: new Date().toISOString(),
    });
  }

  /** What the engine shows now. A problem (exited, unhealthy) is an observation, not a failed pass: it is kept as
   * the instance's last error, and Docker's own events bring the next change. */
  function record(inst: Instance, observed: Observed, containerId: string | null, problem: string | null = null) {
    const converged = (inst.desired === 'running' && (observed === 'running' || observed === 'healthy')) || (inst.desired === 'stopped' && observed === 'stopped');
    const now = new Date().toISOString();
    deps.db.transaction((tx) => {
      tx.update(instances).set({ observed, containerId, lastError: problem, attempts: 0, nextAttemptAt: null, updatedAt: now })
        .where(and(eq(instances.id, inst.id), eq(instances.generation, inst.generation))).run();
      if (converged) {
        tx.update(operations).set({ status: 'done', finishedAt: now, error: null })
          .where(and(eq(operations.instanceSlug, inst.slug), eq(operations.status, 'pending'))).run();
      }
    });
    if (observed !== inst.observed || inst.lastError !== problem) publish(inst, observed, problem);
  }

  function recordFailure(inst: Instance, err: unknown) {
    const attempts = inst.attempts + 1;
    const delay = Math.min(2 ** attempts, deps.maxBackoffSeconds ?? 300);
    const msg = errorText(err);
    log.warn({ slug: inst.slug, err, attempts, retryInSeconds: delay }, 'reconcile failed');
    deps.db.transaction((tx) => {
      tx.update(instances).set({
        lastError: msg, attempts, nextAttemptAt: new Date(Date.now() + delay * 1000).toISOString(),
        observed: inst.observed === 'pending' ? 'failed' : inst.observed, updatedAt: new Date().toISOString(),
      }).where(eq(instances.id, inst.id)).run();
      tx.update(operations).set({ error: msg }).where(and(eq(operations.instanceSlug, inst.slug), eq(operations.status, 'pending'))).run();
    });
    publish(inst, inst.observed, msg);
    // A pass after the backoff, so the retry does not wait for the slow timer.
    setTimeout(() => { if (!stopping) void pass('retry'); }, delay * 1000).unref();
  }

  function journalAction(slug: string, kind: string, detail?: Record<string, unknown>) {
    deps.db.insert(operations).values({ instanceSlug: slug, kind, actor: 'reconciler', status: 'done', detail: detail ?? null, finishedAt: new Date().toISOString() }).run();
  }

  async function removeContainer(engine: Engine, id: string, what: string) {
    await call(engine, `remove ${what}`, (d) => d.getContainer(id).remove({ force: true })).catch((err) => {
      if (statusOf(err) !== 404) throw err;
    });
  }

  function observedOf(info: Docker.ContainerInspectInfo, inst: Instance): { observed: Observed; problem?: string } {
    const st = info.State;
    if (!st.Running) {
      if (inst.desired === 'stopped') return { observed: 'stopped' };
      return { observed: 'failed', problem: `container exited with code ${st.ExitCode}${st.Error ? `: ${st.Error}` : ''}` };
    }
    const health = st.Health?.Status;
    if (health === 'healthy') return { observed: 'healthy' };
    if (health === 'unhealthy') return { observed: 'unhealthy', problem: 'health check failing' };
    if (health === 'starting') {
      const since = (Date.now() - Date.parse(st.StartedAt)) / 1000;
      if (since > deps.healthTimeoutSeconds) return { observed: 'unhealthy', problem: `not healthy ${Math.round(since)} s after start` };
      return { observed: 'starting' };
    }
    return { observed: 'running' };
  }

  async function createOrAdopt(engine: Engine, inst: Instance, spec: Docker.ContainerCreateOptions): Promise<string> {
    try {
      const c = await call(engine, `create container ${spec.name}`, (d) => d.createContainer(spec));
      journalAction(inst.slug, 'container-created', { generation: inst.generation });
      return c.id;
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
      // The name is taken: a crash between create and record, or another pass. Adopt it if it is this generation.
      const info = await call(engine, `inspect container ${spec.name}`, (d) => d.getContainer(spec.name!).inspect());
      const labels = info.Config.Labels ?? {};
      if (labels[LABEL_INSTANCE] !== inst.slug || labels['cattery.hoster'] !== deps.hosterId) {
        throw fail('CATTERY_ERR_CONFLICT', `container ${spec.name} exists and is not managed by cattery`);
      }
      if (labels[LABEL_GENERATION] !== String(inst.generation)) {
        await removeContainer(engine, info.Id, spec.name!);
        return createOrAdopt(engine, inst, spec);
      }
      journalAction(inst.slug, 'container-adopted', { generation: inst.generation });
      return info.Id;
    }
  }

  async function converge(engine: Engine, server: Server, inst: Instance, found: Docker.ContainerInfo[]) {
    const svc = deps.catalog.services.get(inst.service);
    if (!svc) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', inst.service);
    const m = svc.manifest;
    const labels = instanceLabels(deps.hosterId, inst);
    const base = { ...labels };
    delete (base as Record<string, string>)[LABEL_GENERATION];
    // Networks and volumes outlive generations, so they carry no generation label of consequence.
    const sized = sizedOn(server);
    const [networkId] = await Promise.all([
      ensureNetwork(engine, networkName(deps.hosterId, inst.slug), { ...base, [LABEL_GENERATION]: '0' }, inst.config.subnet),
      ...m.volumes.map((v) => {
        const vname = volumeName(deps.hosterId, inst.slug, v.name);
        const vlabels = { ...base, [LABEL_GENERATION]: '0' };
        return sized ? ensureSizedVolume(engine, sized, vname, vlabels, v.sizeMb) : ensureVolume(engine, vname, vlabels);
      }),
    ]);
    // Before any container joins it (firewall.ts).
    if (isLocalEndpoint(server.dockerEndpoint)) await firewall?.guard(bridgeOf(networkId));

    const name = containerName(deps.hosterId, inst.slug);
    let current: Docker.ContainerInfo | undefined;
    for (const c of found) {
      const isMain = c.Names.includes(`/${name}`) && c.Labels[LABEL_GENERATION] === String(inst.generation);
      if (isMain && !current) { current = c; continue; }
      // An older generation (upgrade) or a stray duplicate: volumes stay, the container goes.
      await removeContainer(engine, c.Id, c.Names[0] ?? c.Id);
      journalAction(inst.slug, c.Labels[LABEL_GENERATION] === String(inst.generation) ? 'container-removed' : 'container-replaced', { generation: c.Labels[LABEL_GENERATION] });
    }
    let id = current?.Id;
    // What the listing already says spares an inspect: a container just created is known not to run.
    let isRunning = current?.State === 'running';
    if (!id) {
      if (!(await imageExists(engine, inst.image))) throw fail('CATTERY_ERR_IMAGE_MISSING', inst.image);
      if (inst.observed !== 'pending' && inst.observed !== 'creating' && inst.containerId) journalAction(inst.slug, 'container-missing', { was: inst.containerId });
      id = await createOrAdopt(engine, inst, buildContainerSpec({ hosterId: deps.hosterId, manifest: m, instance: inst, server }));
      isRunning = false;
    }
    const cid = id;
    let info: Docker.ContainerInspectInfo;
    if (inst.desired === 'running' && !isRunning) {
      await call(engine, `start ${name}`, (d) => d.getContainer(cid).start()).catch((err) => { if (statusOf(err) !== 304) throw err; });
      info = await call(engine, `inspect ${name}`, (d) => d.getContainer(cid).inspect());
    } else {
      info = await call(engine, `inspect ${name}`, (d) => d.getContainer(cid).inspect());
    }
    if (inst.desired === 'running' && !info.State.Running) {
      await call(engine, `start ${name}`, (d) => d.getContainer(cid).start()).catch((err) => { if (statusOf(err) !== 304) throw err; });
      info = await call(engine, `inspect ${name}`, (d) => d.getContainer(cid).inspect());
    } else if (inst.desired === 'stopped' && info.State.Running) {
      await call(engine, `stop ${name}`, (d) => d.getContainer(cid).stop({ t: 10 })).catch((err) => { if (statusOf(err) !== 304) throw err; });
      info = await call(engine, `inspect ${name}`, (d) => d.getContainer(cid).inspect());
    }
    const { observed, problem } = observedOf(info, inst);
    record(inst, observed, cid, problem ?? null);
  }

  let warnedUnsized = false;
  /** The folder of volume images when this server's engine is this host's (a loop device is a host object). */
  function sizedOn(server: Server): string | undefined {
    if (deps.volumesDir && isLocalEndpoint(server.dockerEndpoint)) return deps.volumesDir;
    if (!warnedUnsized) log.warn({ server: server.name }, 'volume sizes are not enforced on a remote engine');
    warnedUnsized = true;
    return undefined;
  }

  /** An image to create the (never started) archive helper from: the instance's own, else the service's current
   * one. Any image that exists would do, since the helper only lends Docker a container to read the volumes from. */
  async function archiveImage(engine: Engine, inst: Instance): Promise<string | null> {
    const svc = deps.catalog.services.get(inst.service);
    for (const ref of [inst.image, ...(svc ? [serviceImageRef(svc)] : [])]) if (await imageExists(engine, ref)) return ref;
    return null;
  }

  async function destroy(engine: Engine, server: Server, inst: Instance, found: Docker.ContainerInfo[]) {
    if (inst.observed !== 'deleting') {
      deps.db.update(instances).set({ observed: 'deleting' }).where(eq(instances.id, inst.id)).run();
      publish(inst, 'deleting', null);
    }
    for (const c of found) await removeContainer(engine, c.Id, c.Names[0] ?? c.Id);
    const m = deps.catalog.services.get(inst.service)?.manifest;
    let archive: string | null = null;
    const sized = sizedOn(server);
    const names = new Set((m?.volumes ?? []).map((v) => volumeName(deps.hosterId, inst.slug, v.name)));
    const helperImage = m && !inst.purge ? await archiveImage(engine, inst) : null;
    if (m && helperImage) {
      // After a reboot the images are not attached yet: Docker needs the devices to mount the volumes.
      if (sized) for (const n of names) await reattachIfPresent(sized, n);
      archive = await archiveVolumes(engine, { ...inst, image: helperImage }, m, deps.backupsDir);
    } else if (!inst.purge) throw fail('CATTERY_ERR_CONFLICT', `cannot archive ${inst.slug}'s volumes (service or image missing); delete again with purge=true to drop them`);
    const managed = await listManaged(engine);
    for (const v of managed.volumes.filter((x) => x.Labels[LABEL_INSTANCE] === inst.slug)) {
      await call(engine, `remove volume ${v.Name}`, (d) => d.getVolume(v.Name).remove()).catch((err) => { if (statusOf(err) !== 404) throw err; });
      names.add(v.Name);
    }
    // The data is in the archive (or purged on purpose): the images go with the volumes.
    if (sized) for (const n of names) await releaseSizedVolume(sized, n);
    for (const n of managed.networks.filter((x) => x.Labels?.[LABEL_INSTANCE] === inst.slug)) {
      await call(engine, `remove network ${n.Name}`, (d) => d.getNetwork(n.Id).remove()).catch((err) => { if (statusOf(err) !== 404) throw err; });
      await firewall?.release(bridgeOf(n.Id));
    }
    const now = new Date().toISOString();
    deps.db.transaction((tx) => {
      // Its accounts lived in its volumes, archived above (or purged): their rows go with the instance.
      tx.delete(accounts).where(eq(accounts.instanceId, inst.id)).run();
      tx.delete(instances).where(eq(instances.id, inst.id)).run();
      tx.update(operations).set({ status: 'done', finishedAt: now, error: null })
        .where(and(eq(operations.instanceSlug, inst.slug), eq(operations.status, 'pending'))).run();
      tx.insert(operations).values({ instanceSlug: inst.slug, kind: 'deleted', actor: 'reconciler', status: 'done', detail: { archive, purge: inst.purge }, finishedAt: now }).run();
    });
    publish(inst, 'deleted', null);
  }

  /** Objects with our hoster label and no instance row (a crash, or a row removed by hand): containers and
   * networks hold no data and go. Volumes stay, with a warning: data is never dropped without an archive, and a
   * database restored from an old backup must not wipe residents' files. */
  async function sweepOrphans(engine: Engine, managed: Managed, known: Set<string>) {
    const orphan = (labels: Record<string, string> | undefined) => !known.has(labels?.[LABEL_INSTANCE] ?? '');
    for (const c of managed.containers.filter((x) => orphan(x.Labels))) {
      log.info({ container: c.Names[0] }, 'removing orphan container');
      await removeContainer(engine, c.Id, c.Names[0] ?? c.Id);
    }
    for (const n of managed.networks.filter((x) => orphan(x.Labels))) {
      log.info({ network: n.Name }, 'removing orphan network');
      await call(engine, `remove network ${n.Name}`, (d) => d.getNetwork(n.Id).remove())
        .then(() => firewall?.release(bridgeOf(n.Id)))
        .catch((err) => log.warn({ err, network: n.Name }, 'orphan network not removed'));
    }
    const vols = managed.volumes.filter((x) => orphan(x.Labels)).map((v) => v.Name);
    if (vols.length) log.warn({ volumes: vols }, 'volumes with no instance are kept; remove them by hand once archived');
  }

  async function reconcileServer(server: Server) {
    const engine = engineFor(server);
    // Engine first, database second: a container is only ever created after its row is committed, so every
    // container listed here already has its row (or had one that a finished delete removed).
    const managed = await listManaged(engine);
    const rows = deps.db.select().from(instances).where(eq(instances.serverId, server.id)).all();
    const bySlug = new Map<string, Docker.ContainerInfo[]>();
    for (const c of managed.containers) {
      if (c.Labels[LABEL_ROLE] === 'archive') continue;
      const slug = c.Labels[LABEL_INSTANCE] ?? '';
      bySlug.set(slug, [...(bySlug.get(slug) ?? []), c]);
    }
    const now = Date.now();
    await Promise.all(rows.map((inst) => limit(async () => {
      const isForced = forced.delete(inst.slug);
      if (!isForced && inst.nextAttemptAt && Date.parse(inst.nextAttemptAt) > now) return;
      try {
        if (inst.desired === 'deleted') await destroy(engine, server, inst, bySlug.get(inst.slug) ?? []);
        else await converge(engine, server, inst, bySlug.get(inst.slug) ?? []);
      } catch (err) {
        recordFailure(inst, err);
      }
    })));
    await sweepOrphans(engine, managed, new Set(rows.map((r) => r.slug)));
  }

  async function runPass(reason: string) {
    const started = Date.now();
    for (const server of deps.db.select().from(servers).all()) {
      try {
        await reconcileServer(server);
      } catch (err) {
        log.error({ err, server: server.name }, 'reconcile pass failed for server');
      }
    }
    log.debug({ reason, ms: Date.now() - started }, 'reconcile pass done');
  }

  function pass(reason: string): Promise<void> {
    if (stopping) return Promise.resolve();
    if (!running) {
      running = runPass(reason).finally(() => { running = null; });
      return running;
    }
    // Coalesce: every request made during a pass is served by one pass after it.
    if (!again) {
      again = running.then(() => { again = null; return pass(reason); });
    }
    return again;
  }

  function watchEvents(server: Server) {
    const engine = engineFor(server);
    const filters = { type: ['container' as const], label: [`cattery.hoster=${deps.hosterId}`], event: ['die', 'destroy', 'health_status', 'stop', 'start', 'oom'] };
    engine.docker.getEvents({ filters }).then((stream) => {
      eventStreams.push(stream);
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            const ev = JSON.parse(line) as { Action?: string; Actor?: { Attributes?: Record<string, string> } };
            const slug = ev.Actor?.Attributes?.[LABEL_INSTANCE];
            if (slug) void trigger(`docker ${ev.Action}`, slug);
          } catch { /* a partial line: the rest comes with the next chunk */ }
        }
      });
      stream.on('end', () => { if (!stopping) setTimeout(() => watchEvents(server), 2000).unref(); });
      stream.on('error', () => undefined);
    }, (err: unknown) => {
      log.warn({ err: errorText(err), server: server.name }, 'cannot watch Docker events; retrying');
      if (!stopping) setTimeout(() => watchEvents(server), 5000).unref();
    });
  }

  function trigger(reason: string, slug?: string): Promise<void> {
    if (slug) forced.add(slug);
    return pass(reason);
  }

  return {
    trigger,
    engineFor,
    waitConverged: (slug, generation) => waitConverged(deps, slug, generation, (deps.healthTimeoutSeconds + deps.dockerTimeoutSeconds) * 1000),
    async restart(slug, actor) {
      const inst = deps.db.select().from(instances).where(eq(instances.slug, slug)).get();
      if (!inst) throw fail('CATTERY_ERR_NOT_FOUND', `No instance "${slug}"`);
      if (inst.desired !== 'running') throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" is not meant to run (desired: ${inst.desired})`);
      const server = deps.db.select().from(servers).where(eq(servers.id, inst.serverId)).get()!;
      const engine = engineFor(server);
      const name = containerName(deps.hosterId, slug);
      deps.db.insert(operations).values({ instanceSlug: slug, kind: 'restart', actor, status: 'running' }).run();
      // Seen as starting until the reconciler sees it up again: account operations meanwhile are queued, not run in
      // a container that is going down (accounts.ts isComingUp).
      deps.db.update(instances).set({ observed: 'starting' }).where(eq(instances.id, inst.id)).run();
      await call(engine, `restart ${name}`, (d) => d.getContainer(name).restart({ t: 10 })).catch((err) => {
        if (statusOf(err) !== 404) throw err;
      });
      journalAction(slug, 'restarted');
      await trigger('restart', slug);
    },
    start(intervalSeconds) {
      // Before any pass attaches an image: a link left from before a reboot may name another volume's device now.
      if (deps.volumesDir) {
        const dropped = sweepStaleLinks(deps.volumesDir);
        if (dropped.length) log.info({ links: dropped }, 'stale volume device links dropped');
      }
      for (const server of deps.db.select().from(servers).all()) watchEvents(server);
      timer = setInterval(() => void pass('timer'), intervalSeconds * 1000);
      timer.unref();
      void pass('start');
    },
    async stop() {
      stopping = true;
      if (timer) clearInterval(timer);
      for (const s of eventStreams) (s as unknown as { destroy?: () => void }).destroy?.();
      await (again ?? running ?? Promise.resolve()).catch(() => undefined);
    },
  };
}
