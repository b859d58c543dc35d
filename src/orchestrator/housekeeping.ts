// Housekeeping an administrator asks for, never run on its own: volumes whose instance has no row (a deleted row, a
// crash between steps, a database restored from before the volume) are listed, archived and dropped; hash-tagged
// images nothing uses any more are collected. The reconciler keeps such volumes on purpose (instance-pass.ts
// sweepOrphans): a drop is a person's decision, after an archive unless they say `force`.
import fs from 'node:fs';
import path from 'node:path';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { instances, type Server } from '../db/schema.js';
import { fail, type CatteryError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  LABEL_INSTANCE, LABEL_ROLE, LABEL_SERVICE, SYSTEM_IMAGES, archiveVolumeTo, baseImageRef, containersUsingVolume, findOurVolume,
  imageExists, imagesInUse, isLocalEndpoint, listImages, listOurVolumes, removeImageRef, removeVolume, serviceImageRef, statusOf,
  systemImage, type Engine, type VolumeInfo,
} from './docker/index.js';
import { VOLUME_DROP, begin, finish, journal, lastDoneWith } from './journal.js';
import { listServers } from './servers.js';
import { releaseSizedVolume, reattachIfPresent, volumeFiles } from './sized-volumes.js';

export interface HousekeepingDeps {
  db: Db;
  catalog: Catalog;
  hosterId: string;
  engineFor: (server: Server) => Engine;
  /** data/backups: where archives go (0700). */
  backupsDir: string;
  /** data/volumes: the images of sized volumes (sized-volumes.ts), on this host's engine only. */
  volumesDir: string;
  log: Logger;
}

/** A Docker volume name as cattery makes them (`<hoster>-<slug>-<volume>`), and as Docker allows them. */
export const VOLUME_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$';

export interface OrphanVolume {
  server: string;
  /** The Docker volume's name. */
  name: string;
  /** The instance it was made for, from its labels. */
  slug: string;
  service: string | null;
  /** The manifest's name for it (`data`…), when the Docker name has the usual shape. */
  volume: string | null;
  createdAt: string;
  /** A sized volume's declared size and what its image takes on the disk; null when not known cheaply. */
  sizeBytes: number | null;
  usedBytes: number | null;
  /** The newest archive made of it since it was created, when its file is still there. */
  archive: { file: string; at: string; bytes: number } | null;
}

/** The slugs whose row claims this volume: the one its label names, and every slug an instance's volume names
 * (`<hoster>-<slug>-<volume>`) could begin with, since such an instance's ensureVolume adopts a volume of that
 * name. Cautious on purpose: `a`'s row keeps `<hoster>-a-b-data` out of the orphans even when the label says `a-b`. */
export function claimantsOf(hosterId: string, name: string, labelSlug: string): string[] {
  const out = new Set([labelSlug]);
  const prefix = `${hosterId}-`;
  if (name.startsWith(prefix)) {
    const rest = name.slice(prefix.length);
    for (let i = rest.indexOf('-'); i > 0; i = rest.indexOf('-', i + 1)) out.add(rest.slice(0, i));
  }
  return [...out].filter(Boolean);
}

/** The slugs that have a row, whatever its desired state: a delete still under way claims its volumes too. */
function slugsWithRows(db: Db): Set<string> {
  return new Set(db.select({ slug: instances.slug }).from(instances).all().map((r) => r.slug));
}

/** An instance's volume (its label names one), not a helper's or the front door's. */
const isInstanceVolume = (v: VolumeInfo) => Boolean(v.labels[LABEL_INSTANCE]) && v.labels[LABEL_ROLE] === undefined;

const claimedBy = (deps: HousekeepingDeps, v: VolumeInfo, slugs: Set<string>) =>
  claimantsOf(deps.hosterId, v.name, v.labels[LABEL_INSTANCE]!).filter((s) => slugs.has(s));

const iso = (t: string) => {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? new Date(0).toISOString() : d.toISOString();
};

/** The newest successful archive of this volume made since the volume was created, if its file is still there. */
function lastArchive(deps: HousekeepingDeps, v: VolumeInfo): OrphanVolume['archive'] {
  const e = lastDoneWith(deps.db, v.labels[LABEL_INSTANCE]!, 'volume-archive', { volume: v.name }, iso(v.createdAt));
  const file = typeof e?.detail?.file === 'string' ? e.detail.file : undefined;
  if (!e || !file || !fs.existsSync(file)) return null;
  return { file, at: e.finishedAt ?? e.createdAt, bytes: fs.statSync(file).size };
}

function sizedFiles(deps: HousekeepingDeps, server: Server, name: string) {
  if (!isLocalEndpoint(server.dockerEndpoint)) return undefined;
  const files = volumeFiles(deps.volumesDir, name);
  return fs.existsSync(files.image) ? files : undefined;
}

function describe(deps: HousekeepingDeps, server: Server, v: VolumeInfo): OrphanVolume {
  const slug = v.labels[LABEL_INSTANCE]!;
  const prefix = `${deps.hosterId}-${slug}-`;
  const files = sizedFiles(deps, server, v.name);
  const st = files ? fs.statSync(files.image) : undefined;
  return {
    server: server.name, name: v.name, slug, service: v.labels[LABEL_SERVICE] ?? null,
    volume: v.name.startsWith(prefix) ? v.name.slice(prefix.length) : null, createdAt: v.createdAt,
    sizeBytes: st ? st.size : null, usedBytes: st ? st.blocks * 512 : null, archive: lastArchive(deps, v),
  };
}

/** Every volume of this hoster's on every server that no instance row claims. The engine is read first and the
 * rows second: a volume made for a row created meanwhile is then seen with its row. */
export async function listOrphanVolumes(deps: HousekeepingDeps): Promise<OrphanVolume[]> {
  const out: OrphanVolume[] = [];
  for (const server of listServers(deps.db)) {
    const vols = await listOurVolumes(deps.engineFor(server));
    const slugs = slugsWithRows(deps.db);
    for (const v of vols) if (isInstanceVolume(v) && claimedBy(deps, v, slugs).length === 0) out.push(describe(deps, server, v));
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The orphan volume of that name (on `server` when given), or a refusal that says why it is not one. */
async function findOrphan(deps: HousekeepingDeps, name: string, serverName?: string): Promise<{ server: Server; engine: Engine; v: VolumeInfo }> {
  const servers = listServers(deps.db).filter((s) => serverName === undefined || s.name === serverName);
  if (serverName !== undefined && servers.length === 0) throw fail('CATTERY_ERR_NOT_FOUND', `No server named "${serverName}"`);
  const hits: { server: Server; engine: Engine; v: VolumeInfo }[] = [];
  for (const server of servers) {
    const engine = deps.engineFor(server);
    const v = await findOurVolume(engine, name);
    if (v) hits.push({ server, engine, v });
  }
  if (hits.length === 0) throw fail('CATTERY_ERR_NOT_FOUND', `No volume "${name}" of this hoster`);
  if (hits.length > 1) throw fail('CATTERY_ERR_CONFLICT', `Volume "${name}" exists on ${hits.map((h) => h.server.name).join(', ')}: name the server`);
  const hit = hits[0]!;
  if (!isInstanceVolume(hit.v)) throw fail('CATTERY_ERR_NOT_FOUND', `Volume "${name}" is not an instance's`);
  const by = claimedBy(deps, hit.v, slugsWithRows(deps.db));
  if (by.length) throw fail('CATTERY_ERR_VOLUME_CLAIMED', `${name} belongs to instance ${by.join(', ')}`);
  return hit;
}

/** Any image on the engine lends the helper its file system (nothing runs): the service's, the Debian base, or
 * whatever tagged image is there. */
async function helperImage(deps: HousekeepingDeps, engine: Engine, v: VolumeInfo): Promise<string> {
  const svc = deps.catalog.services.get(v.labels[LABEL_SERVICE] ?? '');
  for (const ref of [...(svc ? [serviceImageRef(svc)] : []), baseImageRef()]) if (await imageExists(engine, ref)) return ref;
  const any = (await listImages(engine)).find((i) => i.tags.length)?.tags[0];
  if (!any) throw fail('CATTERY_ERR_IMAGE_MISSING', 'any image to read the volume with');
  return any;
}

export interface ActOptions { actor: string; server?: string | undefined }

/** The volume's content to data/backups/<volume>-<time>.tar.gz (0600), journaled as `volume-archive`. */
export async function archiveOrphanVolume(deps: HousekeepingDeps, name: string, opts: ActOptions): Promise<{ file: string; bytes: number }> {
  const { server, engine, v } = await findOrphan(deps, name, opts.server);
  const slug = v.labels[LABEL_INSTANCE]!;
  const image = await helperImage(deps, engine, v);
  // After a reboot a sized volume's image is not attached: Docker needs the device to mount it.
  if (sizedFiles(deps, server, name)) await reattachIfPresent(deps.volumesDir, name);
  const file = path.join(deps.backupsDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.tar.gz`);
  const id = begin(deps.db, { slug, kind: 'volume-archive', actor: opts.actor, detail: { volume: name, server: server.name, file } });
  try {
    const bytes = await archiveVolumeTo(engine, { volume: name, slug, image, file });
    finish(deps.db, id, { status: 'done', detail: { volume: name, server: server.name, file, bytes } });
    deps.log.info({ volume: name, file, bytes, actor: opts.actor }, 'orphan volume archived');
    return { file, bytes };
  } catch (err) {
    finish(deps.db, id, { status: 'failed', error: (err as Error).message });
    throw err;
  }
}

/** Remove the volume (and its image when sized), journaled as `volume-drop`. Refused unless archived since it was
 * created or `force` is given; while a container uses it; and when a row claims it, checked again in the transaction
 * that records the drop's claim (journal.ts VOLUME_DROP), which a new instance of a claiming slug then waits for. */
export async function dropOrphanVolume(deps: HousekeepingDeps, name: string, opts: ActOptions & { force?: boolean }): Promise<void> {
  const { server, engine, v } = await findOrphan(deps, name, opts.server);
  const slug = v.labels[LABEL_INSTANCE]!;
  const archive = lastArchive(deps, v);
  if (!archive && !opts.force) throw fail('CATTERY_ERR_VOLUME_NOT_ARCHIVED', name);
  const claimants = claimantsOf(deps.hosterId, name, slug);
  const id = deps.db.transaction((tx) => {
    const db = tx as unknown as Db;
    const by = claimants.filter((s) => slugsWithRows(db).has(s));
    if (by.length) throw fail('CATTERY_ERR_VOLUME_CLAIMED', `${name} belongs to instance ${by.join(', ')}`);
    return begin(db, {
      slug, kind: VOLUME_DROP.kind, actor: opts.actor,
      detail: { volume: name, server: server.name, claimedBy: claimants, force: opts.force === true, archive: archive?.file ?? null },
    });
  });
  try {
    const users = await containersUsingVolume(engine, name);
    if (users.length) throw fail('CATTERY_ERR_VOLUME_IN_USE', `${name}: ${users.map((u) => u.name).join(', ')}`);
    await removeVolume(engine, name).catch((err: unknown) => {
      // A container made between the look and the removal: Docker's own refusal says the same.
      if (statusOf(err) === 409) throw fail('CATTERY_ERR_VOLUME_IN_USE', name, err);
      throw err;
    });
    if (sizedFiles(deps, server, name)) await releaseSizedVolume(deps.volumesDir, name);
    finish(deps.db, id, { status: 'done' });
    deps.log.info({ volume: name, actor: opts.actor, force: opts.force === true }, 'orphan volume dropped');
  } catch (err) {
    finish(deps.db, id, { status: 'failed', error: (err as CatteryError).message });
    throw err;
  }
}

/** `cattery/<service>:<12 hex>`: what images.ts tags a service's build with. */
const HASH_TAGGED = /^cattery\/([a-z0-9][a-z0-9_.-]*):([0-9a-f]{12})$/;

export interface ImageCandidate {
  server: string;
  ref: string;
  id: string;
  /** The image's size when this is its last tag (shared layers included), else 0: untagging frees nothing. */
  bytes: number;
  created: string;
  removed?: boolean;
  error?: string;
}

/** The hash-tagged images that no catalog service or system image builds today, no instance row names and no
 * container (running or not, anyone's) was made from; removed with `apply` (without force: Docker refuses an image
 * a container still uses). `only` limits it to those services' images. Images carry no hoster label: on an engine
 * shared by several hosters, run it where the catalogs agree. */
export async function collectImages(
  deps: HousekeepingDeps, opts: { apply?: boolean; only?: string[]; actor: string },
): Promise<{ applied: boolean; images: ImageCandidate[]; bytes: number }> {
  const current = new Set([
    baseImageRef(),
    ...[...deps.catalog.services.values()].map((s) => serviceImageRef(s)),
    ...SYSTEM_IMAGES.map((id) => serviceImageRef(systemImage(id))),
  ]);
  const images: ImageCandidate[] = [];
  for (const server of listServers(deps.db)) {
    const engine = deps.engineFor(server);
    // The engine first, the rows second (as the reconciler): an instance created meanwhile shows in the rows.
    const [all, used] = await Promise.all([listImages(engine), imagesInUse(engine)]);
    const named = new Set(deps.db.select({ image: instances.image }).from(instances).all().map((r) => r.image));
    for (const img of all) {
      if (used.ids.has(img.id)) continue;
      const gone = img.tags.filter((ref) => {
        const m = HASH_TAGGED.exec(ref);
        return m && !current.has(ref) && !named.has(ref) && !used.refs.has(ref) && (!opts.only || opts.only.includes(m[1]!));
      });
      const last = gone.length === img.tags.length;
      gone.forEach((ref, i) => images.push({
        server: server.name, ref, id: img.id, bytes: last && i === 0 ? img.size : 0, created: new Date(img.created * 1000).toISOString(),
      }));
    }
    if (!opts.apply) continue;
    for (const c of images.filter((x) => x.server === server.name)) {
      try {
        await removeImageRef(engine, c.ref);
        c.removed = true;
        journal(deps.db, { slug: '', kind: 'image-remove', actor: opts.actor, status: 'done', detail: { ref: c.ref, server: server.name, bytes: c.bytes } });
      } catch (err) {
        // One refusal (a container made from it meanwhile) leaves the others to go.
        c.error = (err as Error).message;
        journal(deps.db, { slug: '', kind: 'image-remove', actor: opts.actor, status: 'failed', detail: { ref: c.ref, server: server.name }, error: c.error });
      }
    }
  }
  const counted = images.filter((c) => !opts.apply || c.removed);
  return { applied: opts.apply === true, images, bytes: counted.reduce((n, c) => n + c.bytes, 0) };
}
