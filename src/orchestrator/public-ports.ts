// An instance's well-known ports on the server's public address: where other servers and mail programs look for a
// service without being told a port. Mail needs it: delivery to an MX always connects to port 25 (RFC 5321 §5.1: an
// MX record carries no port), and mail programs expect 465 and 587 (RFC 8314 §3.3, RFC 6409 §3.1), 993 and 143
// (RFC 8314 §3.2, RFC 3501 §2.1). The numbers come from the manifest (`wellKnown` on a port), the address from the
// caller (CATTERY_INGRESS_ADDRESS, the front door's), and the administrator turns it on per instance.
//
// One instance of a server holds a number: the check and the write are one transaction (better-sqlite3 runs them
// with nothing in between). The change is a new generation, so the reconciler recreates the container with the new
// bindings (docker/container-spec.ts), volumes kept, as for a change of environment. The allocated ports stay
// published on the publish address meanwhile (cattery's own checks and the administrator's tools use them) and are
// all that is left when it is turned off. The numbers and the address are written into the row when it is turned on
// (what the reconciler builds from, and what the DNS and clients are told): a manifest or CATTERY_INGRESS_ADDRESS
// changed later applies once it is asked again.
import { eq } from 'drizzle-orm';
import type { Catalog } from '../catalog/load.js';
import type { Manifest } from '../catalog/manifest.js';
import type { Db } from '../db/connection.js';
import { instances, type Instance, type InstanceConfig } from '../db/schema.js';
import { fail } from '../errors.js';
import { getInstance } from './instances.js';
import { journal } from './journal.js';

export interface PublicPortsDeps { db: Db; catalog: Catalog }

/** A number the host already gives to something that is no instance's (the front door's 80 and 443). */
export interface ReservedPort { port: number; by: string }

export interface PublicPortsChange {
  enabled: boolean;
  /** The host address the well-known ports are published on. */
  address: string;
  reserved?: readonly ReservedPort[];
}

export interface PublicPortsView { enabled: boolean; address: string | null; ports: Record<string, number> }

/** A manifest's well-known numbers, by port name (only ports the host publishes at all: catalog/policy.ts). */
export function wellKnownPorts(m: Pick<Manifest, 'ports'>): Record<string, number> {
  return Object.fromEntries(m.ports.flatMap((p) => (p.wellKnown !== undefined && (p.publish ?? true) ? [[p.name, p.wellKnown]] : [])));
}

export function publicPortsView(inst: Pick<Instance, 'config'>): PublicPortsView {
  const p = inst.config.publicPorts;
  return p ? { enabled: true, address: p.address, ports: { ...p.ports } } : { enabled: false, address: null, ports: {} };
}

/** Refuses (409, CATTERY_ERR_PORT_TAKEN) a number the server already gives to another: another instance's well-known
 * port there, any instance's allocated port (allocation spans every server, instances.ts allocatePorts), or the
 * host's own. Numbers, whatever the protocol and the address: a binding on 0.0.0.0 covers every address, and one
 * holder per number is what the DNS and the clients can be told. */
function checkFree(db: Db, inst: Instance, numbers: readonly number[], reserved: readonly ReservedPort[]): void {
  const wanted = new Set(numbers);
  for (const r of reserved) {
    if (wanted.has(r.port)) throw fail('CATTERY_ERR_PORT_TAKEN', `port ${r.port} is ${r.by}'s on this server`);
  }
  for (const other of db.select().from(instances).all()) {
    for (const [name, port] of Object.entries(other.config.ports)) {
      if (wanted.has(port)) throw fail('CATTERY_ERR_PORT_TAKEN', `port ${port} is the allocated host port of instance "${other.slug}" (${name})`);
    }
    if (other.id === inst.id || other.serverId !== inst.serverId) continue;
    for (const [name, port] of Object.entries(other.config.publicPorts?.ports ?? {})) {
      if (wanted.has(port)) {
        throw fail('CATTERY_ERR_PORT_TAKEN', `port ${port} is already published on the public address by instance "${other.slug}" (${name}); turn it off there first`);
      }
    }
  }
}

const same = (a: InstanceConfig['publicPorts'], b: InstanceConfig['publicPorts']) =>
  a?.address === b?.address && JSON.stringify(Object.entries(a?.ports ?? {}).sort()) === JSON.stringify(Object.entries(b?.ports ?? {}).sort());

/** Publish an instance's well-known ports on `address`, or stop publishing them. Asking for what is already so
 * changes nothing (no new generation, no recreated container). */
export function setPublicPorts(deps: PublicPortsDeps, slug: string, change: PublicPortsChange, actor: string): Instance {
  return deps.db.transaction((tx) => {
    const db = tx as unknown as Db;
    const cur = getInstance(db, slug);
    if (cur.desired === 'deleted') throw fail('CATTERY_ERR_CONFLICT', `Instance "${slug}" is being deleted`);
    let wanted: InstanceConfig['publicPorts'];
    if (change.enabled) {
      const svc = deps.catalog.services.get(cur.service);
      if (!svc) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', cur.service);
      const ports = wellKnownPorts(svc.manifest);
      if (!Object.keys(ports).length) throw fail('CATTERY_ERR_VALIDATION', `service ${cur.service} declares no well-known port`);
      checkFree(db, cur, Object.values(ports), change.reserved ?? []);
      wanted = { address: change.address, ports };
    }
    if (same(cur.config.publicPorts, wanted)) return cur;
    const { publicPorts: _was, ...rest } = cur.config;
    const config: InstanceConfig = wanted ? { ...rest, publicPorts: wanted } : rest;
    // A new generation has no container yet: what was observed was the old one's (a wait must not take it for done).
    const row = db.update(instances).set({
      config, generation: cur.generation + 1, observed: 'creating', attempts: 0, nextAttemptAt: null, updatedAt: new Date().toISOString(),
    }).where(eq(instances.id, cur.id)).returning().get();
    journal(db, { slug, kind: 'public-ports', actor, status: 'pending', detail: { enabled: change.enabled, ...(wanted ?? {}) } });
    return row;
  });
}
