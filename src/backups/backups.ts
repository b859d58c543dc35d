// Backups with restic: repositories (a folder, SFTP, S3), one tagged snapshot per instance and one for cattery itself
// (its database through SQLite's online backup API, its secret), retention, checks, and restores. restic runs in a
// one-shot container of cattery's own image (deploy/backup) with the volumes it copies mounted read-only: it reads
// every resident's files without cattery binding a volume's host path, and works the same on another server's engine.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { desc, eq } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import type { Instance, Server } from '../db/schema.js';
import { fail, isCatteryError } from '../errors.js';
import { checkImportable, exportToFile, importAccount, keptDirOf, type AccountDeps } from '../accounts/accounts.js';
import { createInstance, findInstance, getInstance, listInstances, serverOf, updateInstance, type InstanceDeps } from '../orchestrator/instances.js';
import { ensureInstanceVolumes } from '../orchestrator/instance-pass.js';
import { execTarget, type ExecTarget } from '../orchestrator/exec-target.js';
import {
  LABEL_HOLDS, LABEL_HOSTER, LABEL_ROLE, ROLE_BACKUP, containerName, ensureVolume, execWithInput, fillVolume, isLocalEndpoint, networkExists,
  pauseContainer, probeBind, runOneShot, sweepFileVolumes, unpauseContainer, volumeName, type Engine, type FileVolume, type OneShotMount,
} from '../orchestrator/docker/index.js';
import { backupRepositories, backupRuns, type BackupRepository, type BackupRun, type RunKind } from './schema.js';
import {
  IN, backupArgs, checkArgs, commonArgs, forgetArgs, initArgs, parseBackupOutput, parseRepoUrl, parseSnapshots, resticError, restoreArgs,
  snapshotsArgs, type RepoLocation, type Snapshot,
} from './restic.js';

export interface BackupDeps {
  db: Db;
  catalog: Catalog;
  hosterId: string;
  dataDir: string;
  /** cattery's own restic image (deploy/backup), by its hash tag. */
  image: string;
  engineFor: (server: Server) => Engine;
  log: Logger;
  /** The local engine, for the hoster's own snapshot (cattery's database lives beside it). */
  localServer: () => Server;
}

/** What a restic run needs of a repository: where it is, how to reach it, its password file. A registered
 * repository gives it (accessOf); `cattery restore --from` on a new machine gives it by hand. */
export interface RepoAccess { url: string; network: string | null; passwordFile: string }

export const accessOf = (dataDir: string, repo: BackupRepository): RepoAccess =>
  ({ url: repo.url, network: repo.network, passwordFile: passwordFile(dataDir, repo) });

/** A container's pause never lasts longer than this unless its manifest says otherwise. */
export const DEFAULT_MAX_PAUSE_SECONDS = 300;
const NAME = /^[a-z][a-z0-9-]{0,31}$/;

const dirs = (dataDir: string) => {
  // Beside data/backups (the archives a delete leaves): restic's keys, cache, SSH identity and staging.
  const root = path.join(dataDir, 'restic');
  return { root, keys: path.join(root, 'keys'), cache: path.join(root, 'cache'), ssh: path.join(root, 'ssh'), stage: path.join(root, 'stage') };
};

function ensureDir(p: string): void {
  fs.mkdirSync(p, { recursive: true, mode: 0o700 });
  fs.chmodSync(p, 0o700);
}

/** Folders a local repository must neither be in nor hold: cattery's data folder (its database, keys, volume
 * images) and Docker's (every volume's host path). */
const ENGINE_ROOTS = ['/var/lib/docker', '/var/lib/containerd'];

/** A path with its symbolic links resolved as far as it exists (the rest, not made yet, appended). */
function resolvedPath(p: string): string {
  let head = path.resolve(p);
  const tail: string[] = [];
  for (;;) {
    try { return path.join(fs.realpathSync(head), ...tail.reverse()); } catch { /* not there yet: its parent */ }
    const up = path.dirname(head);
    if (up === head) return path.join(head, ...tail.reverse());
    tail.push(path.basename(head));
    head = up;
  }
}

const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer.endsWith('/') ? outer : `${outer}/`);

/** Why a local folder cannot be a repository, or null. restic writes its packs there (a repository in cattery's data
 * folder or in a volume's host path mixes them with what they back up, hands them to a resident, or is backed up
 * into itself), and cattery makes the folder 0700: an existing folder that is not a restic repository (/, /etc, a
 * home) is refused rather than taken over. */
export function localRepoProblem(dataDir: string, repoPath: string): string | null {
  const repo = resolvedPath(repoPath);
  for (const root of [resolvedPath(dataDir), ...ENGINE_ROOTS.map(resolvedPath)]) {
    if (within(repo, root) || within(root, repo)) return `a local repository is outside ${root} and does not hold it`;
  }
  let entries: string[];
  try { entries = fs.readdirSync(repo); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return `${repo} is not a folder cattery can use (${(err as NodeJS.ErrnoException).code})`;
  }
  if (entries.length && !entries.includes('config')) return `${repo} holds files and is not a restic repository: use a new or empty folder`;
  return null;
}

function assertLocalRepo(dataDir: string, loc: RepoLocation): void {
  if (loc.kind !== 'local') return;
  const why = localRepoProblem(dataDir, loc.path);
  if (why) throw fail('CATTERY_ERR_VALIDATION', why);
}

export const passwordFile = (dataDir: string, repo: Pick<BackupRepository, 'name'>) => path.join(dirs(dataDir).keys, `${repo.name}.password`);

/** The mounts every restic run of this repository needs: its password (read-only), the cache, SSH, a local folder.
 * On this machine's engine they are binds of cattery's data folder. Another server's engine has no such folder: the
 * password (and for SFTP the SSH identity and known hosts) go into a volume of files made there for this one run
 * (fillVolume: root's, 0600, through the archive API, never in the container's Env or argv), and restic's cache is a
 * volume of its own on that engine. */
async function repoMounts(deps: Pick<BackupDeps, 'dataDir' | 'hosterId' | 'image'>, engine: Engine, repo: RepoAccess, loc: RepoLocation, run: string): Promise<{ mounts: OneShotMount[]; files?: FileVolume }> {
  const d = dirs(deps.dataDir);
  const mounts: OneShotMount[] = [];
  let files: FileVolume | undefined;
  if (!engine.remote) {
    ensureDir(d.cache);
    if (loc.kind === 'sftp') ensureDir(d.ssh);
    mounts.push({ kind: 'bind', source: repo.passwordFile, target: IN.password, readOnly: true });
    mounts.push({ kind: 'bind', source: d.cache, target: IN.cache, readOnly: false });
    // known_hosts is written at the first connection: the folder is mounted writable.
    if (loc.kind === 'sftp') mounts.push({ kind: 'bind', source: d.ssh, target: IN.ssh, readOnly: false });
  } else {
    // Volumes a cattery that died mid-run left here (the password in them) go first.
    await sweepFileVolumes(engine, ROLE_BACKUP, alive).catch((err: unknown) => engine.log.warn({ err }, 'leftover restic file volumes not swept'));
    const put: Record<string, Buffer> = { [path.basename(IN.password)]: fs.readFileSync(repo.passwordFile) };
    if (loc.kind === 'sftp') {
      const key = path.join(d.ssh, 'id_ed25519');
      if (!fs.existsSync(key)) throw fail('CATTERY_ERR_CONFIG', 'cattery has no SSH key for SFTP repositories yet: run `cattery backup key` and add it on the remote');
      put.id_ed25519 = fs.readFileSync(key);
      const known = path.join(d.ssh, 'known_hosts');
      if (fs.existsSync(known)) put.known_hosts = fs.readFileSync(known);
    }
    files = await fillVolume(engine, { volume: `${run}-files`, image: deps.image, role: ROLE_BACKUP, files: put });
    const cache = `${deps.hosterId}-restic-cache`;
    try {
      await ensureVolume(engine, cache, { [LABEL_HOSTER]: engine.hosterId, [LABEL_ROLE]: ROLE_BACKUP });
    } catch (err) {
      await files.remove().catch(() => undefined);
      throw err;
    }
    mounts.push({ kind: 'volume', source: files.volume, target: path.dirname(IN.password), readOnly: true });
    mounts.push({ kind: 'volume', source: cache, target: IN.cache, readOnly: false });
    // The same files as SSH's folder, writable: ssh adds the host's key to known_hosts at the first connection, read
    // back into cattery's own after the run (bringBackKnownHosts).
    if (loc.kind === 'sftp') mounts.push({ kind: 'volume', source: files.volume, target: IN.ssh, readOnly: false });
  }
  if (loc.kind === 'local') {
    assertLocalRepo(deps.dataDir, loc);
    // On another server's engine the folder must be there at the same path (a shared mount): checked when restic's
    // container is made (repoUnreachable).
    if (!engine.remote) ensureDir(loc.path);
    mounts.push({ kind: 'bind', source: loc.path, target: IN.repo, readOnly: false });
  }
  return { mounts, ...(files ? { files } : {}) };
}

/** The host keys ssh pinned during a run on another server's engine, added to cattery's own known_hosts (0600): the
 * next run, wherever it is, finds them pinned. Lines already there are not added again. */
async function bringBackKnownHosts(dataDir: string, files: FileVolume): Promise<void> {
  const got = await files.read('known_hosts');
  if (!got) return;
  const file = path.join(dirs(dataDir).ssh, 'known_hosts');
  const have = new Set(fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
  const fresh = got.toString('utf8').split('\n').filter((l) => l && !have.has(l));
  if (!fresh.length) return;
  ensureDir(dirs(dataDir).ssh);
  fs.appendFileSync(file, `${fresh.join('\n')}\n`, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

/** A local repository's folder that another server's engine does not have: the typed refusal that says what to do. */
function repoUnreachable(loc: RepoLocation, err: unknown): Error | undefined {
  if (loc.kind !== 'local' || !/bind source path does not exist|not a directory|no such file or directory/i.test((err as Error).message ?? '')) return undefined;
  return fail('CATTERY_ERR_BACKUP_REPO_UNREACHABLE', `the repository ${loc.path} is a folder on cattery's own machine, and this server's engine has no such folder: use an SFTP or S3 repository for servers of their own, or mount the folder there at the same path`, err);
}

/** Whether restic on `engine` can open this repository's location at all, asked before anything stops: a local
 * folder on another server's engine must exist there (a shared mount). A container is made with the folder bound and
 * removed at once; nothing runs. Other kinds are reached over the network and answer for themselves at the run. */
export async function assertRepositoryReachable(deps: Pick<BackupDeps, 'db' | 'hosterId' | 'image'>, engine: Engine, repoName: string): Promise<void> {
  const loc = parseRepoUrl(getRepository(deps.db, repoName).url);
  if (loc.kind !== 'local' || !engine.remote) return;
  try {
    await probeBind(engine, { name: `${deps.hosterId}-restic-probe-${process.pid}-${++runSeq}`, image: deps.image, role: ROLE_BACKUP, source: loc.path });
  } catch (err) {
    throw repoUnreachable(loc, err) ?? err;
  }
}

/** A Docker network restic's container may join: a plain name. Not `host` (the host's own interfaces and loopback
 * services) and not `container:…` (another container's, a resident's, namespace). */
export function networkProblem(network: string): string | null {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(network)) return 'a network is a Docker network name';
  if (network === 'host') return 'restic never joins the host network: name a Docker network (or none for the default bridge)';
  return null;
}

/** The network restic joins. The repository's network is a network of cattery's own engine: another server's engine
 * joins one of that name when it has one (its operator's own route to the repository there), else its default
 * bridge, which reaches what that server reaches. */
async function networkOn(engine: Engine, repo: RepoAccess, loc: RepoLocation): Promise<string> {
  if (loc.kind === 'local') return 'none';
  const why = repo.network == null ? null : networkProblem(repo.network);
  if (why) throw fail('CATTERY_ERR_VALIDATION', why);
  if (repo.network == null || !engine.remote) return repo.network ?? 'bridge';
  return (await networkExists(engine, repo.network)) ? repo.network : 'bridge';
}

function s3Env(loc: RepoLocation): Record<string, string> {
  if (loc.kind !== 's3') return {};
  const id = process.env.CATTERY_BACKUP_S3_ACCESS_KEY_ID, secret = process.env.CATTERY_BACKUP_S3_SECRET_ACCESS_KEY;
  if (!id || !secret) throw fail('CATTERY_ERR_CONFIG', 'an S3 repository needs CATTERY_BACKUP_S3_ACCESS_KEY_ID and CATTERY_BACKUP_S3_SECRET_ACCESS_KEY');
  return { AWS_ACCESS_KEY_ID: id, AWS_SECRET_ACCESS_KEY: secret };
}

/** What running restic needs, without the database: `cattery restore` runs it before there is one. */
export type ResticDeps = Pick<BackupDeps, 'hosterId' | 'dataDir' | 'image'>;

let runSeq = 0;

export const lockFile = (dataDir: string, url: string) =>
  path.join(dirs(dataDir).root, 'locks', `${crypto.createHash('sha256').update(url).digest('hex').slice(0, 20)}.pid`);

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Whether a cattery process (this one or a CLI beside it) is running restic on this repository now. */
export function repoBusy(dataDir: string, url: string): boolean {
  try { return alive(Number(fs.readFileSync(lockFile(dataDir, url), 'utf8'))); } catch { return false; }
}

/** One restic at a time per repository across cattery's processes (serve, the CLI): a pid file, taken or refused.
 * restic's own locks cannot tell a dead container's lock from a live one (each run is PID 1 of its own container),
 * so cattery, holding this, may clear them: after a run that failed or was stopped, and before check and prune. */
const held = new Map<string, number>();
function takeRepoLock(dataDir: string, url: string): () => void {
  const file = lockFile(dataDir, url);
  // Held already by this process (a whole backupAll holds it from its first step to its last): taken again inside.
  const depth = held.get(file);
  if (depth) {
    held.set(file, depth + 1);
    return () => { held.set(file, held.get(file)! - 1); };
  }
  ensureDir(path.dirname(file));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      held.set(file, 1);
      return () => {
        const left = held.get(file)! - 1;
        held.set(file, left);
        if (left === 0) { held.delete(file); fs.rmSync(file, { force: true }); }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(fs.readFileSync(file, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && alive(holder)) throw fail('CATTERY_ERR_CONFLICT', `restic is already working on this repository (cattery process ${holder}): try again when it is done`);
      fs.rmSync(file, { force: true }); // left by a cattery that died
    }
  }
  throw fail('CATTERY_ERR_CONFLICT', 'restic is already working on this repository');
}

const EXCLUSIVE = new Set(['check', 'forget', 'prune']);

async function restic(deps: ResticDeps, engine: Engine, repo: RepoAccess, argv: string[], o: {
  mounts?: OneShotMount[]; timeoutMs?: number | (() => number); capAdd?: string[]; entrypoint?: string[]; scratch?: string[];
  /** The instance this run holds paused, paused by `pause` once restic's container exists (a pass sees it held). */
  holds?: { slug: string; pause: () => Promise<void> };
} = {}) {
  const loc = parseRepoUrl(repo.url);
  const network = await networkOn(engine, repo, loc);
  const once = async (args: string[], extra: typeof o) => {
    const name = `${deps.hosterId}-restic-${process.pid}-${++runSeq}`;
    const { mounts, files } = await repoMounts(deps, engine, repo, loc, name);
    try {
      return await runOneShot(engine, {
        name, image: deps.image, argv: args, role: ROLE_BACKUP,
        mounts: [...mounts, ...(extra.mounts ?? [])], env: s3Env(loc), network,
        capAdd: extra.capAdd, timeoutMs: extra.timeoutMs ?? 3_600_000, ...(extra.entrypoint ? { entrypoint: extra.entrypoint } : {}),
        ...(extra.scratch ? { scratch: extra.scratch } : {}),
        ...(extra.holds ? { labels: { [LABEL_HOLDS]: extra.holds.slug }, beforeStart: extra.holds.pause } : {}),
      });
    } catch (err) {
      throw repoUnreachable(loc, err) ?? err;
    } finally {
      if (files) {
        if (loc.kind === 'sftp') await bringBackKnownHosts(deps.dataDir, files).catch((err: unknown) => engine.log.warn({ err }, 'known_hosts of a restic run not read back'));
        await files.remove().catch((err: unknown) => engine.log.error({ err, volume: files.volume }, 'the volume holding a repository password was not removed: remove it'));
      }
    }
  };
  // Listing snapshots only reads (restic takes a shared lock of its own): it needs no turn, and never waits for a backup.
  if (argv.includes('snapshots')) return once(argv, o);
  const release = takeRepoLock(deps.dataDir, repo.url);
  try {
    const unlock = () => once([...commonArgs(loc), 'unlock', '--remove-all'], { timeoutMs: 120_000 });
    if (argv.some((a) => EXCLUSIVE.has(a))) await unlock();
    const r = await once(argv, o);
    if (r.exitCode !== 0 || r.timedOut) await unlock().catch(() => undefined);
    return r;
  } finally {
    release();
  }
}

export function getRepository(db: Db, name: string): BackupRepository {
  const row = db.select().from(backupRepositories).where(eq(backupRepositories.name, name)).get();
  if (!row) throw fail('CATTERY_ERR_NOT_FOUND', `No backup repository "${name}"`);
  return row;
}

export const listRepositories = (db: Db): BackupRepository[] => db.select().from(backupRepositories).all();

/** Whether this machine has its SSH key for SFTP repositories yet. */
export const hasSshKey = (dataDir: string) => fs.existsSync(path.join(dirs(dataDir).ssh, 'id_ed25519'));

/** The SSH key cattery signs in to SFTP repositories with (made once, 0600): its public half goes on the remote. */
export async function sshPublicKey(deps: ResticDeps, engine: Engine): Promise<string> {
  const d = dirs(deps.dataDir);
  ensureDir(d.root);
  ensureDir(d.ssh);
  const key = path.join(d.ssh, 'id_ed25519');
  if (!fs.existsSync(key) && engine.remote) {
    // Another server's engine cannot bind cattery's folder: the pair is made in the container's own /tmp and handed
    // back on its output (never its Env or a log line), then written here.
    const r = await runOneShot(engine, {
      name: `${deps.hosterId}-restic-keygen`, image: deps.image, role: ROLE_BACKUP, network: 'none', timeoutMs: 60_000,
      argv: ['-c', `umask 077 && ssh-keygen -q -t ed25519 -N '' -C 'cattery-backup@${deps.hosterId}' -f /tmp/id_ed25519 && cat /tmp/id_ed25519 /tmp/id_ed25519.pub`],
      entrypoint: ['/bin/sh'], mounts: [],
    });
    const pair = /^(-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END OPENSSH PRIVATE KEY-----\n)(ssh-ed25519 [A-Za-z0-9+/=]+ [^\n]*)\n?$/.exec(r.stdout);
    if (r.exitCode !== 0 || !pair) throw fail('CATTERY_ERR_BACKUP', `ssh-keygen: ${r.stderr.slice(-300) || 'no key pair in its output'}`);
    fs.writeFileSync(`${key}.pub`, `${pair[2]}\n`, { mode: 0o600 });
    fs.writeFileSync(key, pair[1]!, { mode: 0o600, flag: 'wx' });
  }
  if (!fs.existsSync(key)) {
    // OpenSSH's own format, made by ssh-keygen in the backup image (Node writes PKCS#8, which ssh reads for some key
    // types only).
    const r = await runOneShot(engine, {
      name: `${deps.hosterId}-restic-keygen`, image: deps.image, role: ROLE_BACKUP, network: 'none', timeoutMs: 60_000,
      argv: ['-c', `umask 077 && ssh-keygen -q -t ed25519 -N '' -C 'cattery-backup@${deps.hosterId}' -f ${IN.ssh}/id_ed25519`],
      entrypoint: ['/bin/sh'], mounts: [{ kind: 'bind', source: d.ssh, target: IN.ssh, readOnly: false }],
    });
    if (r.exitCode !== 0) throw fail('CATTERY_ERR_BACKUP', `ssh-keygen: ${r.stderr.slice(-300)}`);
  }
  return fs.readFileSync(`${key}.pub`, 'utf8').trim();
}

/** A new repository: its password made here (or given, to reach an existing one), written 0600, then `restic init`
 * (or, with a given password, a listing that proves it opens). A refusal removes what this call wrote. */
export async function addRepository(deps: BackupDeps, input: {
  name: string; url: string; network?: string | null; everyHours?: number; password?: string;
}, actor: string): Promise<BackupRepository> {
  if (!NAME.test(input.name)) throw fail('CATTERY_ERR_VALIDATION', 'a repository name is 1 to 32 lower-case letters, digits and -, starting with a letter');
  const loc = parseRepoUrl(input.url);
  assertLocalRepo(deps.dataDir, loc);
  const badNetwork = input.network == null ? null : networkProblem(input.network);
  if (badNetwork) throw fail('CATTERY_ERR_VALIDATION', badNetwork);
  if (input.everyHours !== undefined && !(Number.isInteger(input.everyHours) && input.everyHours >= 0 && input.everyHours <= 24 * 31)) {
    throw fail('CATTERY_ERR_VALIDATION', 'everyHours is a whole number of hours, 0 to 744');
  }
  if (deps.db.select().from(backupRepositories).where(eq(backupRepositories.name, input.name)).get()) {
    throw fail('CATTERY_ERR_CONFLICT', `A backup repository "${input.name}" exists`);
  }
  if (loc.kind === 'sftp') await sshPublicKey(deps, deps.engineFor(deps.localServer()));
  const d = dirs(deps.dataDir);
  ensureDir(d.root);
  ensureDir(d.keys);
  const file = passwordFile(deps.dataDir, input);
  const password = input.password ?? crypto.randomBytes(32).toString('base64url');
  fs.writeFileSync(file, `${password}\n`, { mode: 0o600, flag: 'w' });
  fs.chmodSync(file, 0o600);
  const row = deps.db.insert(backupRepositories).values({
    name: input.name, url: input.url, network: input.network ?? null, ...(input.everyHours !== undefined ? { everyHours: input.everyHours } : {}),
  }).returning().get();
  const engine = deps.engineFor(deps.localServer());
  const r = await restic(deps, engine, accessOf(deps.dataDir, row), input.password ? snapshotsArgs(loc) : initArgs(loc), { timeoutMs: 120_000 });
  if (r.exitCode !== 0) {
    deps.db.delete(backupRepositories).where(eq(backupRepositories.id, row.id)).run();
    fs.rmSync(file, { force: true });
    throw fail('CATTERY_ERR_BACKUP', `${input.password ? 'the repository does not open' : 'restic init'}: ${r.timedOut ? 'timed out' : resticError(r.stderr, r.exitCode)}`);
  }
  deps.log.info({ repository: row.name, url: row.url, actor }, 'backup repository added');
  return row;
}

/** What an association prints and keeps away from the server: without it, a dead server's backups cannot be read. */
export async function recoverySheet(deps: BackupDeps, name: string): Promise<string> {
  const repo = getRepository(deps.db, name);
  const password = fs.readFileSync(passwordFile(deps.dataDir, repo), 'utf8').trim();
  const loc = parseRepoUrl(repo.url);
  const lines = [
    `cattery — recovery sheet / fiche de secours — ${deps.hosterId}`,
    `Printed / imprimée le ${new Date().toISOString().slice(0, 10)}. Keep it on paper, away from the server. / À garder sur papier, loin du serveur.`,
    '',
    `Repository / dépôt : ${repo.url}`,
    `Password / mot de passe : ${password}`,
    `Hoster id / identifiant : ${deps.hosterId}`,
    ...(loc.kind === 'sftp' ? [`SSH key cattery signs in with (public half) / clé SSH (partie publique) : ${await sshPublicKey(deps, deps.engineFor(deps.localServer()))}`,
      'A new machine makes its own key: `cattery restore` prints it; add it on the remote, then run the restore again.'] : []),
    '',
    'On a new machine / sur une nouvelle machine :',
    '  1. git clone, npm ci, then / puis : bash deploy/ensure-engine.sh && node bin/cattery.js images build',
    '  2. printf \'%s\\n\' \'<password>\' > restic-password && chmod 600 restic-password',
    `  3. CATTERY_HOSTER_ID=${deps.hosterId} node bin/cattery.js restore --from '${repo.url}' --password-file restic-password`,
    '  4. node bin/cattery.js serve',
    '',
    `Without cattery, restic alone reads it: restic -r '${loc.kind === 'sftp' ? `sftp:${loc.user}@${loc.host}:${loc.path}` : repo.url}' snapshots`,
  ];
  return `${lines.join('\n')}\n`;
}

function startRun(db: Db, repo: BackupRepository, kind: RunKind, target: string, actor: string): BackupRun {
  return db.insert(backupRuns).values({ repositoryId: repo.id, kind, target, actor }).returning().get();
}

function endRun(db: Db, run: BackupRun, started: number, fields: Partial<BackupRun>): BackupRun {
  return db.update(backupRuns).set({ status: 'done', ...fields, durationMs: Date.now() - started, finishedAt: new Date().toISOString() })
    .where(eq(backupRuns.id, run.id)).returning().get();
}

/** One instance's volumes as one snapshot tagged `instance:<slug>`. Its container is paused for the copy (a power
 * cut's consistency, which every service's storage survives) and never longer than its manifest allows: a copy
 * that would take longer is stopped, recorded as failed, and the service goes on. */
export async function backupInstance(deps: BackupDeps, repoName: string, slug: string, actor: string): Promise<BackupRun> {
  const repo = getRepository(deps.db, repoName);
  const inst = getInstance(deps.db, slug);
  const m = deps.catalog.services.get(inst.service)?.manifest;
  if (!m) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', inst.service);
  const loc = parseRepoUrl(repo.url);
  const run = startRun(deps.db, repo, 'backup', `instance:${slug}`, actor);
  const started = Date.now();
  const engine = deps.engineFor(serverOf(deps.db, inst));
  const maxPause = m.backup?.maxPauseSeconds ?? DEFAULT_MAX_PAUSE_SECONDS;
  let paused = false;
  let live: ExecTarget | null = null;
  try {
    live = await runningContainerOf(deps, inst);
    // A service with a dump of its own writes it while it runs: the live files it stands for are left out and the
    // container is not paused. Without a dump (or when the dump fails: logged, and the pause is the fallback), the
    // container is paused for the copy; a stopped one is copied as it is.
    const dumped = live && m.backup?.dump && m.volumes.length > 0 ? await takeDump(deps, live.engine, live.container, m.backup.dump, slug) : false;
    const r = await restic(deps, engine, accessOf(deps.dataDir, repo), backupArgs(loc, {
      host: deps.hosterId, tags: ['cattery', `instance:${slug}`, `service:${inst.service}`],
      paths: m.volumes.map((v) => `${IN.data}/${v.name}`),
      exclude: dumped ? m.backup!.dump!.exclude.map((p) => `${IN.data}/${p}`) : [],
    }), {
      mounts: m.volumes.map((v) => ({ kind: 'volume' as const, source: volumeName(deps.hosterId, slug, v.name), target: `${IN.data}/${v.name}`, readOnly: true })),
      // Reading every resident's files whatever their owner and mode; nothing else.
      capAdd: ['DAC_READ_SEARCH'], timeoutMs: () => (paused ? maxPause * 1000 : 6 * 3_600_000),
      holds: { slug, pause: async () => { paused = !dumped && m.volumes.length > 0 && !!live && await pauseContainer(live.engine, live.container); } },
    });
    const consistency = dumped ? 'dump' : paused ? 'paused' : 'stopped';
    const summary = parseBackupOutput(r.stdout);
    if (r.exitCode !== 0 || !summary) {
      const why = r.timedOut ? `the copy took longer than the ${maxPause} s the service may stay paused` : resticError(r.stderr, r.exitCode);
      return endRun(deps.db, run, started, { status: 'failed', error: why, consistency });
    }
    return endRun(deps.db, run, started, {
      snapshotId: summary.snapshotId, bytesAdded: summary.dataAdded, bytesProcessed: summary.totalBytesProcessed,
      filesProcessed: summary.totalFilesProcessed, consistency,
    });
  } catch (err) {
    return endRun(deps.db, run, started, { status: 'failed', error: (err as Error).message.slice(0, 400) });
  } finally {
    if (paused && live) await unpauseContainer(live.engine, live.container).catch((err) => deps.log.error({ err, slug }, 'container left paused after a backup'));
  }
}

/** Where an instance runs now, for a pause or a dump: its container on its server's engine, or on Swarm its task's
 * container on the engine of the node that runs it (exec-target.ts: a Swarm task's container is not named after the
 * instance, and it is on a node, not on the manager). Null when no task of it runs on the swarm: nothing to pause. */
async function runningContainerOf(deps: Pick<BackupDeps, 'db' | 'hosterId' | 'engineFor'>, inst: Pick<Instance, 'slug' | 'serverId'>): Promise<ExecTarget | null> {
  try {
    return await execTarget(deps, inst);
  } catch (err) {
    if (isCatteryError(err) && err.code === 'CATTERY_ERR_CONFLICT') return null;
    throw err;
  }
}

/** The service's own dump, run in its running container; true when it wrote one (exit 0 within its time). */
async function takeDump(deps: BackupDeps, engine: Engine, container: string, dump: { exec: string[]; timeoutSeconds?: number }, slug: string): Promise<boolean> {
  const running = await engine.docker.getContainer(container).inspect().then((i) => i.State.Running && !i.State.Paused, () => false);
  if (!running) return false;
  try {
    const r = await execWithInput(engine, container, dump.exec, '', { timeoutMs: (dump.timeoutSeconds ?? 600) * 1000, maxBytes: 1024 * 1024 }, `dump of ${slug}`);
    if (r.exitCode === 0) return true;
    deps.log.warn({ slug, exitCode: r.exitCode, stderr: r.stderr }, 'the service\'s dump failed: its volumes are copied paused instead');
  } catch (err) {
    deps.log.warn({ err, slug }, 'the service\'s dump failed: its volumes are copied paused instead');
  }
  return false;
}

/** What a run killed midway left in the staging folder (a copy of cattery.db and its secret, kept by nobody): removed
 * when the process that staged it is gone. */
export function sweepStage(dataDir: string): string[] {
  const stage = dirs(dataDir).stage;
  let names: string[];
  try { names = fs.readdirSync(stage); } catch { return []; }
  const gone = names.filter((n) => {
    const m = /^hoster-(\d+)-\d+$/.exec(n);
    return !m || !alive(Number(m[1]));
  });
  for (const n of gone) fs.rmSync(path.join(stage, n), { recursive: true, force: true });
  return gone;
}

/** cattery itself: its database through SQLite's online backup API (a consistent copy while it serves; never the
 * file and its -wal), its secret, and what it was started with, as one snapshot tagged `hoster`. */
export async function backupHoster(deps: BackupDeps, repoName: string, actor: string): Promise<BackupRun> {
  const repo = getRepository(deps.db, repoName);
  const loc = parseRepoUrl(repo.url);
  const run = startRun(deps.db, repo, 'backup', 'hoster', actor);
  const started = Date.now();
  const stage = path.join(dirs(deps.dataDir).stage, `hoster-${process.pid}-${run.id}`);
  try {
    const left = sweepStage(deps.dataDir);
    if (left.length) deps.log.warn({ left }, 'staged copies of cattery left by an interrupted backup removed');
    ensureDir(dirs(deps.dataDir).stage);
    ensureDir(stage);
    await deps.db.$client.backup(path.join(stage, 'cattery.db'));
    fs.chmodSync(path.join(stage, 'cattery.db'), 0o600);
    const secret = path.join(deps.dataDir, 'secret.key');
    if (fs.existsSync(secret)) {
      fs.copyFileSync(secret, path.join(stage, 'secret.key'));
      fs.chmodSync(path.join(stage, 'secret.key'), 0o600);
    }
    // The federation key (federation/keys.ts): a hoster restored without it would be a stranger to its peers.
    const identity = path.join(deps.dataDir, 'federation', 'identity.json');
    if (fs.existsSync(identity)) {
      fs.mkdirSync(path.join(stage, 'federation'), { mode: 0o700 });
      fs.copyFileSync(identity, path.join(stage, 'federation', 'identity.json'));
      fs.chmodSync(path.join(stage, 'federation', 'identity.json'), 0o600);
    }
    fs.writeFileSync(path.join(stage, 'hoster.json'), JSON.stringify({ hosterId: deps.hosterId, at: new Date().toISOString() }, null, 2), { mode: 0o600 });
    const r = await restic(deps, deps.engineFor(deps.localServer()), accessOf(deps.dataDir, repo),
      backupArgs(loc, { host: deps.hosterId, tags: ['cattery', 'hoster'], paths: [`${IN.data}/hoster`] }),
      { mounts: [{ kind: 'bind', source: stage, target: `${IN.data}/hoster`, readOnly: true }], timeoutMs: 3_600_000 });
    const summary = parseBackupOutput(r.stdout);
    if (r.exitCode !== 0 || !summary) return endRun(deps.db, run, started, { status: 'failed', error: r.timedOut ? 'timed out' : resticError(r.stderr, r.exitCode) });
    return endRun(deps.db, run, started, {
      snapshotId: summary.snapshotId, bytesAdded: summary.dataAdded, bytesProcessed: summary.totalBytesProcessed,
      filesProcessed: summary.totalFilesProcessed, consistency: 'dump',
    });
  } catch (err) {
    return endRun(deps.db, run, started, { status: 'failed', error: (err as Error).message.slice(0, 400) });
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

/** Everything to one repository: cattery first, then each instance that is meant to exist, then the retention. */
export async function backupAll(deps: BackupDeps, repoName: string, actor: string): Promise<BackupRun[]> {
  // The repository is this run's from its first step to its last: a command beside it waits for the whole.
  const release = takeRepoLock(deps.dataDir, getRepository(deps.db, repoName).url);
  try {
    return await backupAllHeld(deps, repoName, actor);
  } finally {
    release();
  }
}

async function backupAllHeld(deps: BackupDeps, repoName: string, actor: string): Promise<BackupRun[]> {
  const runs = [await backupHoster(deps, repoName, actor)];
  for (const inst of listInstances(deps.db).filter((i) => i.desired !== 'deleted')) runs.push(await backupInstance(deps, repoName, inst.slug, actor));
  // An instance whose backup failed is tried once more after the others (a moment of load, a remote that blinked):
  // both runs are recorded; what is returned is each target's last.
  for (const [i, r] of runs.entries()) {
    if (r.status !== 'failed' || !r.target.startsWith('instance:')) continue;
    const slug = r.target.slice('instance:'.length);
    if (listInstances(deps.db).some((x) => x.slug === slug && x.desired !== 'deleted')) runs[i] = await backupInstance(deps, repoName, slug, actor);
  }
  runs.push(await forget(deps, repoName, actor));
  return runs;
}

/** The retention: each instance's (and cattery's) snapshots kept 7 daily, 4 weekly, 12 monthly by default. */
export async function forget(deps: BackupDeps, repoName: string, actor: string): Promise<BackupRun> {
  const repo = getRepository(deps.db, repoName);
  const run = startRun(deps.db, repo, 'forget', 'all', actor);
  const started = Date.now();
  const r = await restic(deps, deps.engineFor(deps.localServer()), accessOf(deps.dataDir, repo), forgetArgs(parseRepoUrl(repo.url), repo));
  if (r.exitCode !== 0) return endRun(deps.db, run, started, { status: 'failed', error: resticError(r.stderr, r.exitCode) });
  return endRun(deps.db, run, started, {});
}

/** What `restic check --read-data-subset` takes: a percentage, or the n-th of m parts (restic refuses 0/m and n > m,
 * after the run is recorded as a failed check). */
export function validSubset(subset: string): boolean {
  if (/^(?:[1-9][0-9]?%|100%)$/.test(subset)) return true;
  const m = /^([1-9][0-9]{0,3})\/([1-9][0-9]{0,3})$/.exec(subset);
  return !!m && Number(m[1]) <= Number(m[2]);
}

/** The snapshot a prefix names among `snaps`: 8 hexadecimal digits at least (restic's short id), and one snapshot
 * only. A prefix of one or two digits matched whichever came first, and a restore into place wiped the volumes for
 * it. */
export function pickSnapshot(snaps: Snapshot[], prefix: string): Snapshot | undefined {
  if (!/^[0-9a-f]{8,64}$/.test(prefix)) throw fail('CATTERY_ERR_VALIDATION', 'a snapshot id is 8 to 64 hexadecimal digits (restic snapshots shows them)');
  const found = snaps.filter((s) => s.id.startsWith(prefix));
  if (found.length > 1) throw fail('CATTERY_ERR_VALIDATION', `${prefix} names ${found.length} snapshots: give more of its id`);
  return found[0];
}

/** `restic check` reading a subset of the data (a different part each time restic chooses it at random). */
export async function check(deps: BackupDeps, repoName: string, actor: string, subset = '5%'): Promise<BackupRun> {
  if (!validSubset(subset)) throw fail('CATTERY_ERR_VALIDATION', 'a subset is a percentage (1% to 100%) or n/m with 1 ≤ n ≤ m');
  const repo = getRepository(deps.db, repoName);
  const run = startRun(deps.db, repo, 'check', 'all', actor);
  const started = Date.now();
  const r = await restic(deps, deps.engineFor(deps.localServer()), accessOf(deps.dataDir, repo), checkArgs(parseRepoUrl(repo.url), subset));
  if (r.exitCode !== 0) return endRun(deps.db, run, started, { status: 'failed', error: resticError(`${r.stdout}\n${r.stderr}`, r.exitCode) });
  return endRun(deps.db, run, started, {});
}

export async function listSnapshots(deps: BackupDeps, repoName: string, tag?: string): Promise<Snapshot[]> {
  return snapshotsAt(deps, deps.engineFor(deps.localServer()), accessOf(deps.dataDir, getRepository(deps.db, repoName)), tag);
}

export async function snapshotsAt(deps: ResticDeps, engine: Engine, access: RepoAccess, tag?: string): Promise<Snapshot[]> {
  if (tag !== undefined && !/^[a-z]+(?::[a-z0-9-]+)?$/.test(tag)) throw fail('CATTERY_ERR_VALIDATION', 'a tag is hoster, instance:<slug> or service:<id>');
  const r = await restic(deps, engine, access, snapshotsArgs(parseRepoUrl(access.url), tag), { timeoutMs: 300_000 });
  if (r.exitCode !== 0) throw fail('CATTERY_ERR_BACKUP', resticError(r.stderr, r.exitCode));
  return parseSnapshots(r.stdout);
}

/** An instance's volumes as they were in a snapshot (its newest by default), written into `into`'s volumes: the same
 * instance (its container paused meanwhile, then restarted by the caller) or a new one beside it, created stopped.
 * A volume's files that the snapshot does not hold are removed first: the volume is the snapshot's, not a mix. */
/** Which snapshot of an instance: its newest, one named by an id prefix, or one a caller has already listed
 * (`found`: not listed again). */
/** The snapshots an instance of `service` may be restored from: this hoster's, of that service (its volumes' layout),
 * and none from before `notBefore` (the instance's creation): a slug freed by a delete and taken again would otherwise
 * be given the old instance's data (found by the outside review of issue 15). */
export function snapshotsOf(snaps: readonly Snapshot[], hosterId: string, service: string, notBefore?: string): Snapshot[] {
  const after = notBefore ? Date.parse(notBefore) : undefined;
  return snaps.filter((s) => s.host === hosterId && s.tags.includes(`service:${service}`) && (after === undefined || Date.parse(s.time) >= after));
}

/** `notBefore`: the instance's creation; a snapshot taken earlier is of another instance that once had its slug. */
export interface SnapshotOf { slug: string; snapshot?: string; found?: Snapshot; notBefore?: string }

export async function restoreVolumes(deps: BackupDeps, repoName: string, from: SnapshotOf, into: Instance, actor: string): Promise<BackupRun> {
  const repo = getRepository(deps.db, repoName);
  const run = startRun(deps.db, repo, 'restore', `instance:${into.slug}`, actor);
  const started = Date.now();
  try {
    const snap = await restoreVolumesAt(deps, deps.engineFor(serverOf(deps.db, into)), accessOf(deps.dataDir, repo), from, into, await runningContainerOf(deps, into));
    return endRun(deps.db, run, started, { snapshotId: snap.id });
  } catch (err) {
    const failed = endRun(deps.db, run, started, { status: 'failed', error: (err as Error).message.slice(0, 600) });
    // What the caller asked wrong (no such snapshot) is its error; what restic met is the run's.
    if (isCatteryError(err) && err.statusCode < 500) throw err;
    return failed;
  }
}

/** `running`: the container to hold paused while its volumes are filled (runningContainerOf); by default the
 * instance's plain container on `engine`, which a move's target does not run yet. Null: none runs. */
export async function restoreVolumesAt(deps: ResticDeps & Pick<BackupDeps, 'catalog'>, engine: Engine, access: RepoAccess,
  from: SnapshotOf, into: Pick<Instance, 'slug' | 'service'>, running?: ExecTarget | null): Promise<Snapshot> {
  const loc = parseRepoUrl(access.url);
  const m = deps.catalog.services.get(into.service)?.manifest;
  if (!m) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', into.service);
  const snaps = from.found ? [] : snapshotsOf(await snapshotsAt(deps, engine, access, `instance:${from.slug}`), deps.hosterId, into.service, from.notBefore);
  const snap = from.found ?? (from.snapshot ? pickSnapshot(snaps, from.snapshot) : snaps.at(-1));
  if (!snap) throw fail('CATTERY_ERR_NOT_FOUND', `No snapshot${from.snapshot ? ` ${from.snapshot}` : ''} of "${from.slug}" for "${deps.hosterId}"`);
  const mounts = m.volumes.map((v) => ({ kind: 'volume' as const, source: volumeName(deps.hosterId, into.slug, v.name), target: `${IN.data}/${v.name}`, readOnly: false }));
  // Restoring writes files as their owners: the capabilities to set owners and modes, nothing else.
  const caps = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID'];
  const live = running === undefined ? { engine, container: containerName(deps.hosterId, into.slug) } : running;
  let paused = false;
  try {
    // Emptied and filled by one container, which holds the instance paused from before the first file goes to the
    // last (a pass unpauses a paused instance that nothing holds).
    const wipe = m.volumes.map((v) => `find '${IN.data}/${v.name}' -mindepth 1 -delete`).join(' && ') || 'true';
    const r = await restic(deps, engine, access, ['-c', `${wipe} || { echo 'Fatal: emptying the volumes failed' >&2; exit 1; }; exec /usr/bin/restic "$@"`, 'restic', ...restoreArgs(loc, snap.id)], {
      mounts, capAdd: caps, entrypoint: ['/bin/sh'], timeoutMs: 6 * 3_600_000, scratch: [IN.data],
      holds: { slug: into.slug, pause: async () => { paused = !!live && await pauseContainer(live.engine, live.container); } },
    });
    if (r.exitCode !== 0) throw fail('CATTERY_ERR_BACKUP', resticError(r.stderr, r.exitCode));
    return snap;
  } finally {
    if (paused && live) await unpauseContainer(live.engine, live.container).catch(() => undefined);
  }
}

export function lastRuns(db: Db, repoName: string, limit = 50): BackupRun[] {
  const repo = getRepository(db, repoName);
  return db.select().from(backupRuns).where(eq(backupRuns.repositoryId, repo.id)).orderBy(desc(backupRuns.id)).limit(limit).all();
}

/** The last successful backup of each target, for /metrics and the admin page. */
export function lastSuccess(db: Db): { repository: string; target: string; at: string }[] {
  return db.$client.prepare(`SELECT r.name repository, b.target target, MAX(b.finished_at) at FROM backup_runs b JOIN backup_repositories r ON r.id = b.repository_id
    WHERE b.kind = 'backup' AND b.status = 'done' GROUP BY r.name, b.target`).all() as { repository: string; target: string; at: string }[];
}


/** cattery's own snapshot (its newest for this hoster id, or the one named) into `targetDir` (0700): cattery.db,
 * secret.key, federation/identity.json, hoster.json. What `cattery restore` starts from on a new machine. */
export async function restoreHosterFiles(deps: ResticDeps, engine: Engine, access: RepoAccess, targetDir: string, snapshot?: string): Promise<Snapshot> {
  const snaps = await snapshotsAt(deps, engine, access, 'hoster');
  const snap = snapshot ? pickSnapshot(snaps, snapshot) : snaps.filter((s) => s.host === deps.hosterId).at(-1);
  if (!snap) throw fail('CATTERY_ERR_NOT_FOUND', `No snapshot of cattery itself${snapshot ? ` ${snapshot}` : ` for "${deps.hosterId}"`} in ${access.url}`);
  ensureDir(targetDir);
  const r = await restic(deps, engine, access, restoreArgs(parseRepoUrl(access.url), snap.id), {
    mounts: [{ kind: 'bind', source: targetDir, target: `${IN.data}/hoster`, readOnly: false }], scratch: [IN.data], timeoutMs: 600_000,
    capAdd: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID'],
  });
  if (r.exitCode !== 0) throw fail('CATTERY_ERR_BACKUP', resticError(r.stderr, r.exitCode));
  return snap;
}

/** An instance as it was in a snapshot, as a new instance beside it (to compare, or to take a resident's file back
 * by hand): made stopped, its volumes filled from the snapshot, then started. The original is not touched. */
export async function restoreBeside(deps: BackupDeps, instanceDeps: InstanceDeps, repoName: string,
  from: SnapshotOf, newSlug: string, actor: string, onMade?: () => void): Promise<{ run: BackupRun; instance: Instance }> {
  const orig = getInstance(deps.db, from.slug);
  const server = serverOf(deps.db, orig);
  const made = createInstance(instanceDeps, { service: orig.service, slug: newSlug, server: server.name, env: orig.config.env, desired: 'stopped' }, actor);
  onMade?.();
  const engine = deps.engineFor(server);
  await ensureInstanceVolumes({ catalog: deps.catalog, hosterId: deps.hosterId, sizedDir: isLocalEndpoint(server.dockerEndpoint) ? path.join(deps.dataDir, 'volumes') : undefined }, engine, made);
  const run = await restoreVolumes(deps, repoName, from, made, actor);
  const instance = run.status === 'done' ? updateInstance(instanceDeps, newSlug, { desired: 'running' }, actor, 'start') : made;
  return { run, instance };
}

/** Where the account's data as it was before a restore is kept (a restore loses nothing): data/backups/accounts,
 * a folder per account id, removed with the account. */
export const replacedDir = (dataDir: string) => path.join(dataDir, 'backups', 'accounts');

/** One resident's data in one service put back as it was in a snapshot, the others' left as they are: the instance
 * is restored beside (a new instance, made, filled and started by the reconciler), the service's own export takes
 * the resident's data there, the live account's current data is kept in data/backups/accounts/<account id> (0600),
 * and the service's import replaces the live account's data with the snapshot's. The instance beside is dropped
 * after. A snapshot taken before the account was made is refused: its data under that name was someone else's. */
export async function restoreAccount(deps: BackupDeps, accountDeps: AccountDeps, instanceDeps: InstanceDeps,
  converge: (slug: string) => Promise<void>, repoName: string,
  target: { slug: string; username: string; snapshot?: string }, actor: string): Promise<{ run: BackupRun; keptAt: string | null }> {
  const repo = getRepository(deps.db, repoName);
  // Everything the import will ask, asked before anything is made.
  const acc = checkImportable(accountDeps, target.slug, target.username);
  const live = getInstance(deps.db, target.slug);
  if (!deps.catalog.services.get(live.service)?.manifest.accounts?.operations.export) {
    throw fail('CATTERY_ERR_ACCOUNT_UNSUPPORTED', `The ${live.service} service cannot export one account`);
  }
  const snaps = (await listSnapshots(deps, repoName, `instance:${target.slug}`)).filter((s) => s.host === deps.hosterId);
  const snap = target.snapshot ? pickSnapshot(snaps, target.snapshot) : snaps.at(-1);
  if (!snap) throw fail('CATTERY_ERR_NOT_FOUND', `No snapshot${target.snapshot ? ` ${target.snapshot}` : ''} of "${target.slug}" for "${deps.hosterId}"`);
  if (Date.parse(snap.time) < Date.parse(acc.createdAt)) {
    throw fail('CATTERY_ERR_CONFLICT', `Snapshot ${snap.shortId} (${snap.time.slice(0, 19)}) was taken before the account "${target.username}" was made (${acc.createdAt.slice(0, 19)}): what it holds under that name belonged to someone else`);
  }
  // The instance beside: a name of its own that says what it is for, within the slug pattern, and never one that
  // exists (only what this restore made is dropped at the end).
  const besideSlug = `${target.slug.slice(0, 26)}-restore-${crypto.randomBytes(3).toString('hex')}`;
  if (findInstance(deps.db, besideSlug)) throw fail('CATTERY_ERR_CONFLICT', `An instance "${besideSlug}" exists already: try again`);
  const run = startRun(deps.db, repo, 'restore', `account:${target.slug}/${target.username}`, actor);
  const started = Date.now();
  const stageRoot = accountDeps.stagingDir ?? path.join(deps.dataDir, 'tmp');
  const stage = path.join(stageRoot, `restore-${besideSlug}`);
  let made = false;
  let keptAt: string | null = null;
  try {
    const beside = await restoreBeside(deps, instanceDeps, repoName, { slug: target.slug, found: snap }, besideSlug, actor, () => { made = true; });
    if (beside.run.status !== 'done') throw fail('CATTERY_ERR_BACKUP', beside.run.error ?? 'the snapshot could not be restored');
    // The run of the volumes' restore is the instance beside's; this run is the account's.
    deps.db.delete(backupRuns).where(eq(backupRuns.id, beside.run.id)).run();
    await converge(besideSlug);
    ensureDir(stageRoot);
    ensureDir(stage);
    const fromSnapshot = path.join(stage, 'snapshot.tar');
    await exportToFile(accountDeps, getInstance(deps.db, besideSlug), target.username, acc.quotaMb, fromSnapshot);
    // What the account holds now is kept, whole, before it is replaced.
    const keptRoot = accountDeps.keptDir ?? replacedDir(deps.dataDir);
    for (const d of [path.dirname(keptRoot), keptRoot, keptDirOf(keptRoot, acc.id)]) ensureDir(d);
    const keptFile = path.join(keptDirOf(keptRoot, acc.id), `${target.slug}-${target.username}-${new Date().toISOString().replace(/[:.]/g, '-')}.tar`);
    await exportToFile(accountDeps, live, target.username, acc.quotaMb, keptFile);
    keptAt = keptFile;
    await importAccount(accountDeps, target.slug, target.username, fromSnapshot, actor);
    return { run: endRun(deps.db, run, started, { snapshotId: snap.id, bytesProcessed: fs.statSync(fromSnapshot).size }), keptAt };
  } catch (err) {
    const failed = endRun(deps.db, run, started, { status: 'failed', error: (err as Error).message.slice(0, 600) });
    if (isCatteryError(err) && err.statusCode < 500 && err.code !== 'CATTERY_ERR_ACCOUNT_OPERATION') throw err;
    return { run: failed, keptAt };
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
    // The instance beside held a copy of every resident's data: dropped, not archived.
    if (made && findInstance(deps.db, besideSlug)) {
      try {
        updateInstance(instanceDeps, besideSlug, { desired: 'deleted', purge: true }, actor, 'delete');
        await converge(besideSlug).catch(() => undefined);
      } catch (err) { deps.log.error({ err, slug: besideSlug }, 'the instance a resident\'s restore made beside was not dropped: delete it with purge'); }
    }
  }
}
