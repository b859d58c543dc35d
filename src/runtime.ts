// Everything `cattery serve` holds, built from a Config: the database (migrated), the catalog (validated), the
// reconciler and the HTTP app. Tests build the same thing with their own Config.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadValidCatalog, type Catalog } from './catalog/load.js';
import type { Config } from './config.js';
import { applyMigrations, openDb, type Db } from './db/connection.js';
import { fail } from './errors.js';
import { buildApp } from './http/app.js';
import type { Logger } from './log.js';
import { createEventBus, type EventBus } from './orchestrator/events.js';
import { createReconciler, type Reconciler } from './orchestrator/reconcile.js';
import {
  forgetInstanceAccounts, refreshStaleUsage, retryPendingAccounts, sweepExportStaging, type AccountDeps,
} from './accounts/accounts.js';
import type { ExecLimits } from './orchestrator/docker/index.js';
import { createEngineRegistry, type EngineRegistry } from './orchestrator/engines.js';
import { ensureDefaultServer } from './orchestrator/servers.js';
import { createFirewall } from './orchestrator/firewall.js';
import { loadOrCreateSecret } from './identity/secret.js';
import { sealKeyFrom } from './accounts/sealed.js';
import { purgeExpiredSessions } from './identity/sessions.js';
import { createCollector, type Collector } from './metering/collector.js';
import { agentMeteredServers } from './agent/enrolment.js';
import { createIngress, type Ingress } from './ingress/ingress.js';
import { INGRESS_UID, engineCertsDir, serviceImageRef, systemImage } from './orchestrator/docker/index.js';
import type { BackupDeps } from './backups/backups.js';
import { createBackupSchedule } from './backups/schedule.js';
import { listenForDoor } from './http/door-socket.js';
import { createDkimKeys } from './ingress/dkim-keys.js';
import { certificateHostOf } from './ingress/mail-host.js';
import { governanceUpkeep } from './governance/upkeep.js';
import { createMailer } from './governance/reminders.js';
import { createFederation, type Federation } from './federation/federation.js';

export interface Runtime {
  config: Config;
  db: Db;
  catalog: Catalog;
  events: EventBus;
  reconciler: Reconciler;
  engines: EngineRegistry;
  /** What every account operation needs, built once: the API, the pages and the upkeep timer share it. */
  accounts: AccountDeps;
  /** What backups and restores need (backups/). */
  backups: BackupDeps;
  collector: Collector;
  /** The front door of each server (ingress/); idle unless config.ingress.enabled. */
  ingress: Ingress;
  /** This hoster's key, its peers and their refresh timer (federation/). */
  federation: Federation;
  app: FastifyInstance;
  log: Logger;
  /** Start the reconciler (timer, Docker events) and the retries of deferred account operations. */
  start(intervalSeconds: number): void;
  close(): Promise<void>;
}

export async function createRuntime(config: Config, log: Logger, opts: { maxBackoffSeconds?: number; accountLimits?: ExecLimits } = {}): Promise<Runtime> {
  // Everything cattery writes (database, archives, volume images, secrets) is its user's alone; explicit modes
  // are set as well, this covers what a library creates (SQLite's WAL and SHM).
  process.umask(0o077);
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(config.dataDir, 0o700);
  const db = openDb(config.dbFile);
  try {
    applyMigrations(db);
    const catalog = loadValidCatalog(config.catalogDirs);
    ensureDefaultServer(db, config.dockerEndpoint, config.publishAddress);
    const events = createEventBus();
    const orchestratorLog = log.child({ domain: 'orchestrator' });
    const engines = createEngineRegistry({ hosterId: config.hosterId, timeoutSeconds: config.dockerTimeoutSeconds, log: orchestratorLog, certsDir: engineCertsDir(config.dataDir) });
    // The front door reaches cattery's pages through a unix socket in its own folder: cattery listens there too, with
    // the same app (its WebSocket upgrades included), once the door first needs it.
    let app: FastifyInstance | undefined;
    const doorServers: http.Server[] = [];
    const serveCatteryOn = async (socketPath: string) => {
      if (!app) throw fail('CATTERY_ERR_CONFIG', 'the app is not built yet');
      doorServers.push(await listenForDoor(app, socketPath, INGRESS_UID));
    };
    const ingress = createIngress({ db, catalog, config, log: log.child({ domain: 'ingress' }), serveCatteryOn });
    const reconciler = createReconciler({
      db, catalog, events, engines, hosterId: config.hosterId, log: orchestratorLog, forgetAccounts: forgetInstanceAccounts,
      linkHostOf: (target) => certificateHostOf(db, target),
      backupsDir: path.join(config.dataDir, 'backups'), volumesDir: path.join(config.dataDir, 'volumes'), concurrency: config.concurrency,
      dockerTimeoutSeconds: config.dockerTimeoutSeconds, healthTimeoutSeconds: config.healthTimeoutSeconds,
      firewall: createFirewall({ pool: config.subnetPool, hosterId: config.hosterId, log: orchestratorLog }),
      ...(config.ingress.enabled ? { afterServerPass: ingress.sync } : {}),
      ...(opts.maxBackoffSeconds !== undefined ? { maxBackoffSeconds: opts.maxBackoffSeconds } : {}),
    });
    const collector = createCollector({
      db, catalog, engineFor: engines.engineFor, log: log.child({ domain: 'metering' }), idlePolicy: config.idlePolicy,
      retentionHours: config.meterRetentionHours, hourlyRetentionDays: config.meterHourlyDays,
      // A server whose own agent reports (agent/ingest.ts) is metered there, once.
      skipServer: (s) => agentMeteredServers(db).has(s.id),
    });
    const stagingDir = path.join(config.dataDir, 'tmp');
    const secret = loadOrCreateSecret(config.dataDir, config.secret);
    const accountDeps: AccountDeps = {
      db, catalog, hosterId: config.hosterId, engineFor: engines.engineFor, log: log.child({ domain: 'accounts' }),
      // Exports are staged in cattery's own data folder (0700), never the shared system temp folder.
      stagingDir, sealKey: sealKeyFrom(secret),
      keptDir: path.join(config.dataDir, 'backups', 'accounts'),
    };
    // A test shortens the deadline of the upkeep timer's operations only (tests/accounts/limits.test.ts); requests
    // keep the defaults.
    const upkeepDeps: AccountDeps = { ...accountDeps, ...(opts.accountLimits ? { limits: opts.accountLimits } : {}) };
    const backups: BackupDeps = {
      db, catalog, hosterId: config.hosterId, dataDir: config.dataDir, image: serviceImageRef(systemImage('backup')),
      engineFor: engines.engineFor, log: log.child({ domain: 'backups' }),
      localServer: () => ensureDefaultServer(db, config.dockerEndpoint, config.publishAddress),
    };
    const dkimKeys = createDkimKeys({ db, catalog, hosterId: config.hosterId, engineFor: engines.engineFor, log: log.child({ domain: 'ingress' }) });
    const federation = await createFederation({ db, catalog, config, accounts: accountDeps, log: log.child({ domain: 'federation' }) });
    app = await buildApp({ config, db, catalog, reconciler, events, log, collector, accounts: accountDeps, secret, ingress, dkimKeys, backups, federation });
    const governanceLog = log.child({ domain: 'governance' });
    const mailer = config.mail ? createMailer(config.mail) : undefined;
    let accountTimer: NodeJS.Timeout | undefined;
    let backupTimer: NodeJS.Timeout | undefined;
    const backupSchedule = createBackupSchedule(backups, log.child({ domain: 'backups' }));
    let retrying = false;
    return {
      config, db, catalog, events, reconciler, engines, accounts: accountDeps, backups, app, log, collector, ingress, federation,
      start(intervalSeconds) {
        sweepExportStaging(stagingDir);
        federation.start(config.federation.refreshSeconds);
        reconciler.start(intervalSeconds);
        collector.start(config.meterIntervalSeconds);
        // A look a minute is plenty for periods counted in hours; a backup in progress holds the next look.
        backupTimer = setInterval(() => { void backupSchedule.tick(); }, 60_000);
        backupTimer.unref();
        accountTimer = setInterval(() => {
          if (retrying) return;
          retrying = true;
          purgeExpiredSessions(db);
          // Usage an hour old at most: the per-account energy key is read from it.
          retryPendingAccounts(upkeepDeps).then(() => refreshStaleUsage(upkeepDeps, 3_600_000))
            .then(() => governanceUpkeep({ accounts: upkeepDeps, mailer, publicUrl: config.publicUrl, log: governanceLog }))
            .catch((err) => log.warn({ err }, 'account upkeep failed')).finally(() => { retrying = false; });
        }, intervalSeconds * 1000);
        accountTimer.unref();
      },
      async close() {
        clearInterval(accountTimer);
        clearInterval(backupTimer);
        await collector.stop();
        await federation.stop();
        for (const s of doorServers) s.closeAllConnections();
        await Promise.all(doorServers.map((s) => new Promise((resolve) => s.close(resolve))));
        await app!.close();
        await reconciler.stop();
        // A change of names starts a pass of its own (routes/hostnames): it must not make the door again after this.
        await ingress.stop();
        db.$client.close();
      },
    };
  } catch (err) {
    db.$client.close();
    throw err;
  }
}
