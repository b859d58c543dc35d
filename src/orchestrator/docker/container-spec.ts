// From a manifest and an instance row to the exact container Docker is asked for. Pure, so the hardening can be
// unit-tested without an engine; the Docker tests then read the same settings back from `docker inspect`.
import type Docker from 'dockerode';
import type { Manifest } from '../../catalog/manifest.js';
import { plainValue } from '../../catalog/env.js';
import type { Instance, Server } from '../../db/schema.js';
import { LABEL_GENERATION, LABEL_HOSTER, LABEL_INSTANCE, LABEL_SERVICE } from './engine.js';

/** How much of an instance's output Docker keeps: json-file, rotated at 10 MB, three files (so at most 30 MB per
 * container, the oldest lines dropped first). Exported so that the transparency page states the setting itself. */
export const CONTAINER_LOG = { driver: 'json-file', maxSizeMb: 10, maxFiles: 3 } as const;

export function containerName(hosterId: string, slug: string): string {
  return `${hosterId}-${slug}`;
}
export function networkName(hosterId: string, slug: string): string {
  return `${hosterId}-${slug}`;
}
export function volumeName(hosterId: string, slug: string, volume: string): string {
  return `${hosterId}-${slug}-${volume}`;
}

export function instanceLabels(hosterId: string, inst: Pick<Instance, 'slug' | 'generation' | 'service'>): Record<string, string> {
  return {
    [LABEL_HOSTER]: hosterId,
    [LABEL_INSTANCE]: inst.slug,
    [LABEL_GENERATION]: String(inst.generation),
    [LABEL_SERVICE]: inst.service,
  };
}

const seconds = (s: number) => Math.round(s * 1e9);

export function environmentOf(manifest: Manifest, inst: Pick<Instance, 'config'>): string[] {
  return Object.entries(manifest.environment).map(([key, v]) => {
    if ('secret' in v) return `${key}=${inst.config.secrets[key] ?? ''}`;
    // An administrator's value, else a link's (orchestrator/links.ts), else the default: catalog/env.ts decides.
    return `${key}=${plainValue(v, key, inst.config)}`;
  });
}

export function buildContainerSpec(args: {
  hosterId: string;
  manifest: Manifest;
  instance: Pick<Instance, 'slug' | 'generation' | 'service' | 'image' | 'config'>;
  server: Pick<Server, 'publishAddress'>;
}): Docker.ContainerCreateOptions {
  const { hosterId, manifest: m, instance: inst, server } = args;
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of m.ports) {
    const key = `${p.container}/${p.protocol ?? 'tcp'}`;
    exposed[key] = {};
    const hostPort = inst.config.ports[p.name];
    const bound = (p.publish ?? true) && hostPort ? [{ HostIp: server.publishAddress, HostPort: String(hostPort) }] : [];
    // Its well-known number on the public address as well, when the administrator published them
    // (orchestrator/public-ports.ts): a second binding of the same container port.
    const wellKnown = inst.config.publicPorts?.ports[p.name];
    if (wellKnown) bound.push({ HostIp: inst.config.publicPorts!.address, HostPort: String(wellKnown) });
    if (bound.length) bindings[key] = bound;
  }
  const spec: Docker.ContainerCreateOptions = {
    name: containerName(hosterId, inst.slug),
    Image: inst.image,
    Labels: instanceLabels(hosterId, inst),
    Env: environmentOf(m, inst),
    ExposedPorts: exposed,
    Hostname: inst.slug.slice(0, 63),
    HostConfig: {
      CapDrop: ['ALL'],
      CapAdd: [...m.capabilities],
      SecurityOpt: ['no-new-privileges:true'],
      Privileged: false,
      ReadonlyRootfs: m.readOnlyRootfs,
      Tmpfs: Object.fromEntries(m.tmpfs.map((t) => [t.path, `rw,nosuid,nodev,size=${t.sizeMb}m`])),
      Memory: m.limits.memoryMb * 1024 * 1024,
      // Same as Memory: no swap beyond the limit, so one instance cannot thrash the server.
      MemorySwap: m.limits.memoryMb * 1024 * 1024,
      NanoCpus: Math.round(m.limits.cpus * 1e9),
      PidsLimit: m.limits.pids,
      // Only named volumes: the manifest has no way to ask for a bind, so no host path is ever mounted.
      Mounts: m.volumes.map((v) => ({ Type: 'volume' as const, Source: volumeName(hosterId, inst.slug, v.name), Target: v.path })),
      PortBindings: bindings,
      NetworkMode: networkName(hosterId, inst.slug),
      RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
      LogConfig: { Type: CONTAINER_LOG.driver, Config: { 'max-size': `${CONTAINER_LOG.maxSizeMb}m`, 'max-file': String(CONTAINER_LOG.maxFiles) } },
      Init: false,
    },
  };
  if (m.command) spec.Cmd = [...m.command];
  if (m.user) spec.User = m.user;
  if (m.health) {
    spec.Healthcheck = {
      Test: ['CMD', ...m.health.command],
      Interval: seconds(m.health.intervalSeconds),
      Timeout: seconds(m.health.timeoutSeconds),
      Retries: m.health.retries,
      StartPeriod: seconds(m.health.startPeriodSeconds),
    };
  }
  return spec;
}
