// Per-container usage read straight from the kernel's cgroup files, found through the container's main pid: no
// Docker call per container (Docker's stats API waits about a second per container on Engine 20.10). Both layouts:
// cgroup v1 (one hierarchy per controller, as on Debian 10/11 hosts and this machine) and v2 (unified).
// Every function takes the roots as arguments, so that recorded fixture trees can stand in for /sys and /proc.
import fs from 'node:fs';
import path from 'node:path';

export interface Roots { cgroup: string; proc: string }
export const HOST_ROOTS: Roots = { cgroup: '/sys/fs/cgroup', proc: '/proc' };

export interface ContainerUsage {
  /** Cumulative CPU time, nanoseconds. */
  cpuNs: number;
  /** Memory working set: usage − cache on v1 (cache counts page cache the kernel can drop), usage − inactive_file on v2. */
  memoryBytes: number;
  netRxBytes: number; netTxBytes: number;
  blkReadBytes: number; blkWriteBytes: number;
}

export type CgroupVersion = 1 | 2;

export function cgroupVersion(roots: Roots): CgroupVersion {
  // The unified hierarchy has cgroup.controllers at its root; a v1 host has one folder per controller instead.
  return fs.existsSync(path.join(roots.cgroup, 'cgroup.controllers')) ? 2 : 1;
}

const read = (file: string): string => fs.readFileSync(file, 'utf8');
const num = (s: string | undefined): number => { const n = Number(s?.trim()); return Number.isFinite(n) ? n : 0; };

function statFile(file: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of read(file).split('\n')) {
    const [k, v] = line.split(/\s+/);
    if (k) m.set(k, num(v));
  }
  return m;
}

/** The pid's cgroup path per v1 controller, or its single v2 path (key ''). */
export function cgroupPaths(roots: Roots, pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of read(path.join(roots.proc, String(pid), 'cgroup')).split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') out.set('', m[3]!);
    for (const c of m[2]!.split(',')) if (c) out.set(c, m[3]!);
  }
  return out;
}

/** Network bytes of the pid's network namespace (all interfaces but loopback), from /proc/<pid>/net/dev. */
export function readNetDev(roots: Roots, pid: number): { rx: number; tx: number } {
  let rx = 0, tx = 0;
  for (const line of read(path.join(roots.proc, String(pid), 'net', 'dev')).split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest || name!.trim() === 'lo') continue;
    const f = rest.trim().split(/\s+/);
    rx += num(f[0]); tx += num(f[8]);
  }
  return { rx, tx };
}

function v1Usage(roots: Roots, paths: Map<string, string>): Omit<ContainerUsage, 'netRxBytes' | 'netTxBytes'> {
  const dir = (controller: string, mount = controller) => path.join(roots.cgroup, mount, paths.get(controller) ?? '/');
  // cpuacct may be mounted on its own (here) or together with cpu (cpu,cpuacct on Debian with systemd).
  const cpuacctMount = fs.existsSync(path.join(roots.cgroup, 'cpuacct')) ? 'cpuacct' : 'cpu,cpuacct';
  const cpuNs = num(read(path.join(dir('cpuacct', cpuacctMount), 'cpuacct.usage')));
  const memDir = dir('memory');
  const usage = num(read(path.join(memDir, 'memory.usage_in_bytes')));
  const stat = statFile(path.join(memDir, 'memory.stat'));
  const cache = stat.get('total_cache') ?? stat.get('cache') ?? 0;
  let blkReadBytes = 0, blkWriteBytes = 0;
  for (const line of read(path.join(dir('blkio'), 'blkio.throttle.io_service_bytes')).split('\n')) {
    const [, op, v] = line.split(/\s+/);
    if (op === 'Read') blkReadBytes += num(v);
    if (op === 'Write') blkWriteBytes += num(v);
  }
  return { cpuNs, memoryBytes: Math.max(0, usage - cache), blkReadBytes, blkWriteBytes };
}

function v2Usage(roots: Roots, paths: Map<string, string>): Omit<ContainerUsage, 'netRxBytes' | 'netTxBytes'> {
  const dir = path.join(roots.cgroup, paths.get('') ?? '/');
  const cpu = statFile(path.join(dir, 'cpu.stat'));
  const usage = num(read(path.join(dir, 'memory.current')));
  const mem = statFile(path.join(dir, 'memory.stat'));
  let blkReadBytes = 0, blkWriteBytes = 0;
  const io = fs.existsSync(path.join(dir, 'io.stat')) ? read(path.join(dir, 'io.stat')) : '';
  for (const line of io.split('\n')) {
    for (const kv of line.split(/\s+/).slice(1)) {
      const [k, v] = kv.split('=');
      if (k === 'rbytes') blkReadBytes += num(v);
      if (k === 'wbytes') blkWriteBytes += num(v);
    }
  }
  return { cpuNs: (cpu.get('usage_usec') ?? 0) * 1000, memoryBytes: Math.max(0, usage - (mem.get('inactive_file') ?? 0)), blkReadBytes, blkWriteBytes };
}

/** Where Docker puts a container's cgroup, relative to a hierarchy's root: the cgroupfs driver (Debian's docker.io
 * default), then the systemd driver. */
const layouts = (id: string) => [`/docker/${id}`, `/system.slice/docker-${id}.scope`];

/** A running container's cgroup found from its id alone, with a pid inside it (for its network namespace): no call to
 * Docker. undefined when the container has no cgroup there (not started yet, gone, or a layout cattery does not know:
 * a --cgroup-parent). The pid is whichever process is in the cgroup now, so a restarted container is followed too. */
export function containerCgroup(roots: Roots, version: CgroupVersion, id: string): { pid: number; paths: Map<string, string> } | undefined {
  if (!/^[0-9a-f]{12,64}$/.test(id)) return undefined;
  const hierarchy = version === 2 ? '' : 'memory';
  for (const rel of layouts(id)) {
    let procs: string;
    try { procs = read(path.join(roots.cgroup, hierarchy, rel, 'cgroup.procs')); } catch { continue; }
    const pid = Number(procs.split('\n').find((l) => l.trim() !== ''));
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const paths = new Map<string, string>(version === 2 ? [['', rel]] : ['cpu', 'cpuacct', 'memory', 'blkio'].map((c) => [c, rel]));
    return { pid, paths };
  }
  return undefined;
}

/** Everything about one running container, from its main pid. Throws when the pid is gone (container stopped).
 * `paths` (cgroupPaths of the pid) may be kept by the caller: they do not change while the container runs. */
export function readContainerUsage(roots: Roots, version: CgroupVersion, pid: number, paths = cgroupPaths(roots, pid)): ContainerUsage {
  const base = version === 2 ? v2Usage(roots, paths) : v1Usage(roots, paths);
  const net = readNetDev(roots, pid);
  return { ...base, netRxBytes: net.rx, netTxBytes: net.tx };
}

export interface HostCpu { totalJiffies: number; idleJiffies: number }

/** /proc/stat's first line: all CPU time, and the part spent idle (idle + iowait). */
export function readHostCpu(roots: Roots): HostCpu {
  const f = read(path.join(roots.proc, 'stat')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest and guest_nice are already inside user and nice).
  const total = f.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return { totalJiffies: total, idleJiffies: (f[3] ?? 0) + (f[4] ?? 0) };
}

export function readHostMemory(roots: Roots): { totalBytes: number; availableBytes: number } {
  const m = new Map<string, number>();
  for (const line of read(path.join(roots.proc, 'meminfo')).split('\n')) {
    const r = /^(\w+):\s+(\d+)/.exec(line);
    if (r) m.set(r[1]!, Number(r[2]) * 1024);
  }
  return { totalBytes: m.get('MemTotal') ?? 0, availableBytes: m.get('MemAvailable') ?? 0 };
}
