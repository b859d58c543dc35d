// Running an account operation inside an instance's container: argv from the manifest, input on stdin (so that a
// password never appears in a process list, argv or the environment), output demultiplexed from Docker's stream.
// Every run has a deadline and an output cap: a service's operation that hangs or prints without end must not hold
// a request, nor the upkeep timer that retries deferred operations, nor cattery's memory.
import fs from 'node:fs';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { fail } from '../../errors.js';
import type { Engine } from './engine.js';
import { call, statusOf } from './engine.js';

export interface ExecResult { exitCode: number; stdout: Buffer; stderr: string }
export interface ExecLimits { timeoutMs: number; maxBytes: number }

/** An operation answers with a line of JSON: a megabyte is generous. 60 s covers a Maildir's du on a slow disk. */
export const DEFAULT_LIMITS: ExecLimits = { timeoutMs: 60_000, maxBytes: 1024 * 1024 };

/** stdin: a string, or a header line followed by a file's bytes (an import's archive), streamed with back-pressure. */
type Input = string | { header: string; file: string };

/** A backup pauses a container for its copy (src/backups/): an operation asked meanwhile (a password change, a
 * resident's restore) waits for the pause to end, within its own deadline, instead of failing with a conflict. */
async function waitUnpaused(engine: Engine, container: string, until: number): Promise<boolean> {
  for (;;) {
    const paused = await engine.docker.getContainer(container).inspect().then((i) => i.State.Paused, () => false);
    if (!paused) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function startExec(engine: Engine, container: string, argv: string[], input: Input, deadline = Date.now() + DEFAULT_LIMITS.timeoutMs) {
  const create = () => call(engine, `exec in ${container}`, (d) => d.getContainer(container).exec({
    Cmd: argv, AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: false,
  }));
  const exec = await create().catch(async (err) => {
    if (statusOf(err) === 409 && await waitUnpaused(engine, container, deadline)) return create();
    throw err;
  });
  const stream = await call(engine, `start exec in ${container}`, () => exec.start({ hijack: true, stdin: true }));
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  engine.docker.modem.demuxStream(stream, stdout, stderr);
  stream.on('end', () => { stdout.end(); stderr.end(); });
  stream.on('error', (err) => { stdout.destroy(err); stderr.destroy(err); });
  // Half-close after the input: the operation reads stdin to its end.
  const half = () => (stream as unknown as { end(): void }).end();
  if (typeof input === 'string') {
    stream.write(input);
    half();
  } else {
    stream.write(input.header);
    const file = fs.createReadStream(input.file);
    file.on('error', (err) => (stream as unknown as { destroy(e: Error): void }).destroy(err));
    // An operation that refuses early stops reading: the rest of the file is not forced on it, and its answer is read.
    stream.on('error', () => file.destroy());
    file.pipe(stream as unknown as NodeJS.WritableStream, { end: false });
    file.on('end', half);
  }
  return { exec, stream, stdout, stderr };
}

/** Docker has no call to stop an exec. On this host, its process is the host pid the engine reports: it is killed
 * there, with its process group when it leads one (a shell script's children with it), so that an import cut at its
 * deadline does not swap data in after cattery said it failed. Elsewhere (a remote engine, or cattery without the
 * right to signal it), it is left to the container's pids limit. Best effort: never throws. */
async function killExec(exec: { inspect(): Promise<{ Pid?: number; Running?: boolean }> }): Promise<void> {
  try {
    const info = await exec.inspect();
    if (!info.Running || !info.Pid) return;
    // /proc/<pid>/stat: "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses, so read after the last ")".
    const stat = fs.readFileSync(`/proc/${info.Pid}/stat`, 'utf8');
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    try { if (pgrp === info.Pid) process.kill(-pgrp, 'SIGKILL'); } catch { /* the group is gone */ }
    process.kill(info.Pid, 'SIGKILL');
  } catch { /* gone already, not on this host, or not ours to signal */ }
}

/** Pipe the operation's stdout into `sink` within the limits; resolves with the exit code. On a breach the
 * connection is cut, the operation's process killed where cattery can reach it (killExec), and a clear error is
 * thrown. */
async function runLimited(engine: Engine, container: string, argv: string[], input: Input, limits: ExecLimits, sink: Writable, what: string): Promise<{ exitCode: number; stderr: string }> {
  const { exec, stream, stdout, stderr } = await startExec(engine, container, argv, input, Date.now() + limits.timeoutMs);
  let errText = '';
  stderr.on('data', (c: Buffer) => { errText = (errText + c.toString()).slice(-2000); });
  let bytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const cut = () => {
    (stream as unknown as { destroy(): void }).destroy();
    void killExec(exec as unknown as { inspect(): Promise<{ Pid?: number; Running?: boolean }> });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => { cut(); reject(fail('CATTERY_ERR_ACCOUNT_OPERATION', `${what} did not finish within ${Math.round(limits.timeoutMs / 1000)} s`)); }, limits.timeoutMs);
      stdout.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > limits.maxBytes) { cut(); reject(fail('CATTERY_ERR_ACCOUNT_OPERATION', `${what} wrote more than ${limits.maxBytes} bytes`)); return; }
        if (!sink.write(c)) { stdout.pause(); sink.once('drain', () => stdout.resume()); }
      });
      stdout.on('end', () => resolve());
      stdout.on('error', (err) => reject(fail('CATTERY_ERR_ACCOUNT_OPERATION', `${what}: the connection to the engine broke`, err)));
    });
  } finally {
    clearTimeout(timer);
  }
  return { exitCode: await exitCodeOf(engine, container, exec), stderr: errText };
}

/** The exec's exit code once the engine has it. Its output ends when the process closes its stdio, and the engine
 * records the exit a moment later (containerd's exit event is handled apart): inspected at once, a busy engine
 * still says Running with no ExitCode, which read as a failure ("exit -1") a successful export under load. */
async function exitCodeOf(engine: Engine, container: string, exec: { inspect(): Promise<{ Running?: boolean; ExitCode?: number | null }> }): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
    const info = await call(engine, `inspect exec in ${container}`, () => exec.inspect());
    if (!info.Running && typeof info.ExitCode === 'number') return info.ExitCode;
    if (Date.now() > deadline) return -1;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

export async function execWithInput(engine: Engine, container: string, argv: string[], input: string, limits: ExecLimits = DEFAULT_LIMITS, what = `operation in ${container}`): Promise<ExecResult> {
  const chunks: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => chunks.push(c));
  const r = await runLimited(engine, container, argv, input, limits, sink, what);
  return { exitCode: r.exitCode, stdout: Buffer.concat(chunks), stderr: r.stderr };
}

/** For an import: a header line (the operation's JSON) then the file's bytes on stdin; the answer as for any
 * operation (a line of JSON, capped), within the limits' time. */
export async function execFromFile(engine: Engine, container: string, argv: string[], header: string, file: string, limits: ExecLimits, what = `import in ${container}`): Promise<ExecResult> {
  const chunks: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => chunks.push(c));
  const r = await runLimited(engine, container, argv, { header, file }, limits, sink, what);
  return { exitCode: r.exitCode, stdout: Buffer.concat(chunks), stderr: r.stderr };
}

/** For an export: the whole output written to `file` (created 0600) before anything is sent, then the exit code
 * checked. A failed or cut export is an error, never a truncated download a resident could take for a copy. */
export async function execToFile(engine: Engine, container: string, argv: string[], input: string, file: string, limits: ExecLimits): Promise<number> {
  const out = fs.createWriteStream(file, { flags: 'wx', mode: 0o600 });
  const opened = new Promise<void>((resolve, reject) => { out.once('open', () => resolve()); out.once('error', reject); });
  await opened;
  try {
    const r = await runLimited(engine, container, argv, input, limits, out, `export in ${container}`);
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    return r.exitCode;
  } catch (err) {
    out.destroy();
    throw err;
  }
}

export type { Readable };
