// How an instance runs on a Docker Swarm, behind the same InstanceRuntime as a container (instance-runtime.ts):
// a one-replica service on its own overlay. The reconciler uses it for servers whose swarm_role is set (reconcile.ts);
// tested on a real swarm in tests/orchestrator/swarm.test.ts and swarm-reconcile.test.ts. One per server: `serverName` is where stateful ones are pinned.
import { fail } from '../../errors.js';
import type { Adoption, UnitState } from './containers.js';
import { call, type Engine } from './engine.js';
import type { InstanceRuntime } from './instance-runtime.js';
import { buildOverlaySpec, buildServiceSpec } from './swarm-spec.js';
import { ensureOverlayNetwork, ensureOverlayRemoved, ensureServiceRemoved, findService, listNodes, pinnedServer, scaleService, serviceTasks } from './swarm.js';

/** A task's states before it runs (Swarm's TaskState). */
const LIVE_TASK = new Set(['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting']);

/** Swarm refuses an update made against a version another update just replaced ("update out of sequence"): the
 * scale reads the service again and retries, a few times. */
async function scale(manager: Engine, id: string, replicas: 0 | 1): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try { await scaleService(manager, id, replicas); return; } catch (err) {
      if (attempt >= 4 || !/out of sequence/.test(String((err as Error).message))) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** `nodeId`: the node the server joined as (servers.swarm_node_id), where its stateful instances are pinned. */
export function swarmRuntime(manager: Engine, serverName: string, nodeId?: string): InstanceRuntime {
  const service = async (id: string) => {
    const s = await findService(manager, id);
    if (!s) throw fail('CATTERY_ERR_NOT_FOUND', `service ${id}`);
    return s;
  };
  const runtime: InstanceRuntime = {
    async createOrAdopt(w, decide: (labels: Record<string, string>) => Adoption) {
      // Made scaled to zero, like a created container not yet started: ensureStarted runs it.
      const spec = buildServiceSpec({ hosterId: manager.hosterId, manifest: w.manifest, instance: w.instance, serverName, nodeId, replicas: 0 });
      // One without our hoster label is refused by findService itself.
      const existing = await findService(manager, spec.Name!);
      if (existing) {
        const verdict = decide(existing.Spec.Labels ?? {});
        if (verdict === 'foreign') throw fail('CATTERY_ERR_CONFLICT', `service ${spec.Name} exists and is not managed by cattery`);
        if (verdict === 'adopt') return { id: existing.ID, how: 'adopted' };
        await ensureServiceRemoved(manager, existing.ID);
      }
      await ensureOverlayNetwork(manager, buildOverlaySpec(manager.hosterId, w.manifest, w.instance));
      const created = await call(manager, `create service ${spec.Name}`, (d) => d.createService(spec)) as { id?: string; ID?: string };
      return { id: created.id ?? created.ID ?? spec.Name!, how: 'created' };
    },
    ensureStarted: (id) => scale(manager, id, 1),
    ensureStopped: (id) => scale(manager, id, 0),
    async ensureRemoved(id) {
      const s = await findService(manager, id);
      if (!s) return;
      await ensureServiceRemoved(manager, s.ID);
      // Its overlay bears its name; Swarm lets it go once the task is gone, which takes a moment.
      const deadline = Date.now() + 30_000;
      for (;;) {
        try { await ensureOverlayRemoved(manager, s.Spec.Name!); return; } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    },
    async restart(id) {
      const s = await service(id);
      const task = s.Spec.TaskTemplate as { ForceUpdate?: number };
      await call(manager, `restart ${s.Spec.Name}`, (d) => d.getService(s.ID).update({
        version: s.Version.Index, ...s.Spec, TaskTemplate: { ...task, ForceUpdate: (task.ForceUpdate ?? 0) + 1 },
      } as unknown as object));
    },
    async state(id): Promise<UnitState> {
      const s = await service(id);
      const all = await serviceTasks(manager, s.ID);
      const tasks = all.filter((t) => t.desired === 'running');
      // Sent as HealthCheck (dockerode's name; Go reads JSON keys without regard to case), read back as Healthcheck.
      const cs = (s.Spec.TaskTemplate as { ContainerSpec?: { HealthCheck?: unknown; Healthcheck?: unknown } }).ContainerSpec;
      const hasHealth = Boolean(cs?.Healthcheck ?? cs?.HealthCheck);
      // A pinned instance whose node is down: the node's state wins over its last task's (still "running" for a while).
      const pin = pinnedServer(s.Spec);
      if (pin && s.Spec.Mode?.Replicated?.Replicas === 1) {
        const node = (await listNodes(manager)).find((n) => n.server === pin);
        if (!node || node.state !== 'ready') {
          return {
            running: false, exitCode: 0, error: '', startedAt: '', health: undefined,
            down: node ? `its server ${pin} is ${node.state}: restore its latest backup on another server, or bring the server back` : `no node is labelled ${pin}`,
          };
        }
      }
      const run = tasks.find((t) => t.state === 'running');
      // Swarm reports a task with a health check "running" only once healthy ("starting" before).
      if (run) return { running: true, exitCode: 0, error: '', health: hasHealth ? 'healthy' : undefined, startedAt: run.updatedAt };
      if (s.Spec.Mode?.Replicated?.Replicas !== 1) {
        // Scaled to zero, its task told to shut down but its container still in its stop grace (writing its last
        // state): still running. Stopped only once no task's container runs, as a container that has exited: a move's
        // final backup comes after this, and must hold what the instance wrote while it stopped.
        const candidates = all.filter((t) => t.state === 'running' || t.state === 'starting');
        // A task on a node that is down reports its last state for ever: no container of it runs anywhere we can see.
        const ready = candidates.length ? new Set((await listNodes(manager)).filter((n) => n.state === 'ready').map((n) => n.id)) : new Set<string>();
        const stopping = candidates.find((t) => ready.has(t.nodeId));
        if (stopping) return { running: true, exitCode: 0, error: '', health: undefined, startedAt: stopping.updatedAt };
        return { running: false, exitCode: 0, error: '', health: undefined, startedAt: '' };
      }
      // Asked to run and its task on its way (or not made yet, right after the scale): a container that runs and is
      // not healthy yet. Reported "not running" instead, a pass would call it failed, and never scale it to zero.
      const live = tasks.find((t) => LIVE_TASK.has(t.state));
      if (live || tasks.length === 0) {
        return { running: true, exitCode: 0, error: live?.error ?? '', health: 'starting', startedAt: live?.updatedAt ?? new Date().toISOString() };
      }
      const last = tasks[0];
      return { running: false, exitCode: 0, error: last?.error || last?.message || '', startedAt: '', health: undefined };
    },
  };
  return runtime;
}
