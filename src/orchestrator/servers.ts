// Servers the association runs instances on: one Docker engine each.
import { asc, eq } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { servers, type Server, type ServerEnergy, type SwarmRole } from '../db/schema.js';
import { fail } from '../errors.js';
import { isPlainRemoteEndpoint } from './docker/engine.js';

export function listServers(db: Db): Server[] {
  return db.select().from(servers).orderBy(asc(servers.id)).all();
}

export function addServer(db: Db, input: { name: string; dockerEndpoint: string; site?: string; publishAddress?: string }): Server {
  checkServerName(input.name);
  return db.transaction((tx) => {
    if (tx.select({ id: servers.id }).from(servers).where(eq(servers.name, input.name)).get()) {
      throw fail('CATTERY_ERR_CONFLICT', `A server named "${input.name}" already exists`);
    }
    return tx.insert(servers).values({
      name: input.name, dockerEndpoint: input.dockerEndpoint, site: input.site ?? '', publishAddress: input.publishAddress ?? '127.0.0.1',
    }).returning().get();
  });
}

/** How this server's power is known (metering/power.ts); 404 for an unknown server. */
export function setServerEnergy(db: Db, name: string, energy: ServerEnergy): ServerEnergy {
  if (energy.maxWatts < energy.idleWatts) throw fail('CATTERY_ERR_VALIDATION', 'maxWatts must be at least idleWatts');
  const row = db.update(servers).set({ energy }).where(eq(servers.name, name)).returning().get();
  if (!row) throw fail('CATTERY_ERR_NOT_FOUND', `No server "${name}"`);
  return row.energy!;
}

/** The embedded default: the local engine, registered once under the name "local". */
export function ensureDefaultServer(db: Db, dockerEndpoint: string, publishAddress: string): Server {
  const first = db.select().from(servers).orderBy(asc(servers.id)).limit(1).get();
  return first ?? addServer(db, { name: 'local', dockerEndpoint, site: 'local', publishAddress });
}

/** Records a server's place in the swarm (`cattery servers swarm-init`, `join`): the reconciler then runs its
 * instances as Swarm services through the manager's engine. */
export function setSwarmRole(db: Db, serverId: number, role: SwarmRole | null, nodeId?: string): Server {
  return db.update(servers).set({ swarmRole: role, ...(nodeId !== undefined ? { swarmNodeId: nodeId } : {}) }).where(eq(servers.id, serverId)).returning().get()!;
}

/** A server's name as every route takes it (`/api/servers/:name`): checked before a server is made by any way in. */
export const SERVER_NAME_PATTERN = '^[a-z][a-z0-9-]{0,40}$';

/** An engine's API is root on its server: plain TCP to another machine is refused unless said on purpose (a private
 * link nothing else reaches, as the tests' own bridge): `tcp://host:2376` or `https://` with a client certificate
 * is the way (docs/swarm.md). */
export function checkEndpoint(endpoint: string, allowPlainTcp: boolean): void {
  if (isPlainRemoteEndpoint(endpoint) && !allowPlainTcp) {
    throw fail('CATTERY_ERR_VALIDATION', `${endpoint} is plain TCP to another machine: whoever reaches that port is root on it. `
      + 'Use tcp://HOST:2376 with dockerd --tlsverify and the client certificate in <data folder>/engine-certs/HOST/ (ca.pem, cert.pem, key.pem), '
      + 'or say --insecure-plain-tcp (allowPlainTcp) for a private link nothing else reaches');
  }
}

export function checkServerName(name: string): void {
  if (!new RegExp(SERVER_NAME_PATTERN).test(name)) {
    throw fail('CATTERY_ERR_VALIDATION', `a server's name is a lower-case letter then up to 40 lower-case letters, digits or dashes (got ${JSON.stringify(name)})`);
  }
}

/** The server whose engine manages the swarm, when the association formed one. */
export function swarmManager(db: Db): Server | undefined {
  return db.select().from(servers).where(eq(servers.swarmRole, 'manager')).orderBy(asc(servers.id)).get();
}
