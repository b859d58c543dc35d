// `cattery backup …` and `cattery restore --from …`: the backups domain from a shell, beside a running `cattery
// serve` (SQLite's WAL lets both write) or, for a restore, on a new machine before there is any database.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadValidCatalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';

const USAGE = `usage:
  cattery backup add NAME URL [--network NET] [--every-hours H]
                                a repository: a folder, sftp:user@host:/path or s3:https://host/bucket; restic init
  cattery backup key            print cattery's SSH public key (made the first time): add it to the SFTP remote's
                                authorized_keys before \`backup add NAME sftp:…\`
  cattery backup sheet NAME     print the recovery sheet (the password and how to restore; keep it on paper)
  cattery backup run NAME [--instance SLUG]
                                back up cattery and every instance (or one), then apply the retention
  cattery backup snapshots NAME [--tag hoster|instance:SLUG]
  cattery backup check NAME [--subset 5%]
  cattery backup restore NAME --instance SLUG [--snapshot ID]
                                put an instance's volumes back as they were (its newest snapshot by default)
  cattery restore --from URL --password-file FILE [--network NET]
                                a whole hoster on a new machine: cattery's database and secret, then every
                                instance's volumes; then \`cattery serve\` starts the instances`;

function out(line: string) {
  process.stdout.write(`${line}\n`);
}

async function open(config: Config, log: Logger) {
  const [{ applyMigrations, openDb }, docker, { createEngineRegistry }, { ensureDefaultServer }] = await Promise.all([
    import('../db/connection.js'), import('../orchestrator/docker/index.js'), import('../orchestrator/engines.js'), import('../orchestrator/servers.js'),
  ]);
  const db = openDb(config.dbFile);
  applyMigrations(db);
  const catalog = loadValidCatalog(config.catalogDirs);
  const engines = createEngineRegistry({ hosterId: config.hosterId, timeoutSeconds: config.dockerTimeoutSeconds, log, certsDir: docker.engineCertsDir(config.dataDir) });
  const image = docker.serviceImageRef(docker.systemImage('backup'));
  const localServer = () => ensureDefaultServer(db, config.dockerEndpoint, config.publishAddress);
  if (!(await docker.imageExists(engines.engineFor(localServer()), image))) throw new Error(`the backup image ${image} is not built: run \`cattery images build\``);
  return { db, catalog, hosterId: config.hosterId, dataDir: config.dataDir, image, engineFor: engines.engineFor, log, localServer };
}

function runLine(r: { kind: string; target: string; status: string; snapshotId: string | null; bytesAdded: number | null; bytesProcessed: number | null; durationMs: number | null; error: string | null }): string {
  const mb = (n: number | null) => (n == null ? '-' : `${(n / 1e6).toFixed(1)} MB`);
  return `${r.status === 'done' ? 'ok  ' : 'FAIL'} ${r.kind} ${r.target}${r.snapshotId ? ` snapshot ${r.snapshotId.slice(0, 8)}` : ''}`
    + `${r.kind === 'backup' && r.status === 'done' ? ` read ${mb(r.bytesProcessed)}, added ${mb(r.bytesAdded)}` : ''} in ${((r.durationMs ?? 0) / 1000).toFixed(1)} s`
    + `${r.error ? `: ${r.error}` : ''}`;
}

export async function backupCommand(sub: string | undefined, rest: string[], config: Config, log: Logger): Promise<number> {
  const b = await import('../backups/backups.js');
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: { network: { type: 'string' }, 'every-hours': { type: 'string' }, instance: { type: 'string' }, tag: { type: 'string' }, subset: { type: 'string' }, snapshot: { type: 'string' } },
  });
  const name = positionals[0];
  if (!sub || (!name && sub !== 'key')) throw new Error(USAGE);
  const deps = await open(config, log);
  try {
    if (sub === 'key') { out(await b.sshPublicKey(deps, deps.engineFor(deps.localServer()))); return 0; }
    if (!name) throw new Error(USAGE);
    if (sub === 'add') {
      const url = positionals[1];
      if (!url) throw new Error(USAGE);
      const everyHours = values['every-hours'] !== undefined ? Number(values['every-hours']) : undefined;
      const repo = await b.addRepository(deps, { name, url, network: values.network ?? null, ...(everyHours !== undefined ? { everyHours } : {}) }, 'cli')
        .catch(async (err: Error) => {
          // The usual first failure over SFTP: the remote does not know cattery's key yet. Say which key to add.
          if (url.startsWith('sftp:')) out(`cattery signs in to the remote with this key; add it to the remote account's ~/.ssh/authorized_keys, then run this command again:\n${await b.sshPublicKey(deps, deps.engineFor(deps.localServer()))}`);
          throw err;
        });
      out(`repository ${repo.name} ready at ${repo.url}`);
      if (url.startsWith('sftp:')) out(`cattery signs in with this key (add it to the remote's authorized_keys): ${await b.sshPublicKey(deps, deps.engineFor(deps.localServer()))}`);
      out(`Print the recovery sheet now and keep it away from the server: cattery backup sheet ${repo.name}`);
      return 0;
    }
    if (sub === 'sheet') { process.stdout.write(await b.recoverySheet(deps, name)); return 0; }
    // A backup already at work on this repository (cattery serve's schedule, another shell): this one waits its turn.
    if (sub === 'run' || sub === 'check' || sub === 'restore') {
      const repo = b.getRepository(deps.db, name);
      if (b.repoBusy(config.dataDir, repo.url)) out(`a backup to ${name} is running (cattery serve's schedule, or another command): waiting for it to finish…`);
      const until = Date.now() + 6 * 3_600_000;
      while (b.repoBusy(config.dataDir, repo.url) && Date.now() < until) await new Promise((r) => setTimeout(r, 2000));
    }
    if (sub === 'run') {
      const runs = values.instance ? [await b.backupInstance(deps, name, values.instance, 'cli')] : await b.backupAll(deps, name, 'cli');
      for (const r of runs) out(runLine(r));
      return runs.every((r) => r.status === 'done') ? 0 : 1;
    }
    if (sub === 'snapshots') {
      for (const s of await b.listSnapshots(deps, name, values.tag)) out(`${s.shortId} ${s.time.slice(0, 19)} ${s.host} ${s.tags.join(',')}`);
      return 0;
    }
    if (sub === 'check') { const r = await b.check(deps, name, 'cli', values.subset ?? '5%'); out(runLine(r)); return r.status === 'done' ? 0 : 1; }
    if (sub === 'restore') {
      if (!values.instance) throw new Error(USAGE);
      const { getInstance, requestRestart } = await import('../orchestrator/instances.js');
      const r = await b.restoreVolumes(deps, name, { slug: values.instance, ...(values.snapshot ? { snapshot: values.snapshot } : {}) }, getInstance(deps.db, values.instance), 'cli');
      out(runLine(r));
      // The service reads its data again from the start: a restart, carried out by the reconciler of `cattery serve`.
      if (r.status === 'done' && getInstance(deps.db, values.instance).desired === 'running') requestRestart(deps.db, values.instance, 'cli');
      return r.status === 'done' ? 0 : 1;
    }
    throw new Error(USAGE);
  } finally {
    deps.db.$client.close();
  }
}

/** A whole hoster on a new machine, from the repository and the recovery sheet's password alone. */
export async function restoreCommand(rest: string[], config: Config, log: Logger): Promise<number> {
  const { values } = parseArgs({ args: rest, options: { from: { type: 'string' }, 'password-file': { type: 'string' }, network: { type: 'string' }, snapshot: { type: 'string' } } });
  if (!values.from || !values['password-file']) throw new Error(USAGE);
  if (fs.existsSync(config.dbFile)) throw new Error(`${config.dbFile} exists: a restore never overwrites a hoster. Move the data folder away first.`);
  const passwordFile = path.resolve(values['password-file']);
  if (!fs.existsSync(passwordFile)) throw new Error(`no password file at ${passwordFile}`);
  const b = await import('../backups/backups.js');
  const docker = await import('../orchestrator/docker/index.js');
  process.umask(0o077);
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const engine = docker.connectEngine(config.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: config.dockerTimeoutSeconds, log });
  const image = docker.serviceImageRef(docker.systemImage('backup'));
  if (!(await docker.imageExists(engine, image))) throw new Error(`the backup image ${image} is not built: run \`cattery images build\``);
  const resticDeps = { hosterId: config.hosterId, dataDir: config.dataDir, image };
  const access = { url: values.from, network: values.network ?? null, passwordFile };
  if (values.from.startsWith('sftp:') && !b.hasSshKey(config.dataDir)) {
    out(`This machine signs in to the remote with a key of its own. Add this line to the remote's authorized_keys, then run the same command again:\n${await b.sshPublicKey(resticDeps, engine)}`);
    return 2;
  }
  const snap = await b.restoreHosterFiles(resticDeps, engine, access, config.dataDir, values.snapshot);
  out(`cattery's database and secret restored from snapshot ${snap.shortId} of ${snap.time.slice(0, 19)}`);

  const deps = await open(config, log);
  try {
    // The repository goes on being used: its password where cattery keeps it (0600), when the database knows it.
    const repo = b.listRepositories(deps.db).find((r) => r.url === values.from);
    if (repo) {
      fs.mkdirSync(path.dirname(b.passwordFile(config.dataDir, repo)), { recursive: true, mode: 0o700 });
      fs.copyFileSync(passwordFile, b.passwordFile(config.dataDir, repo));
      fs.chmodSync(b.passwordFile(config.dataDir, repo), 0o600);
    }
    const { forgetObservations, listInstances, serverOf } = await import('../orchestrator/instances.js');
    forgetObservations(deps.db);
    const { ensureInstanceVolumes } = await import('../orchestrator/instance-pass.js');
    let failed = 0;
    for (const inst of listInstances(deps.db).filter((i) => i.desired !== 'deleted')) {
      const server = serverOf(deps.db, inst);
      const e = deps.engineFor(server);
      const sizedDir = docker.isLocalEndpoint(server.dockerEndpoint) ? path.join(config.dataDir, 'volumes') : undefined;
      try {
        await ensureInstanceVolumes({ catalog: deps.catalog, hosterId: config.hosterId, sizedDir }, e, inst);
        const s = await b.restoreVolumesAt(deps, e, access, { slug: inst.slug }, inst);
        out(`ok   ${inst.slug} (${inst.service}) from snapshot ${s.shortId} of ${s.time.slice(0, 19)}`);
      } catch (err) {
        failed++;
        out(`FAIL ${inst.slug} (${inst.service}): ${(err as Error).message}`);
      }
    }
    out(failed ? `${failed} instance(s) not restored: see above; \`cattery serve\` starts the others` : 'every instance restored: start cattery with `cattery serve`');
    return failed ? 1 : 0;
  } finally {
    deps.db.$client.close();
  }
}
