// Docker Swarm through the engine's API (never the CLI): the swarm itself (init, join, tokens, node labels), the
// instances' overlay networks and one-replica services, and images carried from one engine to another. Idempotent
// like the rest of this folder: each call leaves the state it names, Docker's "already so" answers count as done.
import type Docker from 'dockerode';
import { ingressNames } from './ingress.js';
import { fail } from '../../errors.js';
import type { Unit } from './containers.js';
import { LABEL_HOSTER, call, imageExists, isOurs, statusOf, unless, type Engine } from './engine.js';
import {
  NODE_LABEL_DISK, NODE_LABEL_NNP, NODE_LABEL_SERVER, NODE_LABEL_SITE, type SwarmOverlaySpec, type SwarmServiceSpec,
} from './swarm-spec.js';

export interface SwarmState { active: boolean; manager: boolean; nodeId: string; clusterId: string | undefined }

export async function swarmState(engine: Engine): Promise<SwarmState> {
  const info = await call(engine, 'engine info', (d) => d.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeID?: string; Cluster?: { ID?: string } } };
  return {
    active: info.Swarm?.LocalNodeState === 'active', manager: info.Swarm?.ControlAvailable === true,
    nodeId: info.Swarm?.NodeID ?? '', clusterId: info.Swarm?.Cluster?.ID,
  };
}

/** Makes this engine the first manager; a no-op when it already manages a swarm. `heartbeatSeconds`: how often a
 * node reports (Swarm's default is 5 s; a node is down after a few missed beats). */
export async function ensureSwarmInit(engine: Engine, opts: { advertiseAddr: string; heartbeatSeconds?: number }): Promise<SwarmState> {
  const st = await swarmState(engine);
  if (st.active && st.manager) return st;
  if (st.active) throw fail('CATTERY_ERR_CONFLICT', 'this engine is a worker of a swarm already: run `cattery servers` against its manager');
  await call(engine, 'initialise the swarm', (d) => d.swarmInit({
    ListenAddr: '0.0.0.0:2377', AdvertiseAddr: opts.advertiseAddr, ForceNewCluster: false,
    Spec: { Dispatcher: { HeartbeatPeriod: (opts.heartbeatSeconds ?? 5) * 1e9 } },
  }));
  return swarmState(engine);
}

export interface JoinTokens { worker: string; manager: string; managerAddrs: string[] }

export async function joinTokens(manager: Engine): Promise<JoinTokens> {
  const sw = await call(manager, 'inspect the swarm', (d) => d.swarmInspect()) as { JoinTokens: { Worker: string; Manager: string } };
  const st = await swarmState(manager);
  const me = await call(manager, 'inspect this node', (d) => d.getNode(st.nodeId).inspect()) as { ManagerStatus?: { Addr?: string } };
  return { worker: sw.JoinTokens.Worker, manager: sw.JoinTokens.Manager, managerAddrs: me.ManagerStatus?.Addr ? [me.ManagerStatus.Addr] : [] };
}

/** Joins `engine` to the swarm as a worker; a no-op when it is in this swarm already, refused when in another. */
export async function ensureSwarmJoin(engine: Engine, opts: { managerAddrs: string[]; token: string; advertiseAddr: string; clusterId?: string }): Promise<SwarmState> {
  const st = await swarmState(engine);
  if (st.active) {
    if (opts.clusterId && st.clusterId && st.clusterId !== opts.clusterId) throw fail('CATTERY_ERR_CONFLICT', 'this engine belongs to another swarm');
    return st;
  }
  await call(engine, 'join the swarm', (d) => d.swarmJoin({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: opts.advertiseAddr, RemoteAddrs: opts.managerAddrs, JoinToken: opts.token }));
  return swarmState(engine);
}

export interface NodeLabels { server?: string; site?: string; disk?: string; noNewPrivileges?: boolean }

/** Sets cattery's labels on one node (by id or hostname), keeping every other label it has. */
export async function labelNode(manager: Engine, node: string, labels: NodeLabels): Promise<void> {
  const n = await call(manager, `inspect node ${node}`, (d) => d.getNode(node).inspect()) as { ID: string; Version: { Index: number }; Spec: { Labels?: Record<string, string>; Role: string; Availability: string } };
  if (labels.server !== undefined) {
    // One node per server: a second node with the label (a server reinstalled and joined again while its old node
    // is still in the swarm, or another engine under its name) would be a second place for its pinned instances.
    const twin = (await listNodes(manager)).find((x) => x.id !== n.ID && x.server === labels.server);
    if (twin) {
      throw fail('CATTERY_ERR_CONFLICT', `node ${twin.id} (${twin.hostname}, ${twin.state}) already is server ${labels.server}: `
        + `its instances' data is there. Restore them elsewhere or bring it back; remove it from the swarm (docker node rm ${twin.id}) before another node takes the name`);
    }
  }
  const next = { ...(n.Spec.Labels ?? {}) };
  if (labels.server !== undefined) next[NODE_LABEL_SERVER] = labels.server;
  if (labels.site !== undefined) next[NODE_LABEL_SITE] = labels.site;
  if (labels.disk !== undefined) next[NODE_LABEL_DISK] = labels.disk;
  if (labels.noNewPrivileges !== undefined) {
    if (labels.noNewPrivileges) next[NODE_LABEL_NNP] = 'true'; else delete next[NODE_LABEL_NNP];
  }
  await call(manager, `label node ${node}`, (d) => d.getNode(n.ID).update({ version: n.Version.Index, ...n.Spec, Labels: next } as unknown as object));
}

export interface NodeView {
  id: string; hostname: string; role: string; availability: string;
  /** ready, down, unknown, disconnected (Swarm's node status). */
  state: string; addr: string; engineVersion: string; leader: boolean;
  server: string | undefined; site: string | undefined; disk: string | undefined; noNewPrivileges: boolean;
}

export async function listNodes(manager: Engine): Promise<NodeView[]> {
  type N = {
    ID: string; Spec: { Labels?: Record<string, string>; Role: string; Availability: string };
    Description?: { Hostname?: string; Engine?: { EngineVersion?: string } };
    Status: { State: string; Addr?: string }; ManagerStatus?: { Leader?: boolean };
  };
  const nodes = await call(manager, 'list nodes', (d) => d.listNodes()) as N[];
  return nodes.map((n) => {
    const l = n.Spec.Labels ?? {};
    return {
      id: n.ID, hostname: n.Description?.Hostname ?? '', role: n.Spec.Role, availability: n.Spec.Availability,
      state: n.Status.State, addr: n.Status.Addr ?? '', engineVersion: n.Description?.Engine?.EngineVersion ?? '',
      leader: n.ManagerStatus?.Leader === true,
      server: l[NODE_LABEL_SERVER], site: l[NODE_LABEL_SITE], disk: l[NODE_LABEL_DISK], noNewPrivileges: l[NODE_LABEL_NNP] === 'true',
    };
  }).sort((a, b) => a.hostname.localeCompare(b.hostname));
}

/** An overlay by name: whether it is ours and attachable (undefined when there is none). */
export async function overlayOf(manager: Engine, name: string): Promise<{ ours: boolean; attachable: boolean } | undefined> {
  const n = await call(manager, `inspect network ${name}`, (d) => d.getNetwork(name).inspect()).catch(unless(404));
  return n ? { ours: isOurs(manager, n.Labels), attachable: n.Attachable === true } : undefined;
}

/** Idempotent, like ensureNetwork: created, or found ours under that name (its options as they were made). */
export async function ensureOverlayNetwork(manager: Engine, spec: SwarmOverlaySpec): Promise<string> {
  try {
    const created = await call(manager, `create overlay ${spec.Name}`, (d) => d.createNetwork({ ...spec, CheckDuplicate: true }));
    return created.id;
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
    const existing = await call(manager, `inspect network ${spec.Name}`, (d) => d.getNetwork(spec.Name).inspect());
    if (!isOurs(manager, existing.Labels)) throw fail('CATTERY_ERR_CONFLICT', `network ${spec.Name} exists and is not managed by cattery`);
    return existing.Id;
  }
}

export async function ensureOverlayRemoved(manager: Engine, name: string): Promise<void> {
  const n = await call(manager, `inspect network ${name}`, (d) => d.getNetwork(name).inspect()).catch(unless(404));
  if (!n || !isOurs(manager, n.Labels)) return;
  // The front door (a container on the manager, ingress/) is on the overlay too, and would leave it only at the end
  // of the pass: it leaves now, or the network stays "in use" until then. Nothing else of ours joins an overlay.
  const door = ingressNames(manager.hosterId).container;
  if (Object.values(n.Containers ?? {}).some((c) => c.Name === door)) {
    await call(manager, `disconnect the front door from ${name}`, (d) => d.getNetwork(n.Id).disconnect({ Container: door, Force: true })).catch(unless(404));
  }
  await call(manager, `remove network ${name}`, (d) => d.getNetwork(n.Id).remove()).catch(unless(404));
}

type ServiceInfo = { ID: string; Version: { Index: number }; Spec: SwarmServiceSpec };

export async function findService(manager: Engine, name: string): Promise<ServiceInfo | undefined> {
  const s = await call(manager, `inspect service ${name}`, (d) => d.getService(name).inspect()).catch(unless(404)) as ServiceInfo | undefined;
  if (s && !isOurs(manager, s.Spec.Labels)) throw fail('CATTERY_ERR_CONFLICT', `service ${name} exists and is not managed by cattery`);
  return s;
}

/** The service exists with this spec afterwards: created, left alone when its labels (generation) already match,
 * else updated in place (Swarm replaces the task). Returns the service's id. */
export async function ensureService(manager: Engine, spec: SwarmServiceSpec): Promise<{ id: string; how: 'created' | 'unchanged' | 'updated' }> {
  const name = spec.Name!;
  const existing = await findService(manager, name);
  if (!existing) {
    const created = await call(manager, `create service ${name}`, (d) => d.createService(spec)) as { id?: string; ID?: string };
    return { id: created.id ?? created.ID ?? name, how: 'created' };
  }
  // Labels come back from the engine in its own key order.
  const same = (a: Record<string, string> | undefined, b: Record<string, string>) => JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b).sort());
  if (same(existing.Spec.Labels, spec.Labels) && existing.Spec.Mode?.Replicated?.Replicas === spec.Mode?.Replicated?.Replicas) return { id: existing.ID, how: 'unchanged' };
  await call(manager, `update service ${name}`, (d) => d.getService(existing.ID).update({ version: existing.Version.Index, ...spec } as unknown as object));
  return { id: existing.ID, how: 'updated' };
}

export async function scaleService(manager: Engine, name: string, replicas: 0 | 1): Promise<void> {
  const s = await findService(manager, name);
  if (!s) throw fail('CATTERY_ERR_NOT_FOUND', `service ${name}`);
  if (s.Spec.Mode?.Replicated?.Replicas === replicas) return;
  await call(manager, `scale ${name} to ${replicas}`, (d) => d.getService(s.ID).update({
    version: s.Version.Index, ...s.Spec, Mode: { Replicated: { Replicas: replicas } },
  } as unknown as object));
}

export async function ensureServiceRemoved(manager: Engine, name: string): Promise<void> {
  const s = await findService(manager, name);
  if (s) await call(manager, `remove service ${name}`, (d) => d.getService(s.ID).remove()).catch(unless(404));
}

export interface TaskView {
  id: string; nodeId: string; state: string; desired: string; message: string; error: string;
  containerId: string | undefined; updatedAt: string;
}

export async function serviceTasks(manager: Engine, name: string): Promise<TaskView[]> {
  type T = {
    ID: string; NodeID?: string; DesiredState: string; UpdatedAt: string;
    Status: { State: string; Message?: string; Err?: string; ContainerStatus?: { ContainerID?: string } };
  };
  const tasks = await call(manager, `tasks of ${name}`, (d) => d.listTasks({ filters: { service: [name] } })) as T[];
  return tasks.map((t) => ({
    id: t.ID, nodeId: t.NodeID ?? '', state: t.Status.State, desired: t.DesiredState, message: t.Status.Message ?? '',
    error: t.Status.Err ?? '', containerId: t.Status.ContainerStatus?.ContainerID, updatedAt: t.UpdatedAt,
  })).sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
}

/** Carries an image from one engine to another (`docker save | docker load` through the API) when the target does
 * not have it: cattery's images are built locally and no registry is assumed (docs/swarm.md). */
export async function ensureImageOn(from: Engine, to: Engine, ref: string): Promise<'present' | 'copied'> {
  if (await imageExists(to, ref)) return 'present';
  if (!(await imageExists(from, ref))) throw fail('CATTERY_ERR_IMAGE_MISSING', ref);
  // Streams, not calls with a deadline: an image is hundreds of MB, the copy takes what it takes.
  const tar = await from.docker.getImage(ref).get();
  const out = await to.docker.loadImage(tar as unknown as string) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    to.docker.modem.followProgress(out, (err: Error | null, res: { error?: string }[]) => {
      const bad = res?.find((r) => r.error);
      if (err || bad) reject(fail('CATTERY_ERR_ENGINE', `load ${ref}: ${err?.message ?? bad?.error}`)); else resolve();
    });
  });
  if (!(await imageExists(to, ref))) throw fail('CATTERY_ERR_ENGINE', `load ${ref}: the image is not there after the load`);
  return 'copied';
}


/** A Swarm secret (`kind: 'secret'`, encrypted in the swarm's store and given only to the tasks that name it) or
 * config (plain): created, or found ours under that name. Both are immutable in Swarm, so a new content takes a new
 * name (the caller names it by its content). */
export async function ensureSwarmObject(manager: Engine, kind: 'secret' | 'config', spec: { Name: string; Labels: Record<string, string>; data: string }): Promise<{ id: string; name: string }> {
  const body = { Name: spec.Name, Labels: spec.Labels, Data: Buffer.from(spec.data).toString('base64') };
  try {
    const made = await call(manager, `create ${kind} ${spec.Name}`, (d): Promise<unknown> => (kind === 'secret' ? d.createSecret(body) : d.createConfig(body))) as { id?: string; ID?: string };
    return { id: made.id ?? made.ID ?? '', name: spec.Name };
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
    const found = await call(manager, `inspect ${kind} ${spec.Name}`, (d): Promise<unknown> => (kind === 'secret' ? d.getSecret(spec.Name).inspect() : d.getConfig(spec.Name).inspect())) as { ID: string; Spec: { Labels?: Record<string, string> } };
    if (!isOurs(manager, found.Spec.Labels)) throw fail('CATTERY_ERR_CONFLICT', `${kind} ${spec.Name} exists and is not managed by cattery`);
    return { id: found.ID, name: spec.Name };
  }
}

/** Our secrets or configs carrying `role` (names and ids), newest first. */
export async function listSwarmObjects(manager: Engine, kind: 'secret' | 'config', role: string): Promise<{ id: string; name: string }[]> {
  const filters = { label: [`cattery.hoster=${manager.hosterId}`, `cattery.role=${role}`] };
  const list = await call(manager, `list ${kind}s`, (d): Promise<unknown> => (kind === 'secret' ? d.listSecrets({ filters }) : d.listConfigs({ filters }))) as { ID: string; CreatedAt?: string; Spec: { Name: string; Labels?: Record<string, string> } }[];
  return list.filter((o) => isOurs(manager, o.Spec.Labels) && o.Spec.Labels?.['cattery.role'] === role)
    .sort((a, b) => (b.CreatedAt ?? '').localeCompare(a.CreatedAt ?? '')).map((o) => ({ id: o.ID, name: o.Spec.Name }));
}

/** Removes our secrets or configs carrying `role` except those named in `keep`. One still named by a task (an old
 * task shutting down) is refused by Swarm and left for the next call. Returns the names removed. */
export async function removeSwarmObjects(manager: Engine, kind: 'secret' | 'config', role: string, keep: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const o of await listSwarmObjects(manager, kind, role)) {
    if (keep.includes(o.name)) continue;
    try {
      await call(manager, `remove ${kind} ${o.name}`, (d): Promise<unknown> => (kind === 'secret' ? d.getSecret(o.id).remove() : d.getConfig(o.id).remove()));
      removed.push(o.name);
    } catch (err) {
      if (![400, 404, 409].includes(statusOf(err) ?? 0)) throw err;
    }
  }
  return removed;
}

// ── For the reconciler (orchestrator/reconcile.ts): services listed as units, a task's container found ──

/** cattery's services on the swarm, as the reconciler sees units: named like a container (`/<hoster>-<slug>`), and
 * "running" when scaled to one (asked to run: whether its task does is `state`'s to say). */
export async function listServiceUnits(manager: Engine): Promise<Unit[]> {
  const list = await call(manager, 'list services', (d) => d.listServices({ filters: { label: [`${LABEL_HOSTER}=${manager.hosterId}`] } })) as ServiceInfo[];
  return list.filter((s) => isOurs(manager, s.Spec.Labels)).map((s) => ({
    id: s.ID, names: [`/${s.Spec.Name ?? ''}`], labels: s.Spec.Labels, running: s.Spec.Mode?.Replicated?.Replicas === 1,
  }));
}

/** The server a service is pinned to by its placement constraint, if it is (stateful instances: swarm-spec.ts). */
export function pinnedServer(spec: SwarmServiceSpec): string | undefined {
  const prefix = `node.labels.${NODE_LABEL_SERVER}==`;
  const c = (spec.TaskTemplate as { Placement?: { Constraints?: string[] } } | undefined)?.Placement?.Constraints ?? [];
  return c.find((x) => x.startsWith(prefix))?.slice(prefix.length);
}

/** Where the service's running task is: its node (with the node's cattery.server label) and its container on that
 * node's engine. An exec goes there (docker exec is a node's, not the manager's). Undefined while none runs. */
export async function runningTask(manager: Engine, name: string): Promise<{ node: NodeView; containerId: string } | undefined> {
  const [tasks, nodes] = await Promise.all([serviceTasks(manager, name), listNodes(manager)]);
  for (const t of tasks.filter((x) => x.desired === 'running' && x.state === 'running' && x.containerId)) {
    const node = nodes.find((n) => n.id === t.nodeId);
    if (node && node.state === 'ready') return { node, containerId: t.containerId! };
  }
  return undefined;
}
