// The reconciler's decisions, pure: from what the database wants and what the engine shows to what is done next.
// No engine, no database, no clock of their own (`now` is an argument), so each is unit-tested
// (tests/orchestrator/converge.test.ts); the acting code (instance-pass.ts) only carries them out.
import type { Desired, Observed } from '../db/schema.js';
import { LABEL_GENERATION, LABEL_HOSTER, LABEL_INSTANCE, LABEL_ROLE, ROLE_ARCHIVE, type Adoption, type Unit, type UnitState } from './docker/index.js';

/** Doubling retries, 2 s after the first failure, capped (5 minutes unless a test asks for less). */
export const DEFAULT_MAX_BACKOFF_SECONDS = 300;

export function backoffSeconds(attempts: number, maxSeconds = DEFAULT_MAX_BACKOFF_SECONDS): number {
  return Math.min(2 ** attempts, maxSeconds);
}

/** Whether the instance, not in backoff or asked for by name, is worked on in this pass. */
export function isDue(nextAttemptAt: string | null, forced: boolean, now: number): boolean {
  return forced || !nextAttemptAt || Date.parse(nextAttemptAt) <= now;
}

export function isConverged(desired: Desired, observed: Observed): boolean {
  return (desired === 'running' && (observed === 'running' || observed === 'healthy'))
    || (desired === 'stopped' && observed === 'stopped');
}

/** What the engine shows, as an observation. A problem (exited, unhealthy) is kept as the instance's last error. */
export function observedOf(
  st: UnitState, desired: Desired, healthTimeoutSeconds: number, now: number,
): { observed: Observed; problem?: string } {
  // Pinned to a Swarm node that is down: not a failure a retry mends, an administrator's decision (docs/swarm.md).
  if (st.down !== undefined && desired === 'running') return { observed: 'down', problem: st.down };
  if (!st.running) {
    if (desired === 'stopped') return { observed: 'stopped' };
    return { observed: 'failed', problem: `container exited with code ${st.exitCode}${st.error ? `: ${st.error}` : ''}` };
  }
  if (st.health === 'healthy') return { observed: 'healthy' };
  if (st.health === 'unhealthy') return { observed: 'unhealthy', problem: 'health check failing' };
  if (st.health === 'starting') {
    const since = (now - Date.parse(st.startedAt)) / 1000;
    if (since > healthTimeoutSeconds) return { observed: 'unhealthy', problem: `not healthy ${Math.round(since)} s after start` };
    return { observed: 'starting' };
  }
  return { observed: 'running' };
}

export interface UnitPlan {
  /** This generation's container under the instance's name, if the engine has it. */
  current: Unit | undefined;
  /** Everything else of the instance: an older generation (an upgrade) or a stray duplicate. Volumes stay. */
  remove: { unit: Unit; kind: 'container-removed' | 'container-replaced' }[];
}

export function planUnits(found: Unit[], name: string, generation: number): UnitPlan {
  const plan: UnitPlan = { current: undefined, remove: [] };
  for (const u of found) {
    const sameGeneration = u.labels[LABEL_GENERATION] === String(generation);
    if (sameGeneration && u.names.includes(`/${name}`) && !plan.current) { plan.current = u; continue; }
    plan.remove.push({ unit: u, kind: sameGeneration ? 'container-removed' : 'container-replaced' });
  }
  return plan;
}

/** A container found under the instance's name: this generation's is adopted, an older one of ours replaced, and
 * one without our hoster and instance labels is never touched. */
export function adoption(labels: Record<string, string>, want: { hosterId: string; slug: string; generation: number }): Adoption {
  if (labels[LABEL_INSTANCE] !== want.slug || labels[LABEL_HOSTER] !== want.hosterId) return 'foreign';
  return labels[LABEL_GENERATION] === String(want.generation) ? 'adopt' : 'replace';
}

export type UnitAction = 'start' | 'stop' | 'restart' | 'none';

/** The one step that brings the unit to what is wanted. A restart is an intent like the others: while one is
 * pending (an open operation, carried out once and then closed by id, never judged by comparing cattery's clock
 * with the engine's), a running unit is restarted; a unit that is not running is simply started. */
export function nextAction(desired: Desired, st: Pick<UnitState, 'running'>, restartPending = false): UnitAction {
  if (desired === 'running' && !st.running) return 'start';
  if (desired === 'stopped' && st.running) return 'stop';
  if (desired === 'running' && restartPending) return 'restart';
  return 'none';
}

/** Group the engine's containers by instance; helper containers (the archive one) are no instance's. */
export function unitsBySlug(units: Unit[]): Map<string, Unit[]> {
  const bySlug = new Map<string, Unit[]>();
  for (const u of units) {
    if (u.labels[LABEL_ROLE] === ROLE_ARCHIVE) continue;
    const slug = u.labels[LABEL_INSTANCE] ?? '';
    bySlug.set(slug, [...(bySlug.get(slug) ?? []), u]);
  }
  return bySlug;
}
