// The node guard as the orchestrator sees it (docs/swarm.md, "Isolation rules on a node"): a global Swarm service
// of cattery's (agent/guard.ts deploys it) whose task on each node keeps the rules closing the tasks' way out to the
// nodes. Its health check fails when a rule is missing and Swarm reports a task with a health check "running" only
// while it passes, so "its task on that node runs" is the manager's measure of "the rules are in place there".
import { call, isOurs, unless, type Engine } from './engine.js';

export const guardServiceName = (hosterId: string) => `${hosterId}-guard`;

/** The nodes (Swarm node ids) where the guard's task runs now, or undefined when no guard is deployed. */
export async function guardRunningNodes(manager: Engine): Promise<Set<string> | undefined> {
  const name = guardServiceName(manager.hosterId);
  const svc = await call(manager, `inspect service ${name}`, (d) => d.getService(name).inspect()).catch(unless(404)) as { ID: string; Spec: { Labels?: Record<string, string> } } | undefined;
  if (!svc || !isOurs(manager, svc.Spec.Labels)) return undefined;
  type T = { NodeID?: string; DesiredState: string; Status: { State: string } };
  const tasks = await call(manager, `tasks of ${name}`, (d) => d.listTasks({ filters: { service: [svc.ID] } })) as T[];
  return new Set(tasks.filter((t) => t.DesiredState === 'running' && t.Status.State === 'running' && t.NodeID).map((t) => t.NodeID!));
}
