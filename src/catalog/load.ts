// Loading services/<id>/service.json from each catalog folder. Errors name the file and the field, so that an
// administrator editing a manifest knows what to fix; a catalog with errors is refused whole at start.
import fs from 'node:fs';
import path from 'node:path';
import AjvModule from 'ajv';
import { fail } from '../errors.js';
import { ManifestSchema, type Manifest } from './manifest.js';
import { checkPolicy } from './policy.js';
import { checkEnvironment } from './env.js';
import { checkLinkTargets, checkLinks } from './links.js';
import { checkAccess } from './offer.js';

const Ajv = AjvModule.default ?? AjvModule;
const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
const validate = ajv.compile<Manifest>(ManifestSchema);

export interface CatalogService {
  manifest: Manifest;
  /** The folder holding service.json and the local build's Dockerfile. */
  dir: string;
}

export interface CatalogError { file: string; field: string; message: string; code: 'CATTERY_ERR_MANIFEST_INVALID' | 'CATTERY_ERR_MANIFEST_UNSAFE' }

export interface Catalog { services: Map<string, CatalogService>; errors: CatalogError[] }

function ajvMessage(e: { instancePath: string; keyword: string; message?: string; params: Record<string, unknown> }): string {
  if (e.keyword === 'additionalProperties') return `field "${String(e.params.additionalProperty)}" is not allowed here`;
  if (e.keyword === 'required') return `field "${String(e.params.missingProperty)}" is required`;
  return e.message ?? e.keyword;
}

export function parseManifest(file: string, text: string): { manifest?: Manifest; errors: CatalogError[] } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { errors: [{ file, field: '/', message: `not valid JSON: ${(err as Error).message}`, code: 'CATTERY_ERR_MANIFEST_INVALID' }] };
  }
  if (!validate(data)) {
    // anyOf/oneOf branches repeat each other; keep one message per field and keyword.
    const seen = new Set<string>();
    const errors: CatalogError[] = [];
    for (const e of validate.errors ?? []) {
      const field = e.keyword === 'required' ? `${e.instancePath}/${String(e.params.missingProperty)}` : e.instancePath || '/';
      const message = ajvMessage(e);
      if (seen.has(field + message)) continue;
      seen.add(field + message);
      errors.push({ file, field, message, code: 'CATTERY_ERR_MANIFEST_INVALID' });
    }
    return { errors };
  }
  const unsafe = [
    ...checkPolicy(data).map((v) => ({ file, ...v, code: 'CATTERY_ERR_MANIFEST_UNSAFE' as const })),
    ...checkEnvironment(data).map((v) => ({ file, ...v })),
    ...checkLinks(data).map((v) => ({ file, ...v, code: 'CATTERY_ERR_MANIFEST_INVALID' as const })),
    ...checkAccess(data).map((v) => ({ file, ...v, code: 'CATTERY_ERR_MANIFEST_INVALID' as const })),
    ...checkDumpExcludes(data).map((v) => ({ file, ...v, code: 'CATTERY_ERR_MANIFEST_INVALID' as const })),
  ];
  return unsafe.length ? { errors: unsafe } : { manifest: data, errors: [] };
}

/** A dump's excludes name live files inside one of the service's own volumes: a path that climbs out, or names no
 * volume, would leave out what the dump does not stand for. */
export function checkDumpExcludes(m: Manifest): { field: string; message: string }[] {
  const volumes = new Set(m.volumes.map((v) => v.name));
  return (m.backup?.dump?.exclude ?? []).flatMap((p, i) => {
    const [vol, ...rest] = p.split('/');
    if (!volumes.has(vol!)) return [{ field: `/backup/dump/exclude/${i}`, message: `${p}: no volume named ${vol}` }];
    if (rest.some((seg) => seg === '' || seg === '.' || seg === '..')) return [{ field: `/backup/dump/exclude/${i}`, message: `${p}: a path inside the volume, without empty, . or .. segments` }];
    return [];
  });
}

export function loadCatalog(dirs: readonly string[]): Catalog {
  const services = new Map<string, CatalogService>();
  const errors: CatalogError[] = [];
  for (const root of dirs) {
    if (!fs.existsSync(root)) {
      errors.push({ file: root, field: '/', message: 'catalog folder does not exist', code: 'CATTERY_ERR_MANIFEST_INVALID' });
      continue;
    }
    for (const entry of fs.readdirSync(root, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!entry.isDirectory()) continue;
      const dir = path.join(root, entry.name);
      const file = path.join(dir, 'service.json');
      if (!fs.existsSync(file)) continue;
      const { manifest, errors: errs } = parseManifest(file, fs.readFileSync(file, 'utf8'));
      errors.push(...errs);
      if (!manifest) continue;
      const bad = (field: string, message: string) => errors.push({ file, field, message, code: 'CATTERY_ERR_MANIFEST_INVALID' });
      if (manifest.id !== entry.name) { bad('/id', `id "${manifest.id}" must equal its folder name "${entry.name}"`); continue; }
      if (services.has(manifest.id)) { bad('/id', `service "${manifest.id}" is defined twice`); continue; }
      if (!fs.existsSync(path.join(dir, manifest.image.local.dockerfile))) {
        bad('/image/local/dockerfile', `${manifest.image.local.dockerfile} not found beside service.json`);
        continue;
      }
      const missing = (manifest.image.local.shared ?? []).filter((f) => !fs.existsSync(path.join(root, '_shared', f)));
      if (missing.length) { bad('/image/local/shared', `not found in ${path.join(root, '_shared')}: ${missing.join(', ')}`); continue; }
      services.set(manifest.id, { manifest, dir });
    }
  }
  // Links name other services: checked once every folder is read (a link may point into another catalog folder).
  const manifests = new Map([...services].map(([id, s]) => [id, s.manifest]));
  for (const [id, { manifest, dir }] of [...services]) {
    const problems = checkLinkTargets(manifest, manifests);
    if (!problems.length) continue;
    errors.push(...problems.map((p) => ({ file: path.join(dir, 'service.json'), ...p, code: 'CATTERY_ERR_MANIFEST_INVALID' as const })));
    services.delete(id);
  }
  return { services, errors };
}

export function formatCatalogErrors(errors: CatalogError[]): string {
  return errors.map((e) => `${e.file}: ${e.field}: ${e.message} [${e.code}]`).join('\n');
}

/** The catalog in these folders, or CATTERY_ERR_MANIFEST_INVALID naming every error: what `cattery serve` and
 * `cattery images build` run on. */
export function loadValidCatalog(dirs: readonly string[]): Catalog {
  const catalog = loadCatalog(dirs);
  if (catalog.errors.length) throw fail('CATTERY_ERR_MANIFEST_INVALID', `the catalog has errors:\n${formatCatalogErrors(catalog.errors)}`);
  return catalog;
}
