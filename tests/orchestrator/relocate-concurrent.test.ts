// Review of issue 15 (outside reviewer): a move and what an administrator (or a second administrator, or a script)
// asks of the same instance while it is under way. moveInstance guards itself against a second move or a restore
// elsewhere (relocate.ts `exclusively`), but nothing else: a delete, a stop or a start that lands between the move's
// stop and its switch to the target is overwritten by relocateRow(…, wanted), which writes back the `desired` the move
// read at its start. A resident's instance deleted during a move comes back to life on the target.
//
// The move here is a stateless one between two servers of one engine (the host's, with this test's hoster id: every
// name the move touches is under it and absent), the reconciler a stand-in that converges at once; the change lands
// while the move waits for one of its steps. Nothing reaches Docker but a ping, an info and removals of absent names.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import { instances, type Desired } from '../../src/db/schema.js';
import { loadValidCatalog, type Catalog } from '../../src/catalog/load.js';
import { connectEngine } from '../../src/orchestrator/docker/index.js';
import { addServer, ensureDefaultServer } from '../../src/orchestrator/servers.js';
import { getInstance, updateInstance, type InstanceDeps } from '../../src/orchestrator/instances.js';
import { moveInstance, restoreElsewhere, type RelocateDeps } from '../../src/orchestrator/relocate.js';
import type { BackupDeps } from '../../src/backups/backups.js';
import { TEST_CATALOG, testConfig } from '../helpers.js';

const config = testConfig(t);
const log = pino({ level: 'silent' });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-review15-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const db = openDb(path.join(dir, 'cattery.db'));
t.teardown(() => db.$client.close());
applyMigrations(db);
const base = loadValidCatalog(TEST_CATALOG);
const probe = base.services.get('probe')!;
// A stateless service (no volume): its move needs no backup repository, only the row and the engines.
const catalog: Catalog = { ...base, services: new Map([...base.services, ['light', { ...probe, manifest: { ...probe.manifest, id: 'light', volumes: [] } }]]) };
const engine = connectEngine('unix:///var/run/docker.sock', { hosterId: config.hosterId, timeoutSeconds: 20, log });
const one = ensureDefaultServer(db, 'unix:///var/run/docker.sock', '127.0.0.1');
const two = addServer(db, { name: 'two', dockerEndpoint: 'unix:///var/run/docker.sock' });
const instanceDeps: InstanceDeps = { db, catalog, portRange: config.portRange, subnetPool: config.subnetPool };

/** What lands while the move waits: set by each case. */
let during: ((step: number) => void) | undefined;
let waits = 0;
const deps: RelocateDeps = {
  db, catalog, hosterId: config.hosterId, log, instanceDeps,
  backups: { localServer: () => one, image: 'unused' } as unknown as BackupDeps,
  reconciler: {
    engineFor: () => engine,
    trigger: async () => undefined,
    waitConverged: async (slug: string) => {
      waits += 1;
      during?.(waits);
      return getInstance(db, slug);
    },
  } as unknown as RelocateDeps['reconciler'],
};

let n = 0;
const newInstance = (desired: Desired) => {
  const slug = `mv-${++n}-x`;
  db.insert(instances).values({
    slug, service: 'light', serverId: one.id, desired, observed: desired === 'running' ? 'healthy' : 'stopped',
    image: 'cattery/light:000000000000', config: { ports: {}, secrets: {}, env: {} },
  }).run();
  return slug;
};

t.test('what an administrator asks of an instance during its move is refused or kept, never silently undone', async (t) => {
  // Generated: the change asked (a delete, a stop, a start) and the wait of the move it lands in (1: the stop, 2: the
  // start on the target), for an instance meant to run or stopped.
  const change = fc.constantFrom<Desired>('deleted', 'stopped', 'running');
  await fc.assert(fc.asyncProperty(change, fc.constantFrom(1, 2), fc.constantFrom<Desired>('running', 'stopped'), async (asked, at, wanted) => {
    const slug = newInstance(wanted);
    waits = 0;
    let accepted = false;
    during = (step) => {
      // A running instance's move waits twice (stop, start); a stopped one once (start).
      const landing = wanted === 'running' ? at : at - 1;
      if (step !== landing) return;
      try { updateInstance(instanceDeps, slug, { desired: asked }, 'user:other-admin', asked === 'deleted' ? 'delete' : asked); accepted = true; } catch { /* refused: fine */ }
    };
    const moved = await moveInstance(deps, slug, 'two', 'user:admin').then(() => true, () => false);
    during = undefined;
    const after = getInstance(db, slug).desired;
    if (accepted && after !== asked) {
      throw new Error(`"${asked}" accepted during the move of a ${wanted} instance (wait ${at}) was undone: desired is "${after}" after the move (${moved ? 'done' : 'failed'})`);
    }
    return true;
  }), { numRuns: 24 });
});

t.test('two moves of one instance at once, and a move beside a restore elsewhere: one runs, the other is refused', async (t) => {
  const slug = newInstance('running');
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let held = false;
  const slow: RelocateDeps = {
    ...deps,
    reconciler: { ...deps.reconciler, waitConverged: async (s: string) => { if (!held) { held = true; await gate; } return getInstance(db, s); } } as RelocateDeps['reconciler'],
  };
  const first = moveInstance(slow, slug, 'two', 'user:a');
  await new Promise((r) => setTimeout(r, 300));
  await t.rejects(moveInstance(slow, slug, 'two', 'user:b'), { code: 'CATTERY_ERR_CONFLICT' });
  await t.rejects(restoreElsewhere(slow, slug, 'two', 'user:b'), { code: 'CATTERY_ERR_CONFLICT' });
  release();
  await first;
  t.equal(getInstance(db, slug).serverId, two.id);
});

t.test('restore elsewhere is refused for a server that is only slow (it answers, after 10.5 s)', async (t) => {
  // The old server's engine answers every ping, a little slowly (a server busy with a backup, a congested link): its
  // instance still runs and writes there. A restore of last night's snapshot elsewhere would run a second copy from
  // older data, and what the old one writes meanwhile is only an orphan volume once it is swept.
  const slowEngine = {
    docker: {
      ping: () => new Promise((r) => setTimeout(() => r('OK'), 10_500)),
      info: async () => ({ NCPU: 4, MemTotal: 8 * 1024 ** 3 }),
    },
    hosterId: config.hosterId, timeoutMs: 30_000, log,
  } as unknown as typeof engine;
  const slug = newInstance('running');
  const slowDeps: RelocateDeps = {
    ...deps,
    backups: { localServer: () => two, image: 'unused' } as unknown as BackupDeps,
    reconciler: { ...deps.reconciler, engineFor: (s: { id: number }) => (s.id === one.id ? slowEngine : engine) } as RelocateDeps['reconciler'],
  };
  const outcome = await restoreElsewhere(slowDeps, slug, 'two', 'user:admin').then(() => 'restored', (err: { code?: string }) => err.code);
  t.equal(outcome, 'CATTERY_ERR_CONFLICT', 'refused: the server answers, slowly');
  t.equal(getInstance(db, slug).serverId, one.id, 'the instance is still on its server');
});

t.test('a stateless instance between two Swarm servers: refused with what to do (Swarm places it, not its row)', async (t) => {
  const { setSwarmRole } = await import('../../src/orchestrator/servers.js');
  const a = addServer(db, { name: 'sw-a', dockerEndpoint: 'unix:///var/run/docker.sock' });
  const b = addServer(db, { name: 'sw-b', dockerEndpoint: 'unix:///var/run/docker.sock' });
  setSwarmRole(db, a.id, 'worker');
  setSwarmRole(db, b.id, 'worker');
  const slug = newInstance('running');
  db.$client.prepare('UPDATE instances SET server_id = ? WHERE slug = ?').run(a.id, slug);
  const err = await moveInstance(deps, slug, 'sw-b', 'user:admin').then(() => undefined, (e: Error & { code?: string }) => e);
  t.equal(err?.code, 'CATTERY_ERR_CONFLICT');
  t.match(err?.message ?? '', /availability drain/, 'it says how to move it');
  t.equal(getInstance(db, slug).serverId, a.id, 'its row unchanged');
});
