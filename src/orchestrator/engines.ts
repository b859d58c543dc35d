// One connection per server's engine, made on first use and shared: the reconciler, the account operations and the
// metering loop all reach a server's engine through this registry.
import type { Server } from '../db/schema.js';
import type { Logger } from '../log.js';
import { connectEngine, type Engine } from './docker/index.js';

export interface EngineRegistry {
  engineFor(server: Server): Engine;
}

/** `certsDir`: the client certificates of the engines reached over TLS (engine.ts dockerOptions). */
export function createEngineRegistry(opts: { hosterId: string; timeoutSeconds: number; log: Logger; certsDir?: string | undefined }): EngineRegistry {
  const engines = new Map<number, Engine>();
  return {
    engineFor(server) {
      let e = engines.get(server.id);
      if (!e) {
        e = connectEngine(server.dockerEndpoint, {
          hosterId: opts.hosterId, timeoutSeconds: opts.timeoutSeconds, log: opts.log.child({ server: server.name }), ...(opts.certsDir ? { certsDir: opts.certsDir } : {}),
        });
        engines.set(server.id, e);
      }
      return e;
    },
  };
}
