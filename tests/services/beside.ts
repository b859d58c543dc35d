// Containers a test runs beside an instance, on the instance's own network: a DNS server of the test's own (Debian's
// Knot DNS) and, for the mail tests, "the rest of the Internet". Their images are built from the same Debian base as
// the services, once, and kept by the hash of their recipe. They carry the test's label, not cattery's (the
// reconciler would remove them as orphans), and are removed by the test's teardown, then the network with them
// (the runtime's own teardown may have run first and found it still in use). Cattery's isolation of instances is
// untouched: nothing here joins two instances' networks.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Test } from 'tap';
import { pack } from 'tar-stream';
import tarFs from 'tar-fs';
import { docker, execIn, waitFor } from '../helpers.js';
import { baseImageRef } from '../../src/orchestrator/docker/images.js';

/** `cattery-test/<name>:<hash of base and recipe>`, built from the Debian base when missing. */
export async function testImage(name: string, dockerfile: string): Promise<string> {
  const base = baseImageRef();
  const tag = `cattery-test/${name}:${crypto.createHash('sha256').update(`${base}\0${dockerfile}`).digest('hex').slice(0, 12)}`;
  if (await docker.getImage(tag).inspect().then(() => true, () => false)) return tag;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cattery-${name}-`));
  try {
    fs.writeFileSync(path.join(dir, 'Dockerfile'), dockerfile);
    const stream = await docker.buildImage(tarFs.pack(dir) as unknown as NodeJS.ReadableStream, { t: tag, buildargs: { BASE: base } });
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
      const bad = out?.find((o) => o.error);
      if (err || bad) reject(err ?? new Error(bad?.error)); else resolve();
    }));
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  return tag;
}

/** The n-th address of an IPv4 network (`10.1.2.0/28`, 2 → `10.1.2.2`). Docker gives the gateway the first one
 * and an instance's container the next free one; a test's own containers take fixed ones from the top of the /28. */
export function hostIn(cidr: string, n: number): string {
  const [ip] = cidr.split('/') as [string];
  const v = ip.split('.').reduce((a, o) => a * 256 + Number(o), 0) + n;
  return [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join('.');
}

export interface Beside {
  name: string;
  address: string;
  container: Docker.Container;
  /** The host port (on 127.0.0.1) a published container port got. */
  hostPort(port: number): Promise<number>;
}

export interface BesideOptions {
  /** Container name (prefixed by the caller with its hoster id, so that parallel tests never collide). */
  name: string;
  image: string;
  network: string;
  address: string;
  cmd: string[];
  /** Files put into the container before it starts: absolute path → content (mode 0644). */
  files?: Record<string, string>;
  /** Container ports published on 127.0.0.1, for the test itself to reach. */
  publish?: number[];
  /** The test's label value (its hoster id): how a leftover is recognised as this test's. */
  label: string;
  memoryMb?: number;
  /** tmpfs mounts: path → options (a small disk that fills up). */
  tmpfs?: Record<string, string>;
  /** The network is someone else's (the swarm fixture's): left in place when this container goes. */
  keepNetwork?: boolean;
}

/** Removes a test's network, cutting off first whatever is still attached to it (a helper container a failed test left
 *  running); a network already gone is fine. */
export async function removeNetwork(name: string): Promise<void> {
  const net = docker.getNetwork(name);
  const info = await net.inspect().catch(() => undefined);
  if (!info) return;
  for (const id of Object.keys(info.Containers ?? {})) await net.disconnect({ Container: id, Force: true }).catch(() => undefined);
  await net.remove().catch(() => undefined);
}

export async function startBeside(t: Test, o: BesideOptions): Promise<Beside> {
  // The reconciler makes the instance's network shortly after the instance is asked for.
  await waitFor(`the network ${o.network}`, async () => (await docker.listNetworks({ filters: { name: [o.network] } })).some((n) => n.Name === o.network), 60_000, 250);
  const container = await docker.createContainer({
    name: o.name, Image: o.image, Cmd: o.cmd,
    Labels: { 'cattery.test': o.label },
    ExposedPorts: Object.fromEntries((o.publish ?? []).map((p) => [`${p}/tcp`, {}])),
    HostConfig: {
      NetworkMode: o.network, Memory: (o.memoryMb ?? 64) * 1024 * 1024, ...(o.tmpfs ? { Tmpfs: o.tmpfs } : {}),
      PortBindings: Object.fromEntries((o.publish ?? []).map((p) => [`${p}/tcp`, [{ HostIp: '127.0.0.1', HostPort: '' }]])),
    },
    NetworkingConfig: { EndpointsConfig: { [o.network]: { IPAMConfig: { IPv4Address: o.address } } } },
  });
  t.teardown(async () => {
    await container.remove({ force: true }).catch(() => undefined);
    if (!o.keepNetwork) await removeNetwork(o.network);
  });
  if (o.files && Object.keys(o.files).length) {
    const files = pack();
    const dirs = new Set<string>();
    for (const p of Object.keys(o.files)) for (let d = path.posix.dirname(p); d !== '/'; d = path.posix.dirname(d)) dirs.add(d);
    for (const d of [...dirs].sort()) files.entry({ name: d.slice(1), type: 'directory', mode: 0o755 });
    for (const [p, text] of Object.entries(o.files)) files.entry({ name: p.slice(1), mode: 0o644 }, text);
    files.finalize();
    await container.putArchive(files as unknown as NodeJS.ReadableStream, { path: '/' });
  }
  await container.start();
  return {
    name: o.name, address: o.address, container,
    async hostPort(port) {
      const info = await container.inspect();
      return Number(info.NetworkSettings.Ports[`${port}/tcp`]?.[0]?.HostPort);
    },
  };
}

// ---- DNS: Knot DNS, authoritative for the zones the test gives and for the root zone, so that every other name is
// answered at once and for good (NXDOMAIN) instead of leaving the network or waiting for a timeout.
export const KNOT_DOCKERFILE = [
  'ARG BASE',
  'FROM ${BASE}',
  'RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends knot && rm -rf /var/lib/apt/lists/*',
  '',
].join('\n');

/** The root zone: its SOA and NS only (RFC 1035 §5.2), the NS with its glue so that it loads without a warning. */
const ROOT_ZONE = '$TTL 60\n. 60 IN SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 60\n. 60 IN NS ns.invalid.\nns.invalid. 60 IN A 192.0.2.53\n';

function knotConf(names: string[]): string {
  return ['server:', '    listen: 0.0.0.0@53', '    rundir: /tmp', 'log:', '  - target: stderr', '    any: info', 'database:', '    storage: /tmp/knotdb', 'zone:',
    ...names.flatMap((z) => [`  - domain: ${z}`, `    file: /etc/knot-test/${z === '.' ? 'root' : z}.zone`]), ''].join('\n');
}

/** knotd on `network` at `address`, serving `zones` (name → RFC 1035 master file) and the root zone; resolves once
 * every zone is loaded. */
export async function dnsBeside(t: Test, o: { name: string; network: string; address: string; label: string; zones: Record<string, string> }): Promise<Beside> {
  const zones = { '.': ROOT_ZONE, ...o.zones };
  const files: Record<string, string> = { '/etc/knot-test/knot.conf': knotConf(Object.keys(zones)) };
  for (const [z, text] of Object.entries(zones)) files[`/etc/knot-test/${z === '.' ? 'root' : z}.zone`] = text;
  const knot = await startBeside(t, {
    name: o.name, image: await testImage('knot', KNOT_DOCKERFILE), network: o.network, address: o.address, label: o.label,
    cmd: ['knotd', '-c', '/etc/knot-test/knot.conf'], files,
  });
  // knotc lists each zone with its serial once loaded ("serial: -" before, or an error while knotd starts).
  await waitFor(`knot serving ${Object.keys(zones).join(' ')}`, async () => {
    const r = await execIn(o.name, ['knotc', '-s', '/tmp/knot.sock', 'zone-status']);
    return r.code === 0 && (r.out.match(/serial: \d+/g) ?? []).length === Object.keys(zones).length;
  }, 30_000, 250);
  return knot;
}
