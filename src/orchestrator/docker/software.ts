// What software an image holds, read once when the image is built (or first seen built) and kept beside cattery's
// data as a JSON file named by the image's tag: the Debian packages as dpkg knows them inside the image, and the npm
// packages of the service's package-lock.json. Raw facts only; whether a licence is free is judged when the page is
// drawn (publication/transparency-software.ts), so that a better licence list needs no rebuild.
//
// Why a file and not a table: images are built by `cattery images build`, which may run before any database exists
// or beside a running `cattery serve`; an image's tag is the hash of its inputs, so a file named by that tag is true
// for as long as the image is, exactly like the image cache. It is public by design (the transparency page shows
// it): 0644 in 0755 folders.
import fs from 'node:fs';
import path from 'node:path';
import { fail } from '../../errors.js';
import { call, type Engine } from './engine.js';
import type { BuildUnit } from './images.js';
import { runOneShot } from './one-shot.js';

export interface DebianPackage {
  name: string; version: string; source: string; sourceVersion: string; section: string;
  /** `dep5`: /usr/share/doc/<pkg>/copyright is machine-readable and `licenses` are its License: short names;
   * `other`: a free-form file (no names read); `none`: no copyright file in the image (docs removed). */
  copyright: 'dep5' | 'other' | 'none';
  licenses: string[];
}
export interface NpmPackage {
  name: string; version: string; license: string | null;
  /** A development package of a service whose image holds a bundle built from them (pads' editor): its code may be
   * in what the browser receives, so it is listed too, marked. */
  build?: true;
}

export interface SoftwareInventory {
  service: string;
  image: string;
  imageId: string;
  imageCreated: string;
  inventoriedAt: string;
  debian: DebianPackage[];
  npm: NpmPackage[];
}

export const softwareDir = (dataDir: string) => path.join(dataDir, 'software');
export const REF = /^cattery\/([a-z][a-z0-9-]{0,40}):([0-9a-f]{12})$/;

export function inventoryFile(dir: string, ref: string): string {
  const m = REF.exec(ref);
  if (!m) throw fail('CATTERY_ERR_BUILD', `not one of cattery's image names: ${ref.slice(0, 80)}`);
  return path.join(dir, m[1]!, `${m[2]}.json`);
}

// Run inside the image, as the image's own /bin/sh (dash in Debian, busybox in the probe): one tab-separated line per
// package (P), then per package its copyright file's kind (C) and License: lines (L). dpkg-query's ${…} fields are
// written for dpkg, not for this file's template literals: the script is a plain string.
const SCRIPT = [
  'command -v dpkg-query >/dev/null 2>&1 || exit 0',
  "dpkg-query -W -f='P\\t${Package}\\t${Version}\\t${source:Package}\\t${source:Version}\\t${Section}\\n'",
  "for p in $(dpkg-query -W -f='${Package}\\n'); do",
  '  f="/usr/share/doc/$p/copyright"',
  '  if [ ! -f "$f" ]; then printf "C\\t%s\\tnone\\n" "$p"; continue; fi',
  // DEP-5: the first paragraph has a Format: field naming the copyright format (1.0, or the older dep5 drafts).
  '  if sed -n "1,/^[[:space:]]*$/p" "$f" | grep -qiE "^Format(-Specification)?:.*(copyright-format|dep5)"; then',
  '    printf "C\\t%s\\tdep5\\n" "$p"; grep -E "^License:" "$f" | sed "s/^License:[[:space:]]*/L\\t/"',
  '  else printf "C\\t%s\\tother\\n" "$p"; fi',
  'done',
].join('\n');

/** Parse the script's output (exported for a unit test of odd lines). */
export function parseDpkgOutput(out: string): DebianPackage[] {
  const byName = new Map<string, DebianPackage>();
  let current: DebianPackage | undefined;
  for (const line of out.split('\n')) {
    const f = line.split('\t');
    if (f[0] === 'P' && f.length >= 6 && f[1]) {
      byName.set(f[1], { name: f[1], version: f[2] ?? '', source: f[3] || f[1], sourceVersion: f[4] || f[2] || '', section: f[5] ?? '', copyright: 'none', licenses: [] });
    } else if (f[0] === 'C') {
      current = byName.get(f[1] ?? '');
      if (current) current.copyright = f[2] === 'dep5' ? 'dep5' : f[2] === 'other' ? 'other' : 'none';
    } else if (f[0] === 'L' && current) {
      const name = f.slice(1).join(' ').trim();
      if (name && !current.licenses.includes(name)) current.licenses.push(name);
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** The npm packages a service ships: package-lock.json (v2/v3 `packages`). Development ones are left out (the image
 * is built with --omit=dev, or pruned so), except where a build script bundles them into a file the image serves
 * (images.ts runs `npm run build` then), where they are kept, marked `build`. */
export function npmPackagesOf(dir: string): NpmPackage[] {
  const file = path.join(dir, 'package-lock.json');
  if (!fs.existsSync(file)) return [];
  const pkgFile = path.join(dir, 'package.json');
  const bundles = fs.existsSync(pkgFile) && Boolean((JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { scripts?: Record<string, string> }).scripts?.build);
  // The lockfile is the service's own file, but read as data: any field of the wrong type is left out or refused
  // with a clear error, never a TypeError in the middle of `images build`.
  const lock = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  const packages = (lock as { packages?: unknown } | null)?.packages;
  if (packages === undefined) return [];
  if (typeof packages !== 'object' || packages === null || Array.isArray(packages)) throw fail('CATTERY_ERR_BUILD', `${file}: "packages" is not an object`);
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const out: NpmPackage[] = [];
  for (const [key, raw] of Object.entries(packages as Record<string, unknown>)) {
    if (typeof raw !== 'object' || raw === null) continue;
    const p = raw as Record<string, unknown>;
    if (key === '' || (p.dev === true && !bundles) || p.link === true || !key.includes('node_modules/')) continue;
    const name = str(p.name) ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    out.push({ name, version: str(p.version) ?? '', license: str(p.license) ?? null, ...(p.dev === true ? { build: true as const } : {}) });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

/** Read the image's software in a throwaway container (no network, read-only, no capability) and write its file. */
export async function inventoryImage(engine: Engine, unit: BuildUnit, ref: string, dir: string): Promise<SoftwareInventory> {
  const info = await call(engine, `inspect image ${ref}`, (d) => d.getImage(ref).inspect());
  const tag = REF.exec(ref)?.[2] ?? 'x';
  const r = await runOneShot(engine, {
    name: `${engine.hosterId}--software-${unit.manifest.id}-${tag}`, image: ref, entrypoint: ['/bin/sh', '-c'], argv: [SCRIPT],
    mounts: [], network: 'none', timeoutMs: 120_000, role: 'software', maxStdoutBytes: 8 * 1024 * 1024,
  });
  // A list cut at the cap would be published as the image's whole software: refused instead.
  if (r.truncated) throw fail('CATTERY_ERR_BUILD', `reading the packages of ${ref}: more than 8 MiB of package list`);
  if (r.timedOut || r.exitCode !== 0) throw fail('CATTERY_ERR_BUILD', `reading the packages of ${ref}: exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''} ${r.stderr.slice(-300)}`);
  const inv: SoftwareInventory = {
    service: unit.manifest.id, image: ref, imageId: info.Id, imageCreated: info.Created, inventoriedAt: new Date().toISOString(),
    debian: parseDpkgOutput(r.stdout), npm: npmPackagesOf(unit.dir),
  };
  const file = inventoryFile(dir, ref);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  // Written aside then renamed: a reader never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(inv, null, 1)}\n`, { mode: 0o644 });
  fs.chmodSync(tmp, 0o644);
  fs.renameSync(tmp, file);
  return inv;
}

/** The inventory of an image, made if this data folder has none yet for that exact tag. */
export async function ensureInventory(engine: Engine, unit: BuildUnit, ref: string, dir: string): Promise<void> {
  if (fs.existsSync(inventoryFile(dir, ref))) return;
  await inventoryImage(engine, unit, ref, dir);
}

export function readInventory(dir: string, ref: string): SoftwareInventory | undefined {
  const file = inventoryFile(dir, ref);
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as SoftwareInventory;
}
