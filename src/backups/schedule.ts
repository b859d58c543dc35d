// When backups and checks run by themselves: each repository every `everyHours` (24: daily) and a check every
// `checkEveryDays`, counted from the last run that started, failed ones included (a failing remote is retried at the
// next period, not in a loop). Called from the runtime's timer; one pass at a time.
import type { Logger } from 'pino';
import type { BackupDeps } from './backups.js';
import { backupAll, check, listRepositories, repoBusy } from './backups.js';

/** Whether a period of `hours` has passed since `last` (ISO time, or none yet). 0 hours: never by itself. */
export function isDue(hours: number, last: string | null | undefined, now: number): boolean {
  if (!(hours > 0)) return false;
  if (!last) return true;
  const at = Date.parse(last);
  return !Number.isFinite(at) || now - at >= hours * 3_600_000;
}

function lastStarted(deps: BackupDeps, repositoryId: number, kind: 'backup' | 'check'): string | null {
  const row = deps.db.$client.prepare("SELECT MAX(started_at) at FROM backup_runs WHERE repository_id = ? AND kind = ? AND target IN ('hoster', 'all')")
    .get(repositoryId, kind) as { at: string | null };
  return row.at;
}

export function createBackupSchedule(deps: BackupDeps, log: Logger) {
  let busy = false;
  return {
    /** One look at every repository; returns once what was due has run. */
    async tick(now = Date.now()): Promise<void> {
      if (busy) return;
      busy = true;
      try {
        for (const repo of listRepositories(deps.db)) {
          // A run asked by hand (the page, the CLI) is at work there: the schedule looks again at its next tick.
          if (repoBusy(deps.dataDir, repo.url)) continue;
          if (isDue(repo.everyHours, lastStarted(deps, repo.id, 'backup'), now)) {
            const runs = await backupAll(deps, repo.name, 'schedule');
            const failed = runs.filter((r) => r.status === 'failed');
            if (failed.length) log.error({ repository: repo.name, failed: failed.map((r) => ({ target: r.target, error: r.error })) }, 'scheduled backup failed');
            else log.info({ repository: repo.name, runs: runs.length }, 'scheduled backup done');
          }
          if (isDue(repo.checkEveryDays * 24, lastStarted(deps, repo.id, 'check'), now)) {
            const r = await check(deps, repo.name, 'schedule');
            if (r.status === 'failed') log.error({ repository: repo.name, error: r.error }, 'scheduled repository check failed');
          }
        }
      } catch (err) {
        log.error({ err }, 'backup schedule failed');
      } finally {
        busy = false;
      }
    },
  };
}
