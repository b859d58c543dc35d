// A small volume of files cattery puts on an engine through its archive API, for a one-shot container there to read:
// how restic on another server's engine gets the repository's password and the SSH identity without a bind of
// cattery's own data folder (a path on cattery's machine, which that server does not have). The files go in as a tar
// (root's, 0600 in 0700 folders) into a helper container that is created and never started; never through a
// container's Env (`docker inspect` shows it) nor its argv, and never logged. The helper stays until `remove`, so
// that what the run wrote there (ssh's known_hosts) can be read back.
import { pack, extract } from 'tar-stream';
import { LABEL_HOSTER, LABEL_ROLE, call, ensureVolume, ensureVolumeRemoved, type Engine } from './engine.js';
import { ensureContainerRemoved } from './containers.js';

/** On the volumes a run made: the cattery process that made them, so that one it left (a crash) is recognised. */
export const LABEL_FILES_OF = 'cattery.files-of';

export interface FileVolume {
  volume: string;
  /** A file as it is now in the volume (a path relative to its root), or undefined when it is not there. */
  read(file: string): Promise<Buffer | undefined>;
  /** The helper and the volume, gone (idempotent). */
  remove(): Promise<void>;
}

export interface FileVolumeSpec {
  volume: string;
  /** Any image the engine has: the helper is never started, it only lends Docker a container to write through. */
  image: string;
  role: string;
  /** Relative path → content; each file 0600, each folder above it 0700, all root's. */
  files: Record<string, string | Buffer>;
}

/** Makes the volume and puts the files in. A failure removes what it made. */
export async function fillVolume(engine: Engine, spec: FileVolumeSpec): Promise<FileVolume> {
  const labels = { [LABEL_HOSTER]: engine.hosterId, [LABEL_ROLE]: spec.role, [LABEL_FILES_OF]: String(process.pid) };
  const helperName = `${spec.volume}-fill`;
  const remove = async () => {
    await ensureContainerRemoved(engine, helperName, helperName).catch(() => undefined);
    await ensureVolumeRemoved(engine, spec.volume);
  };
  try {
    await ensureVolume(engine, spec.volume, labels);
    await ensureContainerRemoved(engine, helperName, helperName);
    const helper = await call(engine, `create ${helperName}`, (d) => d.createContainer({
      name: helperName, Image: spec.image, Labels: labels, Entrypoint: ['/nonexistent'], NetworkDisabled: true,
      HostConfig: { Mounts: [{ Type: 'volume', Source: spec.volume, Target: '/files', ReadOnly: false }], CapDrop: ['ALL'] },
    }));
    const tar = pack();
    const dirs = new Set<string>();
    for (const p of Object.keys(spec.files)) {
      if (!/^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/.test(p) || p.split('/').some((x) => x === '..' || x === '.')) {
        throw new Error(`a file volume's path is relative and plain: ${p.slice(0, 100)}`);
      }
      for (let d = p.split('/').slice(0, -1).join('/'); d; d = d.split('/').slice(0, -1).join('/')) dirs.add(d);
    }
    for (const d of [...dirs].sort()) tar.entry({ name: d, type: 'directory', mode: 0o700, uid: 0, gid: 0 });
    for (const [p, content] of Object.entries(spec.files)) tar.entry({ name: p, mode: 0o600, uid: 0, gid: 0 }, content);
    tar.finalize();
    await call(engine, `put files into ${spec.volume}`, () => helper.putArchive(tar as unknown as NodeJS.ReadableStream, { path: '/files' }));
    return {
      volume: spec.volume, remove,
      read: async (file) => {
        const stream = await helper.getArchive({ path: `/files/${file}` }).catch((err: { statusCode?: number }) => {
          if (err.statusCode === 404) return undefined;
          throw err;
        });
        if (!stream) return undefined;
        return new Promise<Buffer | undefined>((resolve, reject) => {
          const x = extract();
          let found: Buffer | undefined;
          x.on('entry', (h, body, next) => {
            const chunks: Buffer[] = [];
            body.on('data', (c: unknown) => { if (h.type === 'file') chunks.push(c as Buffer); });
            body.on('end', () => { if (h.type === 'file' && !found) found = Buffer.concat(chunks); next(); });
            body.resume();
          });
          x.on('finish', () => resolve(found));
          x.on('error', reject);
          (stream as NodeJS.ReadableStream).pipe(x);
        });
      },
    };
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
}

/** The file volumes (and their helpers) a cattery process that is gone left on this engine: removed. `alive` says
 * whether a process id is still running (a CLI beside `serve` makes its own). */
export async function sweepFileVolumes(engine: Engine, role: string, alive: (pid: number) => boolean): Promise<string[]> {
  const filters = { label: [`${LABEL_HOSTER}=${engine.hosterId}`, `${LABEL_ROLE}=${role}`, LABEL_FILES_OF] };
  const vols = await call(engine, 'list file volumes', (d) => d.listVolumes({ filters }));
  const gone = (vols.Volumes ?? []).filter((v) => {
    const pid = Number((v.Labels ?? {})[LABEL_FILES_OF]);
    return (v.Labels ?? {})[LABEL_HOSTER] === engine.hosterId && !(Number.isInteger(pid) && pid > 0 && alive(pid));
  }).map((v) => v.Name);
  for (const v of gone) {
    await ensureContainerRemoved(engine, `${v}-fill`, `${v}-fill`).catch(() => undefined);
    await ensureVolumeRemoved(engine, v).catch(() => undefined);
  }
  return gone;
}
