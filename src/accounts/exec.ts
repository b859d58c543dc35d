// Running an account operation inside an instance's container: argv from the manifest, input on stdin (so that a
// password never appears in a process list, argv or the environment), output demultiplexed from Docker's stream.
import { PassThrough, type Readable } from 'node:stream';
import type { Engine } from '../orchestrator/engine.js';
import { call } from '../orchestrator/engine.js';

export interface ExecResult { exitCode: number; stdout: Buffer; stderr: string }

async function startExec(engine: Engine, container: string, argv: string[], input: string) {
  const exec = await call(engine, `exec in ${container}`, (d) => d.getContainer(container).exec({
    Cmd: argv, AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: false,
  }));
  const stream = await call(engine, `start exec in ${container}`, () => exec.start({ hijack: true, stdin: true }));
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  engine.docker.modem.demuxStream(stream, stdout, stderr);
  stream.on('end', () => { stdout.end(); stderr.end(); });
  // Half-close after the input: the operation reads stdin to its end.
  stream.write(input);
  (stream as unknown as { end(): void }).end();
  return { exec, stream, stdout, stderr };
}

function collect(s: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

export async function execWithInput(engine: Engine, container: string, argv: string[], input: string): Promise<ExecResult> {
  const { exec, stdout, stderr } = await startExec(engine, container, argv, input);
  const [out, err] = await Promise.all([collect(stdout), collect(stderr)]);
  const info = await call(engine, `inspect exec in ${container}`, () => exec.inspect());
  return { exitCode: info.ExitCode ?? -1, stdout: out, stderr: err.toString().slice(-2000) };
}

/** For an export: the operation's stdout as a stream, and a promise of its exit code once it has ended. */
export async function execStream(engine: Engine, container: string, argv: string[], input: string): Promise<{ stdout: Readable; done: Promise<number> }> {
  const { exec, stdout, stderr } = await startExec(engine, container, argv, input);
  stderr.resume();
  const done = new Promise<number>((resolve) => {
    stdout.on('end', () => { exec.inspect().then((i) => resolve(i.ExitCode ?? -1), () => resolve(-1)); });
  });
  return { stdout, done };
}
