// The state of every backup at a glance, for the admin page and GET /api/backups: per repository, per target
// (cattery itself, each instance meant to exist), whether its last snapshot is recent, late, failing or missing.
import type { Db } from '../db/connection.js';
import { listInstances } from '../orchestrator/instances.js';
import { listRepositories } from './backups.js';

export type TargetHealth = 'ok' | 'late' | 'failed' | 'never' | 'running';

export interface TargetState {
  target: string;
  state: TargetHealth;
  lastSuccessAt: string | null;
  lastError: string | null;
  bytesAdded: number | null;
  durationMs: number | null;
}

export interface RepositoryState {
  name: string; url: string; everyHours: number; targets: TargetState[];
  lastCheck: { at: string; status: string; error: string | null } | null;
}

/** A snapshot is late once one and a half periods have passed without a new one (a daily backup: 36 h). */
export function healthOf(o: { newest: { status: string } | null; lastSuccessAt: string | null; everyHours: number }, now: number): TargetHealth {
  if (o.newest?.status === 'running') return 'running';
  if (o.newest?.status === 'failed') return 'failed';
  if (!o.lastSuccessAt) return 'never';
  if (o.everyHours > 0 && now - Date.parse(o.lastSuccessAt) > o.everyHours * 1.5 * 3_600_000) return 'late';
  return 'ok';
}

export function backupState(db: Db, now = Date.now()): RepositoryState[] {
  const targets = ['hoster', ...listInstances(db).filter((i) => i.desired !== 'deleted').map((i) => `instance:${i.slug}`)];
  const newestOf = db.$client.prepare(`SELECT status, error, bytes_added, duration_ms FROM backup_runs WHERE repository_id = ? AND target = ? AND kind = 'backup'
    ORDER BY id DESC LIMIT 1`);
  const successOf = db.$client.prepare(`SELECT MAX(finished_at) at FROM backup_runs WHERE repository_id = ? AND target = ? AND kind = 'backup' AND status = 'done'`);
  const checkOf = db.$client.prepare(`SELECT COALESCE(finished_at, started_at) at, status, error FROM backup_runs WHERE repository_id = ? AND kind = 'check' ORDER BY id DESC LIMIT 1`);
  return listRepositories(db).map((repo) => ({
    name: repo.name, url: repo.url, everyHours: repo.everyHours,
    lastCheck: (checkOf.get(repo.id) as RepositoryState['lastCheck'] | undefined) ?? null,
    targets: targets.map((target) => {
      const newest = newestOf.get(repo.id, target) as { status: string; error: string | null; bytes_added: number | null; duration_ms: number | null } | undefined;
      const lastSuccessAt = (successOf.get(repo.id, target) as { at: string | null }).at;
      return {
        target, lastSuccessAt, state: healthOf({ newest: newest ?? null, lastSuccessAt, everyHours: repo.everyHours }, now),
        lastError: newest?.status === 'failed' ? newest.error : null, bytesAdded: newest?.bytes_added ?? null, durationMs: newest?.duration_ms ?? null,
      };
    }),
  }));
}
