// Where a command inside an instance runs (account operations, accounts/): its container on its server's engine, or,
// on Swarm, its task's container on the engine of the node that runs it: an exec is a node's, never the manager's.
import type { Db } from '../db/connection.js';
import type { Instance, Server } from '../db/schema.js';
import { fail } from '../errors.js';
import { containerName, runningTask, serviceName, type Engine } from './docker/index.js';
import { serverOf } from './instances.js';
import { listServers } from './servers.js';

export interface ExecTarget { engine: Engine; container: string }

export async function execTarget(
  deps: { db: Db; hosterId: string; engineFor: (s: Server) => Engine }, inst: Pick<Instance, 'slug' | 'serverId'>,
): Promise<ExecTarget> {
  const server = serverOf(deps.db, inst);
  if (!server.swarmRole) return { engine: deps.engineFor(server), container: containerName(deps.hosterId, inst.slug) };
  const all = listServers(deps.db);
  const manager = all.find((s) => s.swarmRole === 'manager');
  if (!manager) throw fail('CATTERY_ERR_CONFLICT', `server ${server.name} is in a swarm that has no manager in cattery's table`);
  const task = await runningTask(deps.engineFor(manager), serviceName(deps.hosterId, inst.slug));
  if (!task) throw fail('CATTERY_ERR_CONFLICT', `Instance "${inst.slug}" has no running task on the swarm`);
  // The node's cattery.server label names its row (`cattery servers join` sets both): its engine endpoint is there.
  const nodeServer = all.find((s) => s.name === task.node.server && s.swarmRole);
  if (!nodeServer) throw fail('CATTERY_ERR_CONFLICT', `Instance "${inst.slug}" runs on node ${task.node.hostname}, which no server of cattery's table is`);
  return { engine: deps.engineFor(nodeServer), container: task.containerId };
}
