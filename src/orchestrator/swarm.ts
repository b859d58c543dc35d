// Instances on a Docker Swarm (several servers, docs/swarm.md): each one a one-replica service on its own overlay
// network, stateful ones pinned to their server's node, and what the swarm says of them reduced to what an
// administrator decides on. A single server without Swarm never comes here: it runs containers as before.
import type { Manifest } from '../catalog/manifest.js';
import type { Instance } from '../db/schema.js';
import {
  buildOverlaySpec, buildServiceSpec, ensureOverlayNetwork, ensureOverlayRemoved, ensureService, ensureServiceRemoved,
  findService, isStateful, listNodes, overlayOf, scaleService, serviceName, serviceTasks, networkName, type Engine, type NodeView,
} from './docker/index.js';

export interface SwarmInstanceWanted {
  manifest: Manifest;
  instance: Pick<Instance, 'slug' | 'generation' | 'service' | 'image' | 'config'>;
  /** The server it belongs to (its node's cattery.server label): where a stateful one is pinned. */
  serverName: string;
  /** The node that server joined as (servers.swarm_node_id): a stateful one is pinned to it too. */
  nodeId?: string | undefined;
}

/** Network first (the service names it), then the service. The spec is built before any call, so an instance
 * Swarm cannot run as hardened as a container is refused with nothing made. */
export async function ensureSwarmInstance(manager: Engine, w: SwarmInstanceWanted): Promise<{ serviceId: string; how: 'created' | 'unchanged' | 'updated' }> {
  const spec = buildServiceSpec({ hosterId: manager.hosterId, ...w });
  // An overlay made attachable or not otherwise than it should be (made by a cattery before this rule) cannot be
  // changed in place (a network's options are fixed): the service and its network are made again, once (its volumes
  // stay on their node).
  const overlay = buildOverlaySpec(manager.hosterId, w.manifest, w.instance);
  const old = await overlayOf(manager, overlay.Name);
  const remade = old?.ours === true && old.attachable !== overlay.Attachable;
  if (remade) await removeSwarmInstance(manager, w.instance.slug);
  await ensureOverlayNetwork(manager, overlay);
  const r = await ensureService(manager, spec);
  return { serviceId: r.id, how: remade ? 'updated' : r.how };
}

export async function stopSwarmInstance(manager: Engine, slug: string): Promise<void> {
  await scaleService(manager, serviceName(manager.hosterId, slug), 0);
}

export async function startSwarmInstance(manager: Engine, slug: string): Promise<void> {
  await scaleService(manager, serviceName(manager.hosterId, slug), 1);
}

/** The service, then its network once Swarm has let its task go (a network with a task attached is refused). The
 * volumes stay on their node: dropping a resident's data is never a side effect (housekeeping decides, as today). */
export async function removeSwarmInstance(manager: Engine, slug: string, opts: { waitMs?: number } = {}): Promise<void> {
  await ensureServiceRemoved(manager, serviceName(manager.hosterId, slug));
  const deadline = Date.now() + (opts.waitMs ?? 30_000);
  for (;;) {
    try {
      await ensureOverlayRemoved(manager, networkName(manager.hosterId, slug));
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export type SwarmInstanceStatus =
  /** Its task runs (and passed its health check: Swarm holds a task in "starting" until then). */
  | 'running'
  | 'starting'
  /** Scaled to zero on purpose. */
  | 'stopped'
  /** Stateful and its server's node is down: Swarm will not move it, on purpose. The administrator restores its
   * latest backup on another server, or brings the node back. */
  | 'down'
  /** No node can take it now (no node fits its constraints or its memory). */
  | 'pending'
  | 'missing';

export interface SwarmInstanceState {
  status: SwarmInstanceStatus;
  /** The node its current task is on (or was, for a down one). */
  node: Pick<NodeView, 'id' | 'hostname' | 'server' | 'state'> | undefined;
  /** The server a stateful instance is pinned to; undefined for a stateless one (Swarm may move it). */
  pinnedTo: string | undefined;
  message: string;
}

const LIVE = new Set(['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting']);

/** What the swarm says of one instance. `nodes` may be passed in when many instances are read at once. */
export async function swarmInstanceState(
  manager: Engine, w: Pick<SwarmInstanceWanted, 'manifest' | 'serverName'> & { slug: string }, nodes?: NodeView[],
): Promise<SwarmInstanceState> {
  const name = serviceName(manager.hosterId, w.slug);
  const pinnedTo = isStateful(w.manifest) ? w.serverName : undefined;
  // An engine that does not answer is an error, not a missing instance: only the service's absence says "missing".
  // (Docker answers 404 to a task listing filtered on a service that does not exist: the service is asked first.)
  const svc = await findService(manager, name);
  if (!svc) return { status: 'missing', node: undefined, pinnedTo, message: `no service ${name}` };
  const [tasks, allNodes] = await Promise.all([serviceTasks(manager, name), nodes ?? listNodes(manager)]);
  const nodeOf = (id: string) => {
    const n = allNodes.find((x) => x.id === id);
    return n ? { id: n.id, hostname: n.hostname, server: n.server, state: n.state } : undefined;
  };
  if (svc.Spec.Mode?.Replicated?.Replicas === 0) return { status: 'stopped', node: undefined, pinnedTo, message: 'scaled to zero' };
  const wanted = tasks.filter((t) => t.desired === 'running');
  // A node that is down still shows its last task as running for a while: the node's state wins over the task's.
  const pinnedNode = pinnedTo ? allNodes.find((n) => n.server === pinnedTo) : undefined;
  if (pinnedTo && (!pinnedNode || pinnedNode.state !== 'ready')) {
    return {
      status: 'down', node: pinnedNode ? nodeOf(pinnedNode.id) : undefined, pinnedTo,
      message: pinnedNode ? `its server ${pinnedTo} is ${pinnedNode.state}: restore its latest backup on another server, or bring the server back` : `no node is labelled ${pinnedTo}`,
    };
  }
  const running = wanted.find((t) => t.state === 'running' && nodeOf(t.nodeId)?.state === 'ready');
  if (running) return { status: 'running', node: nodeOf(running.nodeId), pinnedTo, message: running.message };
  const live = wanted.find((t) => LIVE.has(t.state));
  if (live) {
    const waiting = live.state === 'pending' || (live.state === 'new' && !live.nodeId);
    return { status: waiting ? 'pending' : 'starting', node: live.nodeId ? nodeOf(live.nodeId) : undefined, pinnedTo, message: live.error || live.message };
  }
  const last = tasks[0];
  return { status: 'starting', node: last?.nodeId ? nodeOf(last.nodeId) : undefined, pinnedTo, message: last?.error || last?.message || '' };
}

