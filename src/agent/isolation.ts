// The node agent's check of what its node's dockerd gives instances (docs/swarm.md, "Isolation rules on a node"):
// Engine 20.10's service API cannot ask for no-new-privileges, so an instance task has it only when the node's dockerd
// runs with it, which the `cattery.no-new-privileges` node label declares. The agent reads, without any privilege,
// each instance task's `NoNewPrivs` from the node's /proc/<pid>/status (world-readable) and sends it in its signed
// samples; the manager turns the declaration into a measured fact here, and keeps placement off a node that fails.
import fs from 'node:fs';
import path from 'node:path';
import type { Server, ServerIsolation } from '../db/schema.js';
import { labelNode, listNodes, type Engine } from '../orchestrator/docker/index.js';

/** The process's NoNewPrivs (0 or 1) from `<procRoot>/<pid>/status`, or undefined when it cannot be read (the process
 * ended, a kernel before 4.10 without the field). */
export function readNoNewPrivs(procRoot: string, pid: number): 0 | 1 | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try { text = fs.readFileSync(path.join(procRoot, String(pid), 'status'), 'utf8'); } catch { return undefined; }
  const m = /^NoNewPrivs:\s*([01])\s*$/m.exec(text);
  return m ? (Number(m[1]) as 0 | 1) : undefined;
}

/** The server's check after one sample. `tasks`: the instance tasks it lists (those of instances this manager
 * knows). A task without NoNewPrivs fails the node; the failure stays until a sample lists instance tasks that all
 * have it (a node emptied of instances because it failed proves nothing by itself). */
export function nextIsolation(prev: ServerIsolation | null, tasks: readonly { slug: string; noNewPrivs?: 0 | 1 }[], at: Date): ServerIsolation | null {
  const checkedAt = at.toISOString();
  const missing = [...new Set(tasks.filter((c) => c.noNewPrivs === 0).map((c) => c.slug))].sort();
  if (missing.length) return { noNewPrivs: 'failed', missing, checkedAt };
  if (tasks.length === 0) return prev;
  if (tasks.some((c) => c.noNewPrivs === undefined)) return prev?.noNewPrivs === 'failed' ? prev : { noNewPrivs: 'unknown', missing: [], checkedAt };
  return { noNewPrivs: 'ok', missing: [], checkedAt };
}

/** Takes the `cattery.no-new-privileges` label off the server's node (through the swarm's manager), so that Swarm
 * places no instance there any more, the stateless ones running there included (Swarm moves a task whose node no
 * longer meets its constraints). An administrator labels it again (`cattery servers label NAME --no-new-privileges`)
 * once its dockerd gives no-new-privileges; while a sample still shows a task without it, the label is taken again. */
export async function withdrawNoNewPrivilegesLabel(d: { servers: () => Server[]; engineFor: (s: Server) => Engine }, server: Server): Promise<boolean> {
  const managerRow = d.servers().find((s) => s.swarmRole === 'manager');
  if (!managerRow || !server.swarmRole) return false;
  const manager = d.engineFor(managerRow);
  const node = (await listNodes(manager)).find((n) => n.server === server.name);
  if (!node?.noNewPrivileges) return false;
  await labelNode(manager, node.id, { noNewPrivileges: false });
  return true;
}
