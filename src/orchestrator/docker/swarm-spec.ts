// From a manifest and an instance row to the one-replica Swarm service Docker is asked for, when the servers form a
// swarm (docs/swarm.md). Pure, like container-spec.ts beside it: every hardening of today's container carried over
// field by field, and what Engine 20.10's service API (1.41) cannot say is either obtained another way (a node
// constraint) or refused here, before anything reaches the engine.
import type Docker from 'dockerode';
import type { Manifest } from '../../catalog/manifest.js';
import type { Instance } from '../../db/schema.js';
import { fail } from '../../errors.js';
import { CONTAINER_LOG, environmentOf, instanceLabels, networkName, volumeName } from './container-spec.js';

/** Node labels cattery reads and writes (cattery servers label): the server's name in cattery's table, its site and
 * its disk class. */
export const NODE_LABEL_SERVER = 'cattery.server';
export const NODE_LABEL_SITE = 'cattery.site';
export const NODE_LABEL_DISK = 'cattery.disk';
/** Set on a node only once its dockerd runs with `--no-new-privileges` (daemon.json "no-new-privileges": true):
 * API 1.41 has no per-service no-new-privileges (ContainerSpec.Privileges.NoNewPrivileges came with API 1.46), so
 * the engine-wide setting is what gives it, and an instance is only ever placed on a node that declares it. */
export const NODE_LABEL_NNP = 'cattery.no-new-privileges';

export type SwarmServiceSpec = Docker.ServiceSpec & { Labels: Record<string, string> };
export interface SwarmOverlaySpec { Name: string; Driver: 'overlay'; Attachable: boolean; Internal: false; Labels: Record<string, string>; Options: Record<string, string> }

export function serviceName(hosterId: string, slug: string): string {
  return `${hosterId}-${slug}`;
}

/** An instance with any volume keeps its data on one node's disk: it is pinned there (never rescheduled by Swarm:
 * a rescheduled stateful app starting on an empty volume elsewhere is the data loss CapRover and Dokploy users meet);
 * it moves only through backup and restore. */
export function isStateful(m: Pick<Manifest, 'volumes'>): boolean {
  return m.volumes.length > 0;
}

/** `nodeId`: the Swarm node the server joined as (servers.swarm_node_id). A stateful instance is pinned to it as
 * well as to the label: a server reinstalled and joined again is a new node, with the label and none of the data. */
export function placementConstraints(m: Pick<Manifest, 'volumes'>, serverName: string, nodeId?: string): string[] {
  const c = [`node.labels.${NODE_LABEL_NNP}==true`];
  if (isStateful(m)) {
    c.push(`node.labels.${NODE_LABEL_SERVER}==${serverName}`);
    if (nodeId) c.push(`node.id==${nodeId}`);
  }
  return c;
}

/** The overlay network of one instance: its own, encrypted (IPsec between nodes) when the manifest asks. A web
 * instance's is attachable, so that the front door (a plain container on the manager, ingress/) can join it as it joins
 * an instance's bridge on one server, without restarting for each new instance as a door service would. The cost, said
 * in docs/swarm.md: root on any node of the swarm can attach a container of its own to it too (an instance's spec names
 * its own overlay only, so no instance can). Any other instance's overlay (no web port: nothing for the door) stays
 * unattachable. */
export function buildOverlaySpec(hosterId: string, m: Pick<Manifest, 'network' | 'http'>, inst: Pick<Instance, 'slug' | 'generation' | 'service'>): SwarmOverlaySpec {
  return {
    Name: networkName(hosterId, inst.slug), Driver: 'overlay', Attachable: m.http !== undefined, Internal: false,
    Labels: instanceLabels(hosterId, inst),
    Options: m.network?.encrypted ? { encrypted: 'true' } : {},
  };
}

const seconds = (s: number) => Math.round(s * 1e9);
const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** What a container gets today that a Swarm task would not, for this instance: each is refused rather than
 * silently dropped (docs/swarm.md lists them). */
export function swarmRefusals(inst: Pick<Instance, 'config'>): string[] {
  const why: string[] = [];
  // A Swarm published port listens on every address of every node (routing mesh) or of its node (host mode): it
  // cannot be bound to one address as today's publishAddress is. The way in on Swarm is the front door, which joins
  // the instance's overlay (docs/swarm.md).
  if (inst.config.publicPorts) why.push('well-known ports on a public address cannot be bound to one address on Swarm');
  // A link network joins two containers on one bridge of one server (orchestrator/links.ts); on Swarm it would be an
  // overlay shared by two services, not built yet.
  if (inst.config.links?.length) why.push('links between instances are not carried to Swarm yet');
  return why;
}

export function buildServiceSpec(args: {
  hosterId: string;
  manifest: Manifest;
  instance: Pick<Instance, 'slug' | 'generation' | 'service' | 'image' | 'config'>;
  /** The server (node label cattery.server) a stateful instance is pinned to. */
  serverName: string;
  /** The node that server joined as: a stateful instance is pinned to it too. */
  nodeId?: string | undefined;
  replicas?: 0 | 1;
}): SwarmServiceSpec {
  const { hosterId, manifest: m, instance: inst } = args;
  if (!SERVER_NAME.test(args.serverName)) throw fail('CATTERY_ERR_VALIDATION', `server name "${args.serverName}" cannot be a node label value`);
  if (args.nodeId !== undefined && !/^[a-z0-9]{25}$/.test(args.nodeId)) throw fail('CATTERY_ERR_VALIDATION', `"${args.nodeId}" is not a Swarm node id`);
  const refused = swarmRefusals(inst);
  if (refused.length) throw fail('CATTERY_ERR_MANIFEST_UNSAFE', `instance ${inst.slug} cannot run on Swarm: ${refused.join('; ')}`);
  const labels = instanceLabels(hosterId, inst);
  const memory = m.limits.memoryMb * 1024 * 1024;
  const container: Docker.ContainerSpec = {
    Image: inst.image,
    Labels: labels,
    Env: environmentOf(m, inst),
    Hostname: inst.slug.slice(0, 63),
    // Exactly today's CapDrop/CapAdd (ContainerSpec.CapabilityDrop/Add, API 1.41).
    CapabilityDrop: ['ALL'],
    CapabilityAdd: [...m.capabilities],
    ReadOnly: m.readOnlyRootfs,
    Init: false,
    // Only named volumes, made on the node with our labels; tmpfs as today (Docker adds nosuid,nodev,noexec to a
    // tmpfs mount, read back by the tests). No bind: the manifest has no way to ask for one.
    Mounts: [
      ...m.volumes.map((v) => ({
        Type: 'volume' as const, Source: volumeName(hosterId, inst.slug, v.name), Target: v.path, ReadOnly: false,
        VolumeOptions: { NoCopy: false, Labels: labels, DriverConfig: { Name: 'local' } },
      })),
      ...m.tmpfs.map((t) => ({ Type: 'tmpfs' as const, Target: t.path, TmpfsOptions: { SizeBytes: t.sizeMb * 1024 * 1024, Mode: 0o1777 } })),
    ] as Docker.MountSettings[],
  };
  if (m.command) container.Command = [...m.command];
  if (m.user) container.User = m.user;
  if (m.health) {
    container.HealthCheck = {
      Test: ['CMD', ...m.health.command],
      Interval: seconds(m.health.intervalSeconds),
      Timeout: seconds(m.health.timeoutSeconds),
      Retries: m.health.retries,
      StartPeriod: seconds(m.health.startPeriodSeconds),
    };
  }
  return {
    Name: serviceName(hosterId, inst.slug),
    Labels: labels,
    Mode: { Replicated: { Replicas: args.replicas ?? 1 } },
    TaskTemplate: {
      ContainerSpec: container,
      Resources: {
        // Pids: Resources.Limits.Pids, API 1.41 (Engine 20.10). The reservation equals the limit, so that Swarm never
        // places more memory on a node than it has.
        Limits: { MemoryBytes: memory, NanoCPUs: Math.round(m.limits.cpus * 1e9), Pids: m.limits.pids },
        Reservations: { MemoryBytes: memory },
      },
      // A stopped or crashed task is restarted on its node; a stateful one can only ever be placed on its own node.
      RestartPolicy: { Condition: 'any', Delay: seconds(5), MaxAttempts: 0 },
      Placement: { Constraints: placementConstraints(m, args.serverName, args.nodeId) },
      // No alias: the door is on every web instance's overlay, and an alias (a slug) could be another instance's
      // service name (slug "cattery-blog" beside the service "cattery-blog" of slug "blog"); the service's own name,
      // unique in the swarm, is what resolves (found by the outside review).
      Networks: [{ Target: networkName(hosterId, inst.slug) }],
      LogDriver: { Name: CONTAINER_LOG.driver, Options: { 'max-size': `${CONTAINER_LOG.maxSizeMb}m`, 'max-file': String(CONTAINER_LOG.maxFiles) } },
    },
    // No published port: a Swarm port listens on every node's every address (docs/swarm.md). Only the overlay.
    // DNS round robin: the service's name resolves to its one task's address on the overlay. A virtual IP would need
    // the kernel's IPVS on every node (absent from some kernels) and drops connections idle for 15 minutes (IPVS's
    // timeout: a websocket of the pads behind the door), for nothing a one-replica service needs.
    EndpointSpec: { Mode: 'dnsrr', Ports: [] },
  };
}
