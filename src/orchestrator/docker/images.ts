// Local images, built from the Debian archive only: no registry is contacted. The Debian base comes from
// debootstrap + import; each service's image is a `docker build` of its folder, tagged by a hash of its inputs so
// that an unchanged service is never rebuilt.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import tar from 'tar-fs';
import { fileURLToPath } from 'node:url';
import type { Catalog } from '../../catalog/load.js';
import type { Manifest } from '../../catalog/manifest.js';
import { fail } from '../../errors.js';
import { LABEL_SERVICE, imageExists, translateDockerError, type Engine } from './engine.js';
import { ensureInventory } from './software.js';

export const BUSYBOX_PATH = '/bin/busybox';
const SUITE = 'bookworm';

/** What defines the base image; the mirror is left out: any mirror of the archive gives the same system. */
const BASE_RECIPE = { suite: SUITE, variant: 'minbase', cleanup: ['var/cache/apt/archives', 'var/lib/apt/lists'] };

function sha(parts: (string | Buffer)[]): string {
  const h = crypto.createHash('sha256');
  for (const p of parts) { h.update(p); h.update('\0'); }
  return h.digest('hex');
}

export function baseImageRef(): string {
  return `cattery/debian:${SUITE}-${sha([JSON.stringify(BASE_RECIPE)]).slice(0, 12)}`;
}

function listFiles(dir: string, prefix = ''): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name)).flatMap((e) => {
    const rel = path.posix.join(prefix, e.name);
    return e.isDirectory() ? listFiles(path.join(dir, e.name), rel) : e.isFile() ? [rel] : [];
  });
}

/** What an image is built from: a catalog service, or one of cattery's own (SYSTEM_IMAGES). */
export interface BuildUnit { manifest: Pick<Manifest, 'id' | 'image'>; dir: string }

/** Images cattery runs for itself and offers to nobody, built like a service's from deploy/<id>/ (this file is
 * three folders below the package root, in src/ and in dist/ alike). */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
// The node guard (deploy/guard, agent/guard.ts) has no upstream image: it is always built here, then carried to the
// nodes, as the agent's is. Not among SYSTEM_IMAGES: `cattery guard deploy` builds it when it deploys it.
const PRODUCTION_IMAGES = { ingress: 'caddy:2.6', backup: 'restic/restic:0.14.0', guard: 'none' } as const;
export type SystemImageId = keyof typeof PRODUCTION_IMAGES;
export function systemImage(id: SystemImageId): BuildUnit {
  return { dir: path.join(PACKAGE_ROOT, 'deploy', id), manifest: { id, image: { production: PRODUCTION_IMAGES[id], local: { base: 'debian', dockerfile: 'Dockerfile' } } } };
}
export const SYSTEM_IMAGES = ['ingress', 'backup'] as const;

/** Files several services build with live once, in <catalog folder>/_shared/. */
function sharedPath(svc: BuildUnit, name: string): string {
  return path.join(path.dirname(svc.dir), '_shared', name);
}

/** The image a service's instances run, named by the hash of everything that goes into its build. */
export function serviceImageRef(svc: BuildUnit): string {
  const parts: (string | Buffer)[] = [svc.manifest.image.local.base, svc.manifest.image.local.dockerfile];
  if (svc.manifest.image.local.base === 'debian') parts.push(baseImageRef());
  if (svc.manifest.image.local.base === 'busybox' && fs.existsSync(BUSYBOX_PATH)) parts.push(fs.readFileSync(BUSYBOX_PATH));
  for (const name of svc.manifest.image.local.shared ?? []) parts.push(`_shared/${name}`, fs.readFileSync(sharedPath(svc, name)));
  for (const rel of listFiles(svc.dir)) {
    const full = path.join(svc.dir, rel);
    parts.push(rel, String(fs.statSync(full).mode & 0o111 ? 'x' : '-'), fs.readFileSync(full));
  }
  return `cattery/${svc.manifest.id}:${sha(parts).slice(0, 12)}`;
}

export type Progress = (line: string) => void;

function run(cmd: string, args: string[], progress: Progress, cwd?: string): Promise<void> {
  // argv only, never a shell: nothing here comes from a user, and it stays that way if one day it does.
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
    let tail = '';
    const onData = (b: Buffer) => {
      const s = b.toString();
      tail = (tail + s).slice(-2000);
      for (const line of s.split('\n')) if (line.trim()) progress(line.trim());
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => reject(fail('CATTERY_ERR_BUILD', `${cmd}: ${err.message}`, err)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(fail('CATTERY_ERR_BUILD', `${cmd} exited with ${code}: ${tail.split('\n').slice(-3).join(' | ')}`))));
  });
}

async function streamToEngine(engine: Engine, what: string, stream: NodeJS.ReadableStream, progress: Progress): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    engine.docker.modem.followProgress(stream, (err: Error | null, out: { error?: string; errorDetail?: { message?: string } }[]) => {
      const bad = out?.find((o) => o.error);
      if (err) reject(translateDockerError(err, what));
      else if (bad) reject(fail('CATTERY_ERR_BUILD', `${what}: ${bad.errorDetail?.message ?? bad.error}`));
      else resolve();
    }, (ev: { stream?: string; status?: string }) => {
      const line = (ev.stream ?? ev.status ?? '').trim();
      if (line) progress(line);
    });
  });
}

/** debootstrap a minimal Debian into a temporary folder, then import it as an image. Needs root. */
export async function ensureBaseImage(engine: Engine, opts: { mirror: string; workDir: string; progress: Progress }): Promise<string> {
  const ref = baseImageRef();
  if (await imageExists(engine, ref)) { opts.progress(`${ref}: already built`); return ref; }
  if (process.getuid?.() !== 0) throw fail('CATTERY_ERR_BUILD', 'the Debian base image is made with debootstrap, which needs root: run `cattery images build` as root once');
  fs.mkdirSync(opts.workDir, { recursive: true, mode: 0o700 });
  const root = fs.mkdtempSync(path.join(opts.workDir, 'rootfs-'));
  try {
    opts.progress(`debootstrap --variant=${BASE_RECIPE.variant} ${SUITE} from ${opts.mirror} (about a minute)`);
    await run('debootstrap', [`--variant=${BASE_RECIPE.variant}`, SUITE, root, opts.mirror], opts.progress);
    for (const rel of BASE_RECIPE.cleanup) {
      const dir = path.join(root, rel);
      // apt's own caches: downloaded .debs and package lists, useless in an image and 100+ MB.
      for (const f of fs.readdirSync(dir)) if (f !== 'partial' && f !== 'lock') fs.rmSync(path.join(dir, f), { recursive: true, force: true });
    }
    opts.progress(`importing ${ref}`);
    const [repo, tag] = ref.split(':') as [string, string];
    // Device nodes under /dev are left out (Docker gives every container its own /dev); umask 0 keeps modes
    // such as /tmp's 1777 as debootstrap made them.
    const special = (file: string) => {
      const st = fs.lstatSync(file);
      return st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO() || st.isSocket();
    };
    const stream = await engine.docker.importImage(tar.pack(root, { ignore: special, umask: 0 } as tar.PackOptions) as unknown as string, { repo, tag });
    await streamToEngine(engine, `import ${ref}`, stream, opts.progress);
    return ref;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Build one service's image if its hash-named tag is not there yet. */
export async function ensureServiceImage(engine: Engine, svc: BuildUnit, opts: { workDir: string; progress: Progress }): Promise<string> {
  const ref = serviceImageRef(svc);
  if (await imageExists(engine, ref)) { opts.progress(`${ref}: already built`); return ref; }
  const local = svc.manifest.image.local;
  fs.mkdirSync(opts.workDir, { recursive: true, mode: 0o700 });
  const ctx = fs.mkdtempSync(path.join(opts.workDir, `ctx-${svc.manifest.id}-`));
  try {
    fs.cpSync(svc.dir, ctx, { recursive: true });
    for (const name of local.shared ?? []) fs.copyFileSync(sharedPath(svc, name), path.join(ctx, name));
    const buildargs: Record<string, string> = {};
    if (local.base === 'busybox') {
      if (!fs.existsSync(BUSYBOX_PATH)) throw fail('CATTERY_ERR_BUILD', `${BUSYBOX_PATH} is missing: apt-get install busybox-static`);
      fs.copyFileSync(BUSYBOX_PATH, path.join(ctx, 'busybox'));
      fs.chmodSync(path.join(ctx, 'busybox'), 0o755);
    } else {
      buildargs.BASE = baseImageRef();
      if (!(await imageExists(engine, buildargs.BASE))) throw fail('CATTERY_ERR_BUILD', `base image ${buildargs.BASE} is missing: build it first`);
    }
    if (local.npm) {
      // The host's npm already knows the way to its registry (mirror, proxy, CA); the image build needs none of it.
      opts.progress(`[${svc.manifest.id}] npm ci --omit=dev`);
      const say = (l: string) => opts.progress(`[${svc.manifest.id}] ${l}`);
      const pkg = JSON.parse(fs.readFileSync(path.join(ctx, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
      if (pkg.scripts?.build) {
        // A browser bundle to make first: build with the dev tools, then keep only what runs.
        await run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], say, ctx);
        await run('npm', ['run', 'build'], say, ctx);
        await run('npm', ['prune', '--omit=dev', '--no-audit', '--no-fund'], say, ctx);
      } else {
        await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], say, ctx);
      }
    }
    opts.progress(`building ${ref} from ${svc.dir}`);
    // The context is the service's code, not a secret: whatever umask cattery runs under (077, for residents' data),
    // it reaches the build readable by the service's own user (0644, 0755 where executable, folders 0755).
    const readable = (h: tar.Headers) => ({ ...h, mode: h.type === 'directory' || (h.mode ?? 0) & 0o111 ? 0o755 : 0o644 });
    const stream = await engine.docker.buildImage(tar.pack(ctx, { map: readable }) as unknown as NodeJS.ReadableStream, {
      t: ref, dockerfile: local.dockerfile, buildargs, networkmode: 'host', rm: true, forcerm: true,
      labels: { [LABEL_SERVICE]: svc.manifest.id },
    });
    await streamToEngine(engine, `build ${ref}`, stream, (l) => opts.progress(`[${svc.manifest.id}] ${l}`));
    return ref;
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
}

/** Build what the catalog and cattery itself need: the base once if any image uses it, then each image in turn. */
/** `inventoryDir`: where each image's software list is kept (docker/software.ts), made once per image tag; the CLI
 * always gives it, tests that only need an image to run leave it out (a container per image is not free). */
export async function buildImages(engine: Engine, catalog: Catalog, opts: { mirror: string; workDir: string; only?: string[]; progress: Progress; inventoryDir?: string }): Promise<string[]> {
  const all: BuildUnit[] = [...catalog.services.values(), ...SYSTEM_IMAGES.map(systemImage)];
  const wanted = all.filter((s) => !opts.only?.length || opts.only.includes(s.manifest.id));
  if (opts.only?.length) {
    const missing = opts.only.filter((id) => !all.some((s) => s.manifest.id === id));
    if (missing.length) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', missing.join(', '));
  }
  if (wanted.some((s) => s.manifest.image.local.base === 'debian')) await ensureBaseImage(engine, opts);
  const refs: string[] = [];
  for (const svc of wanted) {
    const ref = await ensureServiceImage(engine, svc, opts);
    if (opts.inventoryDir) {
      opts.progress(`[${svc.manifest.id}] software list of ${ref}`);
      // The list is what the image says about itself, run with the image's own shell: an image that cannot say it
      // (a failing shell, a list past the cap, a timeout) has no list, and the build of every other image goes on.
      await ensureInventory(engine, svc, ref, opts.inventoryDir)
        .catch((err: Error) => opts.progress(`[${svc.manifest.id}] no software list: ${err.message}`));
    }
    refs.push(ref);
  }
  return refs;
}

export const buildWorkDir = (dataDir: string) => path.join(dataDir, 'build');
