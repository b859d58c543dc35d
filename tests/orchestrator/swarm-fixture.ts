// A real multi-node Docker Swarm on this one machine, for the swarm tests: each node a container of
// tests/fixtures/swarm-node (Debian's docker.io on cattery's debootstrap base) running its own dockerd, on a bridge
// network of the test. One per test file (a node starts in seconds, a swarm of three in about ten); everything is
// named with the test's t<8hex>- prefix and removed at the end, the nodes' cgroups included.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { pino } from 'pino';
import type { Test } from 'tap';
import { connectEngine, ensureServiceImage, type BuildUnit, type Engine } from '../../src/orchestrator/docker/index.js';
import { ROOT, docker, subnetPoolSlice, waitFor } from '../helpers.js';
import { serversCommand } from '../../src/cli/servers.js';
import type { Config } from '../../src/config.js';
import type { Logger } from '../../src/log.js';

export interface SwarmNode {
  /** The node container's name, also its hostname (the Swarm node's hostname). */
  name: string;
  ip: string;
  /** tcp://<ip>:2375: its dockerd's API on the test's bridge. */
  endpoint: string;
  /** dockerode on its engine, for what the tests read straight from the node. */
  docker: Docker;
  engine: Engine;
  containerId: string;
}

export interface TestSwarm {
  prefix: string;
  /** The test's bridge network the nodes are on (on the test machine's engine), and its subnet: a container of the
   * test's joined to it (an SFTP remote) is reached from every node's containers through the node's own NAT. */
  network: string;
  subnet: string;
  nodes: SwarmNode[];
  /** The host's own engine (where the images are built), with the test's hoster id. */
  host: Engine;
  /** Kills one node's container: its dockerd and every task on it die at once, as when a server loses power. */
  kill(node: SwarmNode): Promise<void>;
}

const NODE_UNIT: BuildUnit = {
  dir: path.join(ROOT, 'tests/fixtures/swarm-node'),
  manifest: { id: 'swarm-node', image: { production: 'none', local: { base: 'debian', dockerfile: 'Dockerfile' } } },
};

// Capability numbers (linux/capability.h) and their names, to ask for every capability the host's engine may give:
// the test machine's bounding set lacks CAP_SYS_RESOURCE, and `Privileged` then fails ("unable to apply caps").
const CAPS = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE',
  'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE',
  'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE'];
function missingCaps(): string[] {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapBnd:'));
  const bnd = BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`);
  return CAPS.filter((_, i) => ((bnd >> BigInt(i)) & 1n) === 0n);
}

/** Empty cgroup folders a killed node leaves behind on cgroup v1 (its tasks' own, under the node's), deepest first. */
function removeCgroupTree(containerId: string): void {
  const root = '/sys/fs/cgroup';
  if (!fs.existsSync(root)) return;
  const rmTree = (dir: string) => {
    let entries: fs.Dirent[] = [];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) if (e.isDirectory()) rmTree(path.join(dir, e.name));
    try { fs.rmdirSync(dir); } catch { /* busy or gone */ }
  };
  for (const ctl of fs.readdirSync(root)) {
    const dir = path.join(root, ctl, 'docker', containerId);
    if (fs.existsSync(dir)) rmTree(dir);
  }
}

/** The nodes share no folder with the test machine unless asked: what cattery runs on a node's engine (restic) gets
 * nothing from cattery's data folder but through the engine's API, as on a real server of its own.
 * `binds(i)` and `socket(i)`: the one case asking is the manager cattery runs on (tests/orchestrator/swarm-door.test.ts),
 * which shares cattery's data folder (the front door's admin socket is a file there) and gives its dockerd a further
 * API socket in a folder it binds, so that cattery reaches that engine by a unix socket as it reaches its own host's. */
/** `cpus`: each node's own share of this machine's cores (its dockerd, containerd and runc: the work of making and
 * checking containers), as separate servers each have their own; unset, the nodes share every core. */
export async function startSwarmNodes(t: Test, opts: { count: number; hosterId?: string; binds?: (index: number) => string[]; socket?: (index: number) => string | undefined; cpus?: number }): Promise<TestSwarm> {
  const prefix = opts.hosterId ?? `t${crypto.randomBytes(4).toString('hex')}`;
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const host = connectEngine('unix:///var/run/docker.sock', { hosterId: prefix, timeoutSeconds: 60, log });
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-test-'));
  const image = await ensureServiceImage(host, NODE_UNIT, { workDir, progress: () => undefined }).finally(() => fs.rmSync(workDir, { recursive: true, force: true }));
  const labels = { 'cattery.hoster': prefix };
  const netName = `${prefix}-swarm`;
  const subnet = subnetPoolSlice(3);
  const nodes: SwarmNode[] = [];
  const made: { id: string; name: string }[] = [];
  const volumes: string[] = [];
  const cleanup = async () => {
    const t0 = Date.now();
    // Each live node's own containers first (so that their cgroups go with them), then the nodes, all at once.
    const alive = await Promise.all(nodes.map((n) => docker.getContainer(n.containerId).inspect().then((i) => i.State.Running, () => false)));
    await Promise.all(nodes.filter((_, i) => alive[i]).map((n) => n.docker.listContainers({ all: true })
      .then((cs) => Promise.all(cs.map((c) => n.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined))))
      .catch(() => undefined)));
    await Promise.all(made.map(async (m) => {
      await docker.getContainer(m.id).remove({ force: true, v: true }).catch(() => undefined);
      removeCgroupTree(m.id);
    }));
    await Promise.all(volumes.map((v) => docker.getVolume(v).remove().catch(() => undefined)));
    // What the test joined to the nodes' network (a remote it started beside them) is cut off first.
    const attached = await docker.getNetwork(netName).inspect().then((n: { Containers?: Record<string, unknown> }) => Object.keys(n.Containers ?? {}), () => []);
    for (const id of attached) await docker.getNetwork(netName).disconnect({ Container: id, Force: true }).catch(() => undefined);
    await docker.getNetwork(netName).remove().catch(() => undefined);
    t.comment(`swarm nodes removed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  };
  let cleaned = false;
  t.teardown(async () => { await cleanup(); cleaned = true; });
  // A test file that dies outside tap's hands (an error at its top level) runs no teardown: the nodes would stay up,
  // dockerd and all. The process's last moment removes them then, synchronously, with the docker CLI (tests only).
  process.once('exit', () => {
    if (cleaned || !made.length) return;
    const quiet = { stdio: 'ignore' as const, timeout: 30_000 };
    try { execFileSync('docker', ['rm', '--force', '--volumes', ...made.map((m) => m.id)], quiet); } catch { /* gone */ }
    for (const m of made) removeCgroupTree(m.id);
    try { execFileSync('docker', ['volume', 'rm', ...volumes], quiet); } catch { /* gone */ }
    try { execFileSync('docker', ['network', 'rm', netName], quiet); } catch { /* gone */ }
  });
  // A file's top-level await that throws ends the process before any teardown: a failed start cleans up itself.
  try {
    await startNodes();
  } catch (err) {
    await cleanup();
    cleaned = true;
    throw err;
  }
  return {
    prefix, nodes, host, network: netName, subnet,
    async kill(node) { await docker.getContainer(node.containerId).kill().catch(() => undefined); },
  };

  async function startNodes(): Promise<void> {
    await docker.createNetwork({
      Name: netName, Driver: 'bridge', CheckDuplicate: true, Labels: labels,
      IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] },
    });
    const missing = missingCaps();
    const privileges = missing.length
      ? {
        CapAdd: ['ALL'], CapDrop: missing, SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'], DeviceCgroupRules: ['a *:* rwm'],
        // What the CLI's `--security-opt systempaths=unconfined` sends: /proc and /sys unmasked, as privileged has them.
        MaskedPaths: [], ReadonlyPaths: [],
      }
      : { Privileged: true };
    await Promise.all(Array.from({ length: opts.count }, async (_, i) => {
      const name = `${prefix}-n${i + 1}`;
      const volume = `${name}-docker`;
      await docker.createVolume({ Name: volume, Labels: labels });
      volumes.push(volume);
      const c = await docker.createContainer({
        name, Hostname: name, Image: image, Labels: labels,
        ...(opts.socket?.(i) ? { Cmd: [`--host=unix://${opts.socket(i)}`] } : {}),
        HostConfig: {
          ...privileges, NetworkMode: netName, ...(opts.cpus ? { NanoCpus: Math.round(opts.cpus * 1e9) } : {}),
          Mounts: [{ Type: 'volume', Source: volume, Target: '/var/lib/docker' },
            ...(opts.binds?.(i) ?? []).map((p) => ({ Type: 'bind' as const, Source: p, Target: p }))],
        },
      });
      made.push({ id: c.id, name });
      await c.start();
    }));
    for (const m of [...made].sort((a, b) => a.name.localeCompare(b.name))) {
      const info = await docker.getContainer(m.id).inspect();
      const ip = info.NetworkSettings.Networks[netName]!.IPAddress;
      const endpoint = `tcp://${ip}:2375`;
      nodes.push({
        name: m.name, ip, endpoint, containerId: m.id, docker: new Docker({ host: ip, port: 2375, protocol: 'http', timeout: 20_000 }),
        engine: connectEngine(endpoint, { hosterId: prefix, timeoutSeconds: 60, log }),
      });
    }
    await Promise.all(nodes.map((n) => waitFor(`dockerd of ${n.name}`, () => n.docker.ping().then(() => true), 60_000, 250)));
  }
}

/** A command in a container of a node's own engine: exit code and output. */
export async function execOn(d: Docker, containerId: string, cmd: string[]): Promise<{ code: number; out: string }> {
  const exec = await d.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const sink = { write: (b: Buffer) => { chunks.push(b); return true; } } as unknown as NodeJS.WritableStream;
    d.modem.demuxStream(stream, sink, sink);
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const info = await exec.inspect();
  return { code: info.ExitCode ?? -1, out: Buffer.concat(chunks).toString() };
}

/** `cattery servers …` run as the CLI runs it, for a test's swarm: a non-zero exit throws, with what it said. */
export function serversCli(config: Config, log: Logger): (...args: string[]) => Promise<void> {
  return async (...args) => {
    const lines: string[] = [];
    const code = await serversCommand(args[0], args.slice(1), config, log, (l) => lines.push(l));
    if (code !== 0) throw new Error(`cattery servers ${args.join(' ')}: ${lines.join(' / ')}`);
  };
}
