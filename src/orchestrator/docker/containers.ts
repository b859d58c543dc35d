// Containers, idempotently: each call leaves the container in the state it names, and Docker's "already so" answers
// (304 on a start or stop, 404 on a remove) count as done. The 8 copies of that catch the reconciler once had live
// here, once.
import type Docker from 'dockerode';
import { fail } from '../../errors.js';
import { LABEL_HOLDS, LABEL_HOSTER, LABEL_INSTANCE, LABEL_ROLE, ROLE_BACKUP, call, statusOf, unless, type Engine } from './engine.js';

/** The seconds Docker waits after SIGTERM before it kills a container being stopped or restarted. */
const STOP_GRACE_SECONDS = 10;

/** What the engine says of a container's run, reduced to what the reconciler decides on. */
export interface UnitState {
  running: boolean;
  exitCode: number;
  error: string;
  /** Docker's health status when the image has a health check: starting, healthy, unhealthy. */
  health: string | undefined;
  startedAt: string;
  /** Frozen for a backup's copy (its health check then fails by itself: not an observation of the service). */
  paused?: boolean;
  /** On Swarm: pinned to a server whose node is down (why, and what to do). Swarm will not move it, on purpose. */
  down?: string;
}

/** One container as a listing shows it. */
export interface Unit {
  id: string;
  names: string[];
  labels: Record<string, string>;
  running: boolean;
}

export function unitOf(c: Docker.ContainerInfo): Unit {
  // A paused container (a backup copying its volumes) is a running one, frozen: `docker start` would refuse it (409),
  // and a pass must not fail the instance for the copy's minutes.
  return { id: c.Id, names: c.Names, labels: c.Labels, running: c.State === 'running' || c.State === 'paused' };
}

/** Whether a container of ours (same hoster) found under the wanted name is this generation's, an older one, or
 * not ours at all. Decided by the caller (orchestrator/converge.ts), from the labels. */
export type Adoption = 'adopt' | 'replace' | 'foreign';

export async function ensureContainerRemoved(engine: Engine, id: string, what: string): Promise<void> {
  await call(engine, `remove ${what}`, (d) => d.getContainer(id).remove({ force: true })).catch(unless(404));
}

export async function ensureStarted(engine: Engine, id: string, name: string): Promise<void> {
  await call(engine, `start ${name}`, (d) => d.getContainer(id).start()).catch(unless(304));
}

export async function ensureStopped(engine: Engine, id: string, name: string): Promise<void> {
  await call(engine, `stop ${name}`, (d) => d.getContainer(id).stop({ t: STOP_GRACE_SECONDS })).catch(unless(304));
}

export async function restartContainer(engine: Engine, id: string, name: string): Promise<void> {
  await call(engine, `restart ${name}`, (d) => d.getContainer(id).restart({ t: STOP_GRACE_SECONDS }));
}

export async function unitState(engine: Engine, id: string, name: string): Promise<UnitState> {
  const st = (await call(engine, `inspect ${name}`, (d) => d.getContainer(id).inspect())).State;
  return { running: st.Running, exitCode: st.ExitCode, error: st.Error, health: st.Health?.Status, startedAt: st.StartedAt, paused: st.Paused };
}

/** The pid of a running container's first process (its cgroups are read through it). */
export async function containerPid(engine: Engine, id: string): Promise<number> {
  return (await call(engine, 'inspect container', (d) => d.getContainer(id).inspect())).State.Pid;
}

/** This hoster's running instance containers (helpers such as the archive one left out). */
export async function runningInstanceContainers(engine: Engine): Promise<Unit[]> {
  const filters = { label: [`${LABEL_HOSTER}=${engine.hosterId}`], status: ['running'] };
  const list = await call(engine, 'list containers', (d) => d.listContainers({ filters }));
  return list.filter((c) => c.Labels[LABEL_INSTANCE] && c.Labels[LABEL_ROLE] === undefined).map(unitOf);
}

/** Create the container, or, when its name is taken (a crash between create and record, or another pass), adopt it
 * if `decide` says it is this generation's, or replace it if it is an older one of ours. */
export async function createOrAdopt(
  engine: Engine, spec: Docker.ContainerCreateOptions, decide: (labels: Record<string, string>) => Adoption,
): Promise<{ id: string; how: 'created' | 'adopted' }> {
  const name = spec.name!;
  try {
    const c = await call(engine, `create container ${name}`, (d) => d.createContainer(spec));
    return { id: c.id, how: 'created' };
  } catch (err) {
    if (statusOf(err) !== 409) throw err;
    const info = await call(engine, `inspect container ${name}`, (d) => d.getContainer(name).inspect());
    const verdict = decide(info.Config.Labels ?? {});
    if (verdict === 'foreign') throw fail('CATTERY_ERR_CONFLICT', `container ${name} exists and is not managed by cattery`);
    if (verdict === 'replace') {
      await ensureContainerRemoved(engine, info.Id, name);
      return createOrAdopt(engine, spec, decide);
    }
    return { id: info.Id, how: 'adopted' };
  }
}

/** Freeze a container's processes (cgroup freezer) for a consistent copy of its volumes; true when it was running
 * and is paused now, false when there was nothing to pause (stopped, absent). A container paused already belongs to
 * another run (a backup or a restore): refused, since that run's unpause would let the service (and whatever a
 * resident runs in it) write in the middle of this one's copy. */
export async function pauseContainer(engine: Engine, name: string): Promise<boolean> {
  const info = await call(engine, `inspect ${name}`, (d) => d.getContainer(name).inspect()).catch(unless(404));
  if (info?.State.Paused) throw fail('CATTERY_ERR_CONFLICT', `${name} is paused: another backup or restore of it is under way`);
  if (!info || !info.State.Running) return false;
  await call(engine, `pause ${name}`, (d) => d.getContainer(name).pause());
  return true;
}

/** Whether a restic container of ours (created or running) holds this instance paused. */
export async function pauseHeld(engine: Engine, slug: string): Promise<boolean> {
  const filters = { label: [`${LABEL_HOSTER}=${engine.hosterId}`, `${LABEL_ROLE}=${ROLE_BACKUP}`, `${LABEL_HOLDS}=${slug}`], status: ['created', 'running'] };
  return (await call(engine, 'list containers', (d) => d.listContainers({ all: true, filters }))).length > 0;
}

export async function unpauseContainer(engine: Engine, name: string): Promise<void> {
  await call(engine, `unpause ${name}`, (d) => d.getContainer(name).unpause()).catch(unless(404, 409));
}
