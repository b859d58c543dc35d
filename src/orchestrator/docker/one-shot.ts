// A one-shot container of cattery's own (restic for backups): created, started, waited for within a deadline, its
// output collected (capped), and removed whatever happened. It carries the hoster's labels and a role, so that a
// crash between create and remove leaves nothing the reconciler's sweep does not recognise.
import { PassThrough } from 'node:stream';
import { fail } from '../../errors.js';
import { LABEL_HOSTER, LABEL_ROLE, call, type Engine } from './engine.js';
import { ensureContainerRemoved } from './containers.js';

export interface OneShotMount {
  /** A Docker volume's name, or an absolute host path (a bind: local engine only). */
  source: string;
  target: string;
  readOnly: boolean;
  kind: 'volume' | 'bind';
}

export interface OneShotSpec {
  name: string;
  image: string;
  argv: string[];
  /** Instead of the image's own (restic): a shell for a step around it. */
  entrypoint?: string[];
  mounts: OneShotMount[];
  env?: Record<string, string>;
  /** A Docker network to join; none: no network at all. */
  network: string | 'none' | 'bridge';
  /** Small writable folders on the read-only root (restic sets the times of the folders above what it restores). */
  scratch?: string[];
  /** Added to an empty set (every other capability dropped). */
  capAdd?: string[];
  /** A function: read once beforeStart has run (a paused service's deadline is shorter). */
  timeoutMs: number | (() => number);
  /** Output kept: the last bytes of stderr and the whole stdout up to this cap (restic's JSON lines). */
  maxStdoutBytes?: number;
  role: string;
  /** More labels (LABEL_HOLDS: the instance this run holds paused). */
  labels?: Record<string, string>;
  /** Run once the container exists and before it starts (the pause: a pass then sees who holds it). */
  beforeStart?: () => Promise<void>;
}

/** `truncated`: stdout went past the cap and its end was dropped. */
export interface OneShotResult { exitCode: number; stdout: string; stderr: string; timedOut: boolean; truncated: boolean }

export async function runOneShot(engine: Engine, spec: OneShotSpec): Promise<OneShotResult> {
  await ensureContainerRemoved(engine, spec.name, spec.name);
  const container = await call(engine, `create ${spec.name}`, (d) => d.createContainer({
    name: spec.name,
    Image: spec.image,
    Cmd: spec.argv,
    ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
    Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Labels: { ...spec.labels, [LABEL_HOSTER]: engine.hosterId, [LABEL_ROLE]: spec.role },
    User: '0:0',
    HostConfig: {
      Mounts: spec.mounts.map((m) => ({ Type: m.kind, Source: m.source, Target: m.target, ReadOnly: m.readOnly })),
      NetworkMode: spec.network,
      CapDrop: ['ALL'],
      CapAdd: spec.capAdd ?? [],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=64m', ...Object.fromEntries((spec.scratch ?? []).map((p) => [p, 'rw,noexec,nosuid,size=1m'])) },
      PidsLimit: 256,
    },
  }));
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  const cap = spec.maxStdoutBytes ?? 16 * 1024 * 1024;
  let truncated = false;
  stdout.on('data', (c: Buffer) => { if (out.length < cap) out += c.toString(); else truncated = true; });
  stderr.on('data', (c: Buffer) => { err = (err + c.toString()).slice(-4000); });
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  let stream: NodeJS.ReadWriteStream | undefined;
  try {
    stream = await call(engine, `attach ${spec.name}`, () => container.attach({ stream: true, stdout: true, stderr: true }));
    const attached = stream;
    engine.docker.modem.demuxStream(stream, stdout, stderr);
    const ended = new Promise<void>((resolve) => { attached.on('end', resolve); attached.on('close', resolve); attached.on('error', () => resolve()); });
    await spec.beforeStart?.();
    await call(engine, `start ${spec.name}`, () => container.start());
    const waited = container.wait() as Promise<{ StatusCode: number }>;
    const ms = typeof spec.timeoutMs === 'function' ? spec.timeoutMs() : spec.timeoutMs;
    const deadline = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms); });
    const first = await Promise.race([waited, deadline]);
    if (first === 'timeout') {
      timedOut = true;
      await container.kill().catch(() => undefined);
      return { exitCode: -1, stdout: out, stderr: err, timedOut, truncated };
    }
    // The last lines may still be on their way when wait answers.
    await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
    return { exitCode: first.StatusCode, stdout: out, stderr: err, timedOut, truncated };
  } catch (e) {
    throw fail('CATTERY_ERR_ENGINE', `${spec.name}: ${(e as Error).message}`, e);
  } finally {
    clearTimeout(timer);
    // A container that never started (beforeStart refused) never ends its attach stream: closed here, or the socket
    // keeps the process alive.
    (stream as { destroy?: () => void } | undefined)?.destroy?.();
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** Whether the engine can bind `source` (a path of its own machine): a container is made with it bound, and removed
 * at once; nothing runs. The engine's refusal (a path it does not have) is thrown as it came. */
export async function probeBind(engine: Engine, spec: { name: string; image: string; role: string; source: string }): Promise<void> {
  try {
    await call(engine, `create ${spec.name}`, (d) => d.createContainer({
      name: spec.name, Image: spec.image, Entrypoint: ['/nonexistent'], NetworkDisabled: true,
      Labels: { [LABEL_HOSTER]: engine.hosterId, [LABEL_ROLE]: spec.role },
      HostConfig: { Mounts: [{ Type: 'bind', Source: spec.source, Target: '/probe', ReadOnly: true }], CapDrop: ['ALL'] },
    }));
  } finally {
    await ensureContainerRemoved(engine, spec.name, spec.name).catch(() => undefined);
  }
}
