// The software in every image cattery runs, as the transparency page shows it: per catalog service and per image of
// cattery's own (the front door, backups), the image read at build time (orchestrator/docker/software.ts), each
// package with its version, its licences and a verdict (publication/licences.ts). An image never inventoried (built
// before this existed, or not built here) says so instead of guessing.
import type { Catalog } from '../catalog/load.js';
import { SYSTEM_IMAGES, readInventory, serviceImageRef, systemImage, type BuildUnit, type SoftwareInventory } from '../orchestrator/docker/index.js';
import { debianNames, debianToSpdx, debianVerdict, npmVerdict, osiApproved, type Verdict } from './licences.js';

export interface PackageLine {
  kind: 'debian' | 'npm';
  /** npm: a development package a bundle is built from (docker/software.ts). */
  build: boolean;
  name: string; version: string; source: string; section: string;
  /** As written by the package (Debian short names or an SPDX expression). */
  licences: string[];
  /** How many of those names are OSI-approved SPDX licences. */
  osi: number;
  verdict: Verdict;
}

export interface ImageSoftware {
  service: string; own: boolean; image: string;
  inventory: { imageId: string; imageCreated: string; inventoriedAt: string } | null;
  packages: PackageLine[];
  counts: { debian: number; npm: number; free: number; nonfree: number; unverified: number; dep5: number };
}

export function packageLines(inv: SoftwareInventory): PackageLine[] {
  const deb = inv.debian.map((p): PackageLine => {
    const names = p.licenses.flatMap(debianNames);
    return {
      kind: 'debian', build: false, name: p.name, version: p.version, source: p.source, section: p.section, licences: p.licenses,
      osi: names.filter((n) => { const id = debianToSpdx(n); return id !== undefined && osiApproved(id); }).length,
      verdict: debianVerdict(p.section),
    };
  });
  const npm = inv.npm.map((p): PackageLine => ({
    kind: 'npm', build: p.build === true, name: p.name, version: p.version, source: p.name, section: '', licences: p.license ? [p.license] : [],
    osi: p.license && npmVerdict(p.license) === 'free' ? 1 : 0, verdict: npmVerdict(p.license),
  }));
  return [...deb, ...npm];
}

function one(unit: BuildUnit, own: boolean, dir: string): ImageSoftware {
  const image = serviceImageRef(unit);
  const inv = readInventory(dir, image);
  const packages = inv ? packageLines(inv) : [];
  const count = (v: Verdict) => packages.filter((p) => p.verdict === v).length;
  return {
    service: unit.manifest.id, own, image,
    inventory: inv ? { imageId: inv.imageId, imageCreated: inv.imageCreated, inventoriedAt: inv.inventoriedAt } : null,
    packages,
    counts: {
      debian: inv?.debian.length ?? 0, npm: inv?.npm.length ?? 0, free: count('free'), nonfree: count('nonfree'), unverified: count('unverified'),
      dep5: inv?.debian.filter((p) => p.copyright === 'dep5').length ?? 0,
    },
  };
}

/** Every image: the catalog's services first (in the catalog's order), then cattery's own. */
export function softwareByImage(catalog: Catalog, dir: string): ImageSoftware[] {
  return [
    ...[...catalog.services.values()].map((u) => one(u, false, dir)),
    ...SYSTEM_IMAGES.map((id) => one(systemImage(id), true, dir)),
  ];
}

export function softwareTotals(images: ImageSoftware[]) {
  const sum = (k: keyof ImageSoftware['counts']) => images.reduce((a, i) => a + i.counts[k], 0);
  return {
    images: images.length, inventoried: images.filter((i) => i.inventory).length,
    debian: sum('debian'), npm: sum('npm'), nonfree: sum('nonfree'), unverified: sum('unverified'),
  };
}
