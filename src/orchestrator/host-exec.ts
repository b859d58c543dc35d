// The few host programs the orchestrator needs (losetup, mkfs.ext4, debugfs, resize2fs, e2fsck from util-linux and
// e2fsprogs), run with execFile and an argument array: no shell ever parses a path. Never the docker CLI.
import { execFile } from 'node:child_process';

/** A host program that failed: which one, with what, its exit code and the end of its stderr (for the log). */
export class ExecError extends Error {
  constructor(readonly command: string, readonly args: readonly string[], readonly exitCode: number | null, readonly stderr: string, readonly timedOut: boolean) {
    super(`${command} ${timedOut ? 'did not finish in time' : `exited with ${exitCode ?? 'a signal'}`}${stderr ? `: ${stderr.trim().split('\n').pop()!.slice(0, 200)}` : ''}`);
    this.name = 'ExecError';
  }
}

export function hostExec(command: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: timeoutMs, maxBuffer: 1024 * 1024, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
      reject(new ExecError(command, args, typeof e.code === 'number' ? e.code : null, String(stderr ?? e.message), Boolean(e.killed)));
    });
  });
}
