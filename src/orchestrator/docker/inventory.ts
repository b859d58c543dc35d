// What housekeeping (orchestrator/housekeeping.ts) reads from and removes on an engine: this hoster's volumes with
// their creation time, the containers that use a volume, the images and the images containers use. Every removal
// here is one Docker refuses while a container still uses the object (a volume in use, an image a container was
// made from answer 409): the engine's own check stands behind cattery's.
import { LABEL_HOSTER, call, isOurs, statusOf, type Engine } from './engine.js';

export interface VolumeInfo {
  name: string;
  labels: Record<string, string>;
  /** As the engine says it (RFC 3339). */
  createdAt: string;
}

/** This hoster's volumes (label filter, then the label checked again: a filter is the engine's word, not ours). */
export async function listOurVolumes(engine: Engine): Promise<VolumeInfo[]> {
  const vols = await call(engine, 'list volumes', (d) => d.listVolumes({ filters: { label: [`${LABEL_HOSTER}=${engine.hosterId}`] } }));
  return (vols.Volumes ?? [])
    .map((v) => ({ name: v.Name, labels: (v.Labels ?? {}) as Record<string, string>, createdAt: (v as { CreatedAt?: string }).CreatedAt ?? '' }))
    .filter((v) => isOurs(engine, v.labels));
}

/** One volume of this hoster's, or undefined when the engine has none of that name or it is not ours. */
export async function findOurVolume(engine: Engine, name: string): Promise<VolumeInfo | undefined> {
  const v = await call(engine, `inspect volume ${name}`, (d) => d.getVolume(name).inspect()).catch((err) => {
    if (statusOf(err) === 404) return undefined;
    throw err;
  });
  if (!v || !isOurs(engine, v.Labels as Record<string, string> | undefined)) return undefined;
  return { name: v.Name, labels: (v.Labels ?? {}) as Record<string, string>, createdAt: (v as { CreatedAt?: string }).CreatedAt ?? '' };
}

/** Every container that mounts this volume, running or not, whoever made it. */
export async function containersUsingVolume(engine: Engine, name: string): Promise<{ id: string; name: string }[]> {
  const list = await call(engine, `list containers using ${name}`, (d) => d.listContainers({ all: true, filters: { volume: [name] } }));
  // The filter matches by name or by mount point: the mounts are read back to keep only real users of this volume.
  return list.filter((c) => (c.Mounts ?? []).some((m) => m.Name === name)).map((c) => ({ id: c.Id, name: c.Names[0] ?? c.Id }));
}

/** Removing a volume: Docker refuses (409) while any container mounts it. */
export async function removeVolume(engine: Engine, name: string): Promise<void> {
  await call(engine, `remove volume ${name}`, (d) => d.getVolume(name).remove());
}

export interface ImageInfo { id: string; tags: string[]; size: number; created: number }

/** Every tagged image on the engine. */
export async function listImages(engine: Engine): Promise<ImageInfo[]> {
  const list = await call(engine, 'list images', (d) => d.listImages());
  return list.map((i) => ({ id: i.Id, tags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'), size: i.Size, created: i.Created }));
}

/** What every container on the engine (running or not, anyone's) was made from: its image reference and image id. */
export async function imagesInUse(engine: Engine): Promise<{ refs: Set<string>; ids: Set<string> }> {
  const list = await call(engine, 'list containers', (d) => d.listContainers({ all: true }));
  return { refs: new Set(list.map((c) => c.Image)), ids: new Set(list.map((c) => c.ImageID)) };
}

/** Untag one reference (the image goes with its last tag). Without force: Docker refuses while a container uses it. */
export async function removeImageRef(engine: Engine, ref: string): Promise<void> {
  await call(engine, `remove image ${ref}`, (d) => d.getImage(ref).remove());
}
