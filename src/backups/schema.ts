// Backups in their own tables: where snapshots go (repositories) and what every run did (runs). restic keeps the
// snapshots themselves; these rows say what cattery asked and what restic answered, for the admin and /metrics.
// A separate schema file of the same database (drizzle.config.ts lists it).
import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, index } from 'drizzle-orm/sqlite-core';

const now = sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`;

/** A restic repository: a local folder, an SFTP address or an S3 bucket. Its password is a 0600 file of its own in
 * the data folder (never in the database, which is itself backed up into the repository). */
export const backupRepositories = sqliteTable('backup_repositories', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  /** restic's repository address: `/srv/backups/cattery`, `sftp:user@host:/path`, `s3:https://host/bucket`. */
  url: text('url').notNull(),
  /** Hours between two scheduled backups (24: daily). 0: only by hand. */
  everyHours: integer('every_hours').notNull().default(24),
  keepDaily: integer('keep_daily').notNull().default(7),
  keepWeekly: integer('keep_weekly').notNull().default(4),
  keepMonthly: integer('keep_monthly').notNull().default(12),
  /** Days between two `restic check --read-data-subset`. */
  checkEveryDays: integer('check_every_days').notNull().default(7),
  /** The Docker network restic's container joins to reach the remote (null: the default bridge; none for a folder). */
  network: text('network'),
  createdAt: text('created_at').notNull().default(now),
});

export const RUN_KINDS = ['backup', 'check', 'forget', 'restore'] as const;
export type RunKind = (typeof RUN_KINDS)[number];
export const RUN_STATUSES = ['running', 'done', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** One run of restic for one target: `hoster` (cattery's database, secret and settings) or `instance:<slug>`. */
export const backupRuns = sqliteTable('backup_runs', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  repositoryId: integer('repository_id').notNull().references(() => backupRepositories.id, { onDelete: 'cascade' }),
  kind: text('kind', { enum: RUN_KINDS }).notNull(),
  target: text('target').notNull(),
  status: text('status', { enum: RUN_STATUSES }).notNull().default('running'),
  snapshotId: text('snapshot_id'),
  /** What this run added to the repository (after deduplication and compression), and what it read. */
  bytesAdded: integer('bytes_added'),
  bytesProcessed: integer('bytes_processed'),
  filesProcessed: integer('files_processed'),
  durationMs: integer('duration_ms'),
  /** How the copy was made consistent: `dump` (the service's own), `paused` (container paused), `stopped`, `live`. */
  consistency: text('consistency'),
  error: text('error'),
  actor: text('actor').notNull(),
  startedAt: text('started_at').notNull().default(now),
  finishedAt: text('finished_at'),
}, (t) => [index('backup_runs_repo_started').on(t.repositoryId, t.startedAt)]);

export type BackupRepository = typeof backupRepositories.$inferSelect;
export type BackupRun = typeof backupRuns.$inferSelect;
