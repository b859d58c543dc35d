// Changing the names an instance answers to, for the API (routes/ingress.ts) and the administrators' page
// (pages/names.ts) alike: checked and stored whole (store.ts setHostnames), then the door follows at once.
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import type { Instance } from '../db/schema.js';
import type { FastifyBaseLogger } from 'fastify';
import type { Reconciler } from '../orchestrator/reconcile.js';
import { listServers } from '../orchestrator/servers.js';
import { doorServerOf, ownHost, type Ingress } from './ingress.js';
import { setHostnames } from './store.js';

export interface NamesDeps { db: Db; config: Config; reconciler: Reconciler; ingress: Ingress | undefined }

/** Store `given` as the instance's whole list of names (throws, changing nothing, when one is refused) and start the
 * door's own pass: a new name is served in well under a second, without waiting for a reconcile pass over every
 * instance; the reconciler's pass comes too, for anything the names change about the instance. */
export function changeHostnames(deps: NamesDeps, inst: Instance, given: readonly string[], log: FastifyBaseLogger): string[] {
  const hostnames = setHostnames(deps.db, inst.id, given, deps.config.domains, ownHost(deps.config));
  const all = listServers(deps.db);
  const own = all.find((s) => s.id === inst.serverId);
  // On Swarm the door is the manager's (every node's instances behind one door).
  const server = own && doorServerOf(all, own);
  if (server && deps.ingress && deps.config.ingress.enabled) {
    deps.ingress.sync(server, deps.reconciler.engineFor(server))
      .catch((err: unknown) => log.warn({ err, slug: inst.slug }, 'front door not converged yet; the next pass retries'));
  }
  deps.reconciler.trigger('hostnames', inst.slug).catch(() => undefined);
  return hostnames;
}
