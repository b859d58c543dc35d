// The main transparency page's facts: where residents' data and its backups live, who else handles them, and how
// long cattery keeps what it records. Each one read from where cattery itself takes it (the configuration, the
// backup repositories' rows, the container log setting the orchestrator applies, the session policy), never written
// twice. Nothing that would help an attacker or name a person: no repository address (an SFTP URL holds a user
// name and a path), no server address, no server name.
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { listRepositories } from '../backups/backups.js';
import { CONTAINER_LOG } from '../orchestrator/docker/index.js';
import { listServers } from '../orchestrator/servers.js';

export type BackupKind = 'local' | 'sftp' | 's3' | 'rest' | 'other';

/** restic's repository address forms (restic docs, "Preparing a new repository"): a path, `sftp:`, `s3:`, `rest:`. */
export function backupKindOf(url: string): BackupKind {
  if (url.startsWith('/')) return 'local';
  const scheme = url.slice(0, url.indexOf(':') + 1);
  return scheme === 'sftp:' ? 'sftp' : scheme === 's3:' ? 's3' : scheme === 'rest:' ? 'rest' : 'other';
}

export interface BackupPlace {
  name: string; kind: BackupKind;
  /** ISO 3166-1 alpha-2, or null when an administrator has not said where a remote repository is. */
  country: string | null;
  place: string | null;
  everyHours: number; keepDaily: number; keepWeekly: number; keepMonthly: number;
}

export interface TransparencyFacts {
  organization: string;
  host: Config['publication']['host'];
  servers: number;
  subcontractors: Config['publication']['subcontractors'];
  backups: BackupPlace[];
  retention: {
    meterRawHours: number; meterHourlyDays: number;
    containerLog: { driver: string; maxSizeMb: number; maxFiles: number };
    sessionIdleMinutes: number; mediatorIdleMinutes: number; sessionMaxHours: number;
  };
}

export function transparencyFacts(db: Db, config: Config): TransparencyFacts {
  const p = config.publication;
  const sites = new Map(p.backupSites.map((s) => [s.repository, s]));
  return {
    organization: p.organization.name,
    host: p.host,
    servers: listServers(db).length,
    subcontractors: p.subcontractors,
    backups: listRepositories(db).map((r) => {
      const kind = backupKindOf(r.url);
      const site = sites.get(r.name);
      // A folder on the server is where the server is; a remote one is where the administrators said it is.
      return {
        name: r.name, kind, country: site?.country ?? (kind === 'local' ? p.host.countryCode : null), place: site?.place ?? null,
        everyHours: r.everyHours, keepDaily: r.keepDaily, keepWeekly: r.keepWeekly, keepMonthly: r.keepMonthly,
      };
    }),
    retention: {
      meterRawHours: config.meterRetentionHours, meterHourlyDays: config.meterHourlyDays,
      containerLog: { ...CONTAINER_LOG },
      sessionIdleMinutes: config.sessionIdleMinutes, mediatorIdleMinutes: config.mediatorIdleMinutes, sessionMaxHours: config.sessionMaxHours,
    },
  };
}
