// The CPU a real `cattery agent` process uses on its node: started as `node bin/cattery.js agent run` against a
// manager, left to settle, then its own CPU time (utime + stime of /proc/<pid>/stat, the process alone) over the wall
// time of the measure, in percent of one core. bench/agent-cpu calls it; bench/swarm can call it on each node's agent.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Linux's USER_HZ (sysconf(_SC_CLK_TCK)): 100 ticks per second on every architecture cattery runs on.
const USER_HZ = 100;

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat, after the command in parentheses). */
export function processCpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / USER_HZ;
}

/**
 * @param {{ manager: string, token?: string, stateDir: string, intervalSeconds?: number, settleSeconds?: number,
 *   measureSeconds?: number, env?: Record<string, string> }} o
 * @returns {Promise<{ cpuPct: number, cpuSeconds: number, wallSeconds: number, rssMb: number }>}
 */
export async function measureAgentCpu(o) {
  const interval = o.intervalSeconds ?? 10;
  const args = [path.join(root, 'bin/cattery.js'), 'agent', 'run', '--manager', o.manager, '--state-dir', o.stateDir, '--interval', String(interval)];
  if (o.token) args.push('--token', o.token);
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', CATTERY_LOG_LEVEL: 'warn', ...(o.env ?? {}) }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d.toString(); });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    // Start-up (loading the modules, enrolling, the first sample: a baseline) is not the steady state measured.
    await Promise.race([new Promise((r) => setTimeout(r, (o.settleSeconds ?? interval + 5) * 1000)), exited]);
    if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}): ${stderr.slice(0, 500)}`);
    const c0 = processCpuSeconds(child.pid), w0 = process.hrtime.bigint();
    await Promise.race([new Promise((r) => setTimeout(r, (o.measureSeconds ?? 60) * 1000)), exited]);
    if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}): ${stderr.slice(0, 500)}`);
    const cpuSeconds = processCpuSeconds(child.pid) - c0, wallSeconds = Number(process.hrtime.bigint() - w0) / 1e9;
    const rss = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return { cpuPct: (cpuSeconds / wallSeconds) * 100, cpuSeconds, wallSeconds, rssMb: rss ? Number(rss[1]) / 1024 : NaN, stderr };
  } finally {
    if (child.exitCode === null) { child.kill('SIGTERM'); await exited; }
  }
}
