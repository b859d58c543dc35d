// What `?wait=true` waits for: the instance converged to what was asked (healthy, or running when its service has
// no health check; stopped; gone), or a clear error when it failed or did not get there in time. Polls the
// database, where the reconciler records every observation; the reconciler's passes do the work.
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import type { Instance } from '../db/schema.js';
import { fail } from '../errors.js';
import { findInstance } from './instances.js';

export type Convergence = { done: true; row: Instance | null } | { done: false; failed?: string };

/** Pure: whether this row shows its desired state reached, failed, or neither yet. */
export function convergence(catalog: Catalog, row: Instance | undefined, generation: number): Convergence {
  if (!row) return { done: true, row: null };
  if (row.generation > generation) return { done: false };
  // A delete that failed once says why at once (an archive that cannot be made will not be made by waiting).
  if (row.desired === 'deleted') return row.attempts > 0 && row.lastError ? { done: false, failed: row.lastError } : { done: false };
  if (row.desired === 'stopped') return row.observed === 'stopped' ? { done: true, row } : { done: false };
  const hasHealth = Boolean(catalog.services.get(row.service)?.manifest.health);
  if (row.observed === 'healthy' || (!hasHealth && row.observed === 'running')) return { done: true, row };
  if (row.observed === 'failed' || row.observed === 'unhealthy' || row.observed === 'down') return { done: false, failed: `${row.observed}${row.lastError ? `: ${row.lastError}` : ''}` };
  // The same error three passes running is not a hiccup: say it now (the reconciler keeps trying).
  if (row.attempts >= 3 && row.lastError) return { done: false, failed: `${row.lastError} (${row.attempts} attempts; still retrying)` };
  return { done: false };
}

export async function waitConverged(deps: { db: Db; catalog: Catalog }, slug: string, generation: number, timeoutMs: number, everyMs = 250): Promise<Instance | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = findInstance(deps.db, slug);
    const c = convergence(deps.catalog, row, generation);
    if (c.done) return c.row;
    if (c.failed) throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" did not converge: ${c.failed}`);
    if (Date.now() >= deadline) {
      throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" has not converged after ${Math.round(timeoutMs / 1000)} s (desired ${row!.desired}, observed ${row!.observed}${row!.lastError ? `, last error: ${row!.lastError}` : ''}); it is still being worked on, see GET /api/instances/${slug}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
