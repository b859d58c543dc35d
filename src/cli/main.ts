// `cattery <command>`: serve, migrate, users add, images build, images gc, volumes orphans/archive/drop, catalog check,
// catalog schema, backup, restore, federation, agent.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatCatalogErrors, loadCatalog, loadValidCatalog } from '../catalog/load.js';
import { ManifestSchema } from '../catalog/manifest.js';
import { loadConfig } from '../config.js';
import { isCatteryError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { firstPassword } from '../identity/passwords.js';

// The database, the engine and the whole runtime are loaded by the commands that use them: `catalog check` and
// `catalog schema` (run by CI and the tests) then start without dockerode, drizzle and Fastify, in a third of the time.
const database = () => import('../db/connection.js');
const engineSurface = () => import('../orchestrator/docker/index.js');
const runtime = () => import('../runtime.js');
const users = () => import('../identity/users.js');
const housekeeping = () => import('../orchestrator/housekeeping.js');

const USAGE = `usage: cattery <command>
  serve [--build-images]        run the API, the reconciler and the timers
  migrate                       apply database migrations and exit
  images build [--only ID,...]  build the local images of the catalog (Debian base with debootstrap)
  images gc [--apply] [--only ID,...]
                                list the hash-tagged images nothing uses (catalog, instances, containers); --apply
                                removes them
  volumes orphans               list the volumes whose instance has no row
  volumes archive NAME [--server S]
                                copy an orphan volume to data/backups/NAME-<time>.tar.gz
  volumes drop NAME [--server S] [--force]
                                remove an orphan volume; refused unless archived first (or --force)
  catalog check [--dir DIR]     validate service manifests; exit 1 on any error
  catalog schema [--out FILE]   write the manifest JSON Schema (services/schema.json)
  users add LOGIN --name NAME --role ROLE[,ROLE]
                                add a person (the first administrator, say); prints a first password to change
                                at the first sign-in
  backup add|sheet|run|snapshots|check|restore …
                                backups with restic (cattery backup, alone, says how)
  servers list|swarm-init|join-tokens|join|label …
                                servers and the Docker Swarm they form (cattery servers, alone, says how)
  federation fingerprint|rotate-key
                                this hoster's federation key: its fingerprint, or a new key signed by the old
  agent run|token …             on a node: meter it and send signed samples to the manager; on the manager: a
                                one-time enrolment token for a server (cattery agent, alone, says how)
  guard deploy [--interval S]   on the manager: the node guard (iptables rules closing the tasks' way out to the
                                nodes) as a global Swarm service (docs/swarm.md)
  restore --from URL --password-file FILE
                                a whole hoster on a new machine, from its backups and the recovery sheet
Configuration comes from CATTERY_* environment variables (see README).`;

function out(line: string) {
  process.stdout.write(`${line}\n`);
}

export function manifestJsonSchema(): string {
  return `${JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...ManifestSchema }, null, 2)}\n`;
}

async function engineOrExplain(endpoint: string, hosterId: string, log: Logger) {
  const { connectEngine, ping } = await engineSurface();
  const engine = connectEngine(endpoint, { hosterId, timeoutSeconds: 10, log });
  try {
    await ping(engine);
  } catch (err) {
    throw new Error(`no Docker engine answers at ${endpoint}. As root, \`bash deploy/ensure-engine.sh\` installs Debian's docker.io and starts dockerd; otherwise start Docker yourself or set CATTERY_DOCKER. (${(err as Error).message})`);
  }
  return engine;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  try {
    if (cmd === 'catalog' && sub === 'check') {
      const { values } = parseArgs({ args: rest, options: { dir: { type: 'string', multiple: true } } });
      const dirs = values.dir?.length ? values.dir.map((d) => path.resolve(d)) : loadConfig().catalogDirs;
      const catalog = loadCatalog(dirs);
      if (catalog.errors.length) {
        process.stderr.write(`${formatCatalogErrors(catalog.errors)}\n`);
        return 1;
      }
      out(`catalog ok: ${[...catalog.services.keys()].join(', ') || '(no service)'}`);
      return 0;
    }
    if (cmd === 'catalog' && sub === 'schema') {
      const { values } = parseArgs({ args: rest, options: { out: { type: 'string' } } });
      if (values.out) fs.writeFileSync(values.out, manifestJsonSchema(), { mode: 0o644 }); // public: no resident's data else process.stdout.write(manifestJsonSchema());
      return 0;
    }
    // From here on files hold residents' data or secrets: cattery's user only, from the first one (cattery.db,
    // its WAL, data/). The catalog commands above write nothing private (services/schema.json stays readable).
    process.umask(0o077);
    // A node's agent has a configuration of its own (config.ts loadAgentConfig): a node runs no manager.
    if (cmd === 'agent') return await (await import('./agent.js')).agentCommand(sub, rest);
    if (cmd === 'guard') return await (await import('./guard.js')).guardCommand(sub, rest);
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    if (cmd === 'backup') return await (await import('./backup.js')).backupCommand(sub, rest, config, log);
    if (cmd === 'restore') return await (await import('./backup.js')).restoreCommand([sub, ...rest].filter((x): x is string => x !== undefined), config, log);
    if (cmd === 'servers') return await (await import('./servers.js')).serversCommand(sub, rest, config, log);
    if (cmd === 'federation') return await (await import('./federation.js')).federationCommand(sub, config);
    if (cmd === 'migrate') {
      const { applyMigrations, openDb } = await database();
      const db = openDb(config.dbFile);
      applyMigrations(db);
      db.$client.close();
      out(`database ${config.dbFile} is up to date`);
      return 0;
    }
    if (cmd === 'users' && sub === 'add') {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { name: { type: 'string' }, role: { type: 'string' } } });
      const login = positionals[0];
      if (!login || !values.name || !values.role) throw new Error('usage: cattery users add LOGIN --name NAME --role admin[,mediator…]');
      const [{ applyMigrations, openDb }, { createUser }] = await Promise.all([database(), users()]);
      const db = openDb(config.dbFile);
      try {
        applyMigrations(db);
        const password = firstPassword();
        await createUser(db, { login, name: values.name, roles: values.role.split(','), password, mustChangePassword: true });
        out(`${login} added. First password (shown once, to change at the first sign-in): ${password}`);
      } finally { db.$client.close(); }
      return 0;
    }
    if (cmd === 'images' && sub === 'build') {
      const { values } = parseArgs({ args: rest, options: { only: { type: 'string' } } });
      const engine = await engineOrExplain(config.dockerEndpoint, config.hosterId, log);
      const { buildImages, buildWorkDir, softwareDir } = await engineSurface();
      const catalog = loadValidCatalog(config.catalogDirs);
      const refs = await buildImages(engine, catalog, {
        mirror: config.debianMirror, workDir: buildWorkDir(config.dataDir), progress: out, inventoryDir: softwareDir(config.dataDir),
        ...(values.only ? { only: values.only.split(',') } : {}),
      });
      out(`images ready: ${refs.join(' ')}`);
      return 0;
    }
    if (cmd === 'volumes' || (cmd === 'images' && sub === 'gc')) return await housekeep(config, log, cmd, sub, rest);
    if (cmd === 'serve') {
      const { values } = parseArgs({ args: [sub, ...rest].filter((x): x is string => x !== undefined), options: { 'build-images': { type: 'boolean' } } });
      if (values['build-images']) {
        const engine = await engineOrExplain(config.dockerEndpoint, config.hosterId, log);
        const { buildImages, buildWorkDir, softwareDir } = await engineSurface();
        await buildImages(engine, loadValidCatalog(config.catalogDirs), {
          mirror: config.debianMirror, workDir: buildWorkDir(config.dataDir), progress: (l) => log.info(l), inventoryDir: softwareDir(config.dataDir),
        });
      }
      return await serve(config, log);
    }
    process.stderr.write(`${USAGE}\n`);
    return cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  } catch (err) {
    const code = isCatteryError(err) ? ` [${err.code}]` : '';
    process.stderr.write(`cattery: ${(err as Error).message}${code}\n`);
    return 1;
  }
}

const mb = (bytes: number | null) => (bytes === null ? '?' : `${(bytes / 1e6).toFixed(1)} MB`);

/** `volumes …` and `images gc`: the database and the engines, no HTTP app; every act journaled as `cli`. */
async function housekeep(config: ReturnType<typeof loadConfig>, log: Logger, cmd: string, sub: string | undefined, rest: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: { server: { type: 'string' }, force: { type: 'boolean' }, apply: { type: 'boolean' }, only: { type: 'string' } },
  });
  const [{ applyMigrations, openDb }, hk, { connectEngine, engineCertsDir }] = await Promise.all([database(), housekeeping(), engineSurface()]);
  const db = openDb(config.dbFile);
  try {
    applyMigrations(db);
    const deps = {
      db, catalog: loadValidCatalog(config.catalogDirs), hosterId: config.hosterId, log,
      engineFor: (s: { dockerEndpoint: string }) => connectEngine(s.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: config.dockerTimeoutSeconds, log, certsDir: engineCertsDir(config.dataDir) }),
      backupsDir: path.join(config.dataDir, 'backups'), volumesDir: path.join(config.dataDir, 'volumes'),
    };
    const actor = 'cli';
    if (cmd === 'images') {
      const r = await hk.collectImages(deps, { apply: values.apply === true, actor, ...(values.only ? { only: values.only.split(',') } : {}) });
      for (const i of r.images) out(`${r.applied ? (i.removed ? 'removed ' : `kept (${i.error}) `) : 'would remove '}${i.ref}  ${mb(i.bytes)}  (${i.server})`);
      out(r.images.length === 0 ? 'no unused image' : `${r.applied ? 'freed' : 'would free'} ${mb(r.bytes)}${r.applied ? '' : ' (run with --apply to remove)'}`);
      return r.images.some((i) => i.error) ? 1 : 0;
    }
    const name = positionals[0];
    if (sub === 'orphans') {
      const list = await hk.listOrphanVolumes(deps);
      for (const v of list) {
        out(`${v.name}  instance ${v.slug}${v.service ? ` (${v.service})` : ''}  server ${v.server}  size ${mb(v.sizeBytes)}  used ${mb(v.usedBytes)}  created ${v.createdAt}  ${v.archive ? `archived ${v.archive.file}` : 'not archived'}`);
      }
      out(list.length ? `${list.length} orphan volume(s)` : 'no orphan volume');
      return 0;
    }
    if (sub === 'archive' && name) {
      const r = await hk.archiveOrphanVolume(deps, name, { actor, server: values.server });
      out(`${name} archived to ${r.file} (${mb(r.bytes)})`);
      return 0;
    }
    if (sub === 'drop' && name) {
      await hk.dropOrphanVolume(deps, name, { actor, server: values.server, force: values.force === true });
      out(`${name} dropped`);
      return 0;
    }
    process.stderr.write(`${USAGE}\n`);
    return 2;
  } finally { db.$client.close(); }
}

async function serve(config: ReturnType<typeof loadConfig>, log: Logger): Promise<number> {
  const [{ createRuntime }, { hasAdmin }] = await Promise.all([runtime(), users()]);
  const rt = await createRuntime(config, log);
  if (!config.adminToken && !hasAdmin(rt.db)) log.warn('no administrator yet: add one with `cattery users add LOGIN --name NAME --role admin`');
  // Without an engine the API still serves; the reconciler converges once the engine answers.
  await engineOrExplain(config.dockerEndpoint, config.hosterId, log).catch((err: Error) => log.error(err.message));
  rt.start(config.reconcileIntervalSeconds);
  await rt.app.listen({ host: config.host, port: config.port });
  return new Promise<number>((resolve) => {
    let closing = false;
    const shutdown = (signal: string) => {
      if (closing) return;
      closing = true;
      log.info({ signal }, 'shutting down');
      // Whatever a pass did not finish is in the database; the next start finishes it.
      const force = setTimeout(() => resolve(1), 20_000);
      force.unref();
      rt.close().then(() => { clearTimeout(force); resolve(0); }, (err) => { log.error({ err }, 'shutdown failed'); resolve(1); });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
}
