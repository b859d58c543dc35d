// Backups in /metrics: when each target (cattery itself, each instance) last got a snapshot to each repository, and
// whether its newest run failed. An association's alerting (or the city's) then sees a late or failing backup.
import { Gauge, type Registry } from 'prom-client';
import type { Db } from '../db/connection.js';
import { lastSuccess } from './backups.js';

export function registerBackupMetrics(registry: Registry, db: Db): void {
  new Gauge({
    name: 'cattery_backup_last_success_timestamp_seconds', help: 'When the last successful backup of a target to a repository finished (Unix time)',
    labelNames: ['repository', 'target'], registers: [registry],
    collect() {
      this.reset();
      const rows = lastSuccess(db);
      for (const r of rows) this.set({ repository: r.repository, target: r.target }, Date.parse(r.at) / 1000);
    },
  });
  new Gauge({
    name: 'cattery_backup_last_run_failed', help: '1 when the newest backup run of a target to a repository failed',
    labelNames: ['repository', 'target'], registers: [registry],
    collect() {
      this.reset();
      const rows = db.$client.prepare(`SELECT r.name repository, b.target target, b.status status FROM backup_runs b JOIN backup_repositories r ON r.id = b.repository_id
        WHERE b.kind = 'backup' AND b.status != 'running' AND b.id = (SELECT MAX(id) FROM backup_runs x WHERE x.repository_id = b.repository_id AND x.target = b.target AND x.kind = 'backup' AND x.status != 'running')`).all() as { repository: string; target: string; status: string }[];
      for (const r of rows) this.set({ repository: r.repository, target: r.target }, r.status === 'failed' ? 1 : 0);
    },
  });
}
