// What `cattery serve` holds for federation: this hoster's key store, what peers' functions need, and the refresh
// timer (runtime.ts starts and stops it like the other loops).
import fs from 'node:fs';
import path from 'node:path';
import type { AccountDeps } from '../accounts/accounts.js';
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import type { Logger } from '../log.js';
import type { DocumentDeps } from './document.js';
import { createKeyStore, ensureIdentity, type KeyStore } from './keys.js';
import { sweepExpiredMoves, sweepForwards, type MoveDeps } from './moves-source.js';
import { sweepExpiredArrivals } from './moves-destination.js';
import { refreshAll, type PeerDeps } from './peers.js';

export interface Federation {
  keys: KeyStore;
  documents: DocumentDeps;
  peers: PeerDeps;
  /** Residents' moves to and from peers (moves-source.ts, moves-destination.ts). */
  moves: MoveDeps;
  /** Refresh every active peer now and then every `seconds`; a pass still running holds the next one. */
  start(seconds: number): void;
  stop(): Promise<void>;
}

export async function createFederation(d: { db: Db; catalog: Catalog; config: Config; accounts: AccountDeps; log: Logger }): Promise<Federation> {
  // First start: the key is made now, not on the first request that needs it.
  await ensureIdentity(d.config.dataDir);
  const keys = createKeyStore(d.config.dataDir);
  let extraCa: string | undefined;
  if (d.config.federation.peerCaFile) {
    try { extraCa = fs.readFileSync(d.config.federation.peerCaFile, 'utf8'); } catch (err) {
      throw fail('CATTERY_ERR_CONFIG', `CATTERY_PEER_CA: ${d.config.federation.peerCaFile} cannot be read`, err);
    }
  }
  const peers: PeerDeps = { db: d.db, log: d.log, fetch: { ...(extraCa ? { extraCa } : {}) }, ownUrl: d.config.publicUrl };
  const movesDeps: MoveDeps = {
    db: d.db, accounts: d.accounts, keys, log: d.log, ownUrl: d.config.publicUrl, dir: path.join(d.config.dataDir, 'moves'),
    fetch: peers.fetch, arriving: new Set(), maxBundleBytes: (d.config.federation.moveMaxMb ?? 20480) * 1024 * 1024,
    newcomers: { approval: d.config.signupApproval, defaultQuotaMb: d.config.defaultQuotaMb, config: d.config },
  };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  const pass = () => {
    if (running) return;
    // Expired moves' staged parts, and the downloads of arrivals whose code expired, go on the same timer: nothing
    // else removes them (an arrival sweeps too when it starts, but a hoster may see none for months).
    try { sweepExpiredMoves(movesDeps); } catch (err) { d.log.warn({ err }, 'sweeping expired moves failed'); }
    try { sweepExpiredArrivals(movesDeps); } catch (err) { d.log.warn({ err }, 'sweeping expired arrivals failed'); }
    // Forwards of moved residents' old addresses are ended (or retried) on it too.
    running = Promise.all([
      refreshAll(peers).catch((err) => d.log.warn({ err }, 'federation refresh failed')),
      sweepForwards(movesDeps).catch((err) => d.log.warn({ err }, 'sweeping forwards failed')),
    ]).finally(() => { running = undefined; });
  };
  return {
    keys, peers, moves: movesDeps, documents: { db: d.db, catalog: d.catalog, config: d.config, keys },
    start(seconds) {
      pass();
      timer = setInterval(pass, seconds * 1000);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
