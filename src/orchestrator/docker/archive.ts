// Before an instance's volumes are removed, their content is copied to data/backups as one .tar.gz per volume.
// A helper container (never started) mounts them read-only: Docker's archive API then reads the files without
// cattery ever binding a host path.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type { Manifest } from '../../catalog/manifest.js';
import type { Instance } from '../../db/schema.js';
import { LABEL_HOSTER, LABEL_INSTANCE, LABEL_ROLE, ROLE_ARCHIVE, call, type Engine } from './engine.js';
import { ensureContainerRemoved } from './containers.js';
import { containerName, instanceLabels, volumeName } from './container-spec.js';

export async function archiveVolumes(
  engine: Engine, inst: Instance, manifest: Manifest, backupsDir: string,
): Promise<string | null> {
  if (manifest.volumes.length === 0) return null;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = path.join(backupsDir, `${inst.slug}-${stamp}`);
  // Residents' mailboxes and password files: cattery's user only (a umask of 077 is set at start as well).
  fs.mkdirSync(backupsDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(backupsDir, 0o700);
  fs.mkdirSync(dir, { mode: 0o700 });
  const name = `${containerName(engine.hosterId, inst.slug)}-archive`;
  // A helper left by a crash would block the name: it is ours (labelled), so it goes.
  await ensureContainerRemoved(engine, name, name);
  const helper = await call(engine, `create ${name}`, (d) => d.createContainer({
    name,
    Image: inst.image,
    Labels: { ...instanceLabels(engine.hosterId, inst), [LABEL_ROLE]: ROLE_ARCHIVE },
    Entrypoint: ['/nonexistent'],
    NetworkDisabled: true,
    HostConfig: {
      Mounts: manifest.volumes.map((v) => ({
        Type: 'volume' as const, Source: volumeName(engine.hosterId, inst.slug, v.name), Target: v.path, ReadOnly: true,
      })),
      CapDrop: ['ALL'],
    },
  }));
  try {
    for (const v of manifest.volumes) {
      // getArchive streams without a deadline of ours: a large mailbox takes as long as it takes.
      const stream = await engine.docker.getContainer(helper.id).getArchive({ path: `${v.path}/.` });
      await pipeline(stream, zlib.createGzip(), fs.createWriteStream(path.join(dir, `${v.name}.tar.gz`), { mode: 0o600 }));
    }
    fs.writeFileSync(path.join(dir, 'instance.json'), JSON.stringify({
      slug: inst.slug, service: inst.service, generation: inst.generation, image: inst.image,
      archivedAt: new Date().toISOString(), volumes: manifest.volumes,
    }, null, 2), { mode: 0o600 });
  } finally {
    await call(engine, `remove ${name}`, (d) => d.getContainer(helper.id).remove({ force: true })).catch(() => undefined);
  }
  return dir;
}

/** One volume with no instance row (orchestrator/housekeeping.ts) to one .tar.gz file (0600, in a 0700 folder), the
 * same way: a never-started helper mounts it read-only at /volume and Docker's archive API reads it. Any image will
 * do for the helper: nothing in it runs. Returns the archive's size in bytes. */
export async function archiveVolumeTo(
  engine: Engine, args: { volume: string; slug: string; image: string; file: string },
): Promise<number> {
  const dir = path.dirname(args.file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const name = `${args.volume}-archive`;
  await ensureContainerRemoved(engine, name, name);
  const helper = await call(engine, `create ${name}`, (d) => d.createContainer({
    name,
    Image: args.image,
    // The instance's slug, so that whatever removes that instance's objects removes this too; the role, so that the
    // reconciler neither takes it for the instance's container nor sweeps it while it is read (instance-pass.ts).
    Labels: { [LABEL_HOSTER]: engine.hosterId, [LABEL_INSTANCE]: args.slug, [LABEL_ROLE]: ROLE_ARCHIVE },
    Entrypoint: ['/nonexistent'],
    NetworkDisabled: true,
    HostConfig: { Mounts: [{ Type: 'volume' as const, Source: args.volume, Target: '/volume', ReadOnly: true }], CapDrop: ['ALL'] },
  }));
  // Written under a temporary name and renamed: a crash or a refusal never leaves a file that looks like an archive.
  const partial = `${args.file}.partial`;
  try {
    const stream = await engine.docker.getContainer(helper.id).getArchive({ path: '/volume/.' });
    await pipeline(stream, zlib.createGzip(), fs.createWriteStream(partial, { mode: 0o600, flags: 'wx' }));
    fs.renameSync(partial, args.file);
    return fs.statSync(args.file).size;
  } finally {
    fs.rmSync(partial, { force: true });
    await call(engine, `remove ${name}`, (d) => d.getContainer(helper.id).remove({ force: true })).catch(() => undefined);
  }
}
