// The address residents are given for an instance served on the web: through the front door, https://<its first
// name> (the door's port added only where it is not 443, as in tests); undefined when the door is off, the service
// has no web port, or none of its stored names is one the door serves today (ingress.ts servedRows re-checks them
// the same way). The access text then falls back to the server's address and the instance's own port.
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import type { Instance } from '../db/schema.js';
import { checkHostname } from './hostnames.js';
import { ownHost } from './ingress.js';
import { hostnamesOf } from './store.js';

export interface WebAddressDeps { db: Db; catalog: Catalog; config: Pick<Config, 'ingress' | 'domains' | 'publicUrl'> }

export function webAddressOf(deps: WebAddressDeps, instance: Pick<Instance, 'id' | 'service'>, httpsPort: number): string | undefined {
  if (!deps.config.ingress.enabled || !deps.catalog.services.get(instance.service)?.manifest.http) return undefined;
  const own = ownHost(deps.config);
  const name = hostnamesOf(deps.db, instance.id).find((h) => {
    try { checkHostname(h, deps.config.domains, own); return true; } catch { return false; }
  });
  if (!name) return undefined;
  return `https://${name}${httpsPort && httpsPort !== 443 ? `:${httpsPort}` : ''}`;
}
