// Each instance volume is a file system of the size its manifest declares (volumes[].sizeMb), so that one service
// cannot fill the disk that holds cattery.db. Docker 20.10's local driver can mount a block device but cannot set
// up a loop device itself, and xfs project quotas need the engine's data root on xfs with prjquota (not the case on
// a plain Debian install). So cattery keeps, per volume, under data/volumes (0700):
//   <volume>.ext4  a sparse image file (0600), made with mkfs.ext4;
//   <volume>.dev   a symlink to the loop device the image is attached to.
// The Docker volume is `local` with type=ext4 and device=<volume>.dev: the link's path never changes, so the
// volume's options stay right when a reboot hands out other loop numbers; cattery re-attaches and re-points the
// link (ensureSizedVolume) before it starts a container, and at start it first drops every link that no longer
// points at its own image (sweepStaleLinks), so a container restarted by Docker's restart policy after a reboot
// finds no device rather than another instance's.
import fs from 'node:fs';
import path from 'node:path';
import { fail } from '../errors.js';
import { ensureVolume, type Engine } from './docker/engine.js';
import { ExecError, hostExec } from './host-exec.js';

const MiB = 1024 * 1024;
// ext4 options: no blocks reserved for root (the service's root would otherwise get 5 % more than declared).
// noinit_itable: the kernel does not zero inode tables in the background after the first mount (mkfs left them
// lazily initialised), which would write ~1.5 % of the declared size to the disk for nothing.
export const MOUNT_OPTIONS = 'nodev,nosuid,noinit_itable';

export interface VolumeFiles { image: string; link: string }

export function volumeFiles(dir: string, volume: string): VolumeFiles {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(volume)) throw fail('CATTERY_ERR_VALIDATION', `volume name ${volume}`);
  return { image: path.join(dir, `${volume}.ext4`), link: path.join(dir, `${volume}.dev`) };
}

function ensureDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
}

function wrap(what: string, err: unknown): never {
  if (err instanceof ExecError) throw fail('CATTERY_ERR_ENGINE', `${what}: ${err.message}`, err);
  throw err;
}

/** The loop device this image is attached to, read from the kernel (/sys), or null. */
export function attachedLoop(image: string): string | null {
  let real: string;
  try { real = fs.realpathSync(image); } catch { return null; }
  for (const dev of fs.readdirSync('/sys/block').filter((d) => /^loop\d+$/.test(d))) {
    let back = '';
    try { back = fs.readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8').trim(); } catch { continue; }
    if (back === real) return `/dev/${dev}`;
  }
  return null;
}

/** Idempotent: the image is attached to a loop device after this (--nooverlap reuses an existing attachment). */
export async function ensureLoop(image: string): Promise<string> {
  const found = attachedLoop(image);
  if (found) return found;
  try {
    return (await hostExec('losetup', ['--find', '--show', '--nooverlap', image])).trim();
  } catch (err) { return wrap(`attach ${path.basename(image)}`, err); }
}

function ensureLink(link: string, target: string): void {
  let cur: string | null = null;
  try { cur = fs.readlinkSync(link); } catch { /* none yet */ }
  if (cur === target) return;
  const tmp = `${link}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, link);
}

/** A new image: sparse, 0600, formatted, with no lost+found (Docker copies the image's folder, owner included, into
 * an empty volume only). Made under a temporary name and renamed, so a crash never leaves a half-made image. */
async function makeImage(image: string, sizeMb: number): Promise<void> {
  const tmp = `${image}.partial`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try { fs.ftruncateSync(fd, sizeMb * MiB); } finally { fs.closeSync(fd); }
  try {
    await hostExec('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1', tmp], 120_000);
    await hostExec('debugfs', ['-w', '-R', 'rmdir lost+found', tmp]);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    return wrap(`make ${path.basename(image)}`, err);
  }
  fs.renameSync(tmp, image);
}

/** The file system's own size, from its superblock (the image file may already be larger). */
async function fsSizeMb(image: string): Promise<number> {
  const out = await hostExec('dumpe2fs', ['-h', image]).catch((err: unknown) => wrap(`read ${path.basename(image)}`, err));
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(out)?.[1] ?? NaN);
  return Math.floor((field('Block count') * field('Block size')) / MiB);
}

function isMounted(...sources: string[]): boolean {
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[0]);
  return mounts.some((m) => m !== undefined && sources.includes(m));
}

/** Grow the file system to fill its device. Online while Docker has it mounted (the kernel needs CAP_SYS_RESOURCE
 * for that; without it the growth waits for the next time the volume is not mounted: a stop, an upgrade, a
 * reboot). Offline after a forced check otherwise, which e2fsck -p refuses to do on a mounted one. Returns false
 * when deferred. */
async function growFs(name: string, loop: string, link: string, log: Engine['log']): Promise<boolean> {
  if (isMounted(link, loop)) {
    try {
      await hostExec('resize2fs', [loop], 300_000);
      return true;
    } catch (err) {
      log.warn({ volume: name, err: (err as Error).message }, 'volume cannot grow while mounted here; it grows when next unmounted');
      return false;
    }
  }
  try {
    await hostExec('e2fsck', ['-f', '-p', loop], 300_000);
    await hostExec('resize2fs', [loop], 300_000);
  } catch (err) { wrap(`grow ${name}`, err); }
  return true;
}

/** Calls for one volume under way in this process: a restore beside an instance and the reconciler's pass may ask for
 * the same volume at once, and two makers of one image removed each other's half-made file (seen once in a
 * fresh-clone run: a rename's ENOENT). They go one after the other; the second finds the volume made. */
const underWay = new Map<string, Promise<void>>();

/** Idempotent: after this the volume exists on the engine, with our labels, backed by an image of sizeMb. */
export async function ensureSizedVolume(engine: Engine, dir: string, name: string, labels: Record<string, string>, sizeMb: number): Promise<void> {
  const key = path.join(dir, name);
  const next = (underWay.get(key) ?? Promise.resolve()).catch(() => undefined).then(() => ensureSizedVolumeNow(engine, dir, name, labels, sizeMb));
  underWay.set(key, next);
  try { await next; } finally { if (underWay.get(key) === next) underWay.delete(key); }
}

async function ensureSizedVolumeNow(engine: Engine, dir: string, name: string, labels: Record<string, string>, sizeMb: number): Promise<void> {
  ensureDir(dir);
  const { image, link } = volumeFiles(dir, name);
  if (!fs.existsSync(image)) await makeImage(image, sizeMb);
  fs.chmodSync(image, 0o600);
  const loop = await ensureLoop(image);
  ensureLink(link, loop);
  // The file's size is the largest ever declared: below it would be a shrink.
  const haveMb = Math.floor(fs.statSync(image).size / MiB);
  if (haveMb > sizeMb) {
    throw fail('CATTERY_ERR_CONFLICT', `volume ${name} holds ${haveMb} MB and the manifest now says ${sizeMb} MB: shrinking is refused (it could drop data); restore the size or move the data by archive`);
  }
  if (haveMb < sizeMb) {
    fs.truncateSync(image, sizeMb * MiB);
    await hostExec('losetup', ['--set-capacity', loop]).catch((err: unknown) => wrap(`grow ${name}`, err));
  }
  const fsMb = await fsSizeMb(image);
  if (fsMb < sizeMb && await growFs(name, loop, link, engine.log)) engine.log.info({ volume: name, fromMb: fsMb, toMb: sizeMb }, 'volume grown');
  const options = await ensureVolume(engine, name, labels, { DriverOpts: { type: 'ext4', device: link, o: MOUNT_OPTIONS } });
  if (options?.device !== link) {
    // Made before sizes were enforced: its data stays where it is, without a limit, until it is moved by archive.
    engine.log.warn({ volume: name }, 'volume predates size limits: its size is not enforced');
  }
}

/** Before an archive after a reboot: the image attached again, so that Docker can mount the volume. */
export async function reattachIfPresent(dir: string, name: string): Promise<void> {
  const { image, link } = volumeFiles(dir, name);
  if (!fs.existsSync(image)) return;
  ensureLink(link, await ensureLoop(image));
}

/** After the Docker volume is gone: detach, drop the link and the image (its data was archived or purged). */
export async function releaseSizedVolume(dir: string, name: string): Promise<void> {
  const { image, link } = volumeFiles(dir, name);
  fs.rmSync(link, { force: true });
  const loop = attachedLoop(image);
  if (loop) await hostExec('losetup', ['--detach', loop]).catch((err: unknown) => wrap(`detach ${name}`, err));
  fs.rmSync(image, { force: true });
}

/** At start: a link whose loop device is not attached to its own image any more (a reboot, a detach by hand) goes. */
export function sweepStaleLinks(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const dropped: string[] = [];
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.dev'))) {
    const link = path.join(dir, f);
    const image = path.join(dir, `${f.slice(0, -'.dev'.length)}.ext4`);
    let target = '';
    try { target = fs.readlinkSync(link); } catch { continue; }
    if (attachedLoop(image) !== target) { fs.rmSync(link, { force: true }); dropped.push(f); }
  }
  return dropped;
}

/** For tests' teardown: detach every loop device whose image lies under dir. */
export async function detachUnder(dir: string): Promise<void> {
  const root = fs.existsSync(dir) ? fs.realpathSync(dir) : path.resolve(dir);
  for (const dev of fs.existsSync('/sys/block') ? fs.readdirSync('/sys/block').filter((d) => /^loop\d+$/.test(d)) : []) {
    let back = '';
    try { back = fs.readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8').trim(); } catch { continue; }
    if (back.startsWith(`${root}/`)) await hostExec('losetup', ['--detach', `/dev/${dev}`]).catch(() => undefined);
  }
}
