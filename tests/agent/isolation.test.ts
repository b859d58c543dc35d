// The isolation check (agent/isolation.ts, docs/swarm.md): a node's agent reads each instance task's NoNewPrivs and
// signs it into its samples; the manager records per server whether every instance task had it, and placement keeps
// away from a server that failed. Generated (fast-check): sequences of signed samples through the manager's real
// check and record (signature, sequence, SQLite with the real migrations), each listing tasks of known and unknown
// instances with NoNewPrivs 1, 0 or not said; after each, the recorded check is the model's, and placement over a
// fleet of that server and others never chooses it while it is failed. The agent's reader on real /proc files.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { eq } from 'drizzle-orm';
import { exportJWK, generateKeyPair } from 'jose';
import { createAgentIngest } from '../../src/agent/ingest.js';
import { nextIsolation, readNoNewPrivs } from '../../src/agent/isolation.js';
import type { SamplePayload } from '../../src/agent/protocol.js';
import { agentNodes } from '../../src/agent/schema.js';
import { loadValidCatalog } from '../../src/catalog/load.js';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import { instances, servers, type Server, type ServerIsolation } from '../../src/db/schema.js';
import { isCatteryError } from '../../src/errors.js';
import { signDocument, thumbprint, type PublicJwk, type Signer } from '../../src/federation/jws.js';
import type { Engine } from '../../src/orchestrator/docker/index.js';
import { fleet, isolationOf, place, refusal, type ServerLoad } from '../../src/orchestrator/placement.js';
import { addServer } from '../../src/orchestrator/servers.js';
import { createSession } from '../../src/identity/sessions.js';
import { createUser } from '../../src/identity/users.js';
import { createRuntime } from '../../src/runtime.js';
import { TEST_CATALOG, testConfig } from '../helpers.js';
import { pageBrowser } from '../page-browser.js';

const config = testConfig(t);
const db = openDb(config.dbFile);
applyMigrations(db);
t.teardown(() => db.$client.close());
const catalog = loadValidCatalog(TEST_CATALOG);
const log = pino({ level: 'silent' });

const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
const { kty, crv, x } = await exportJWK(pair.publicKey);
const jwk = { kty, crv, x } as PublicJwk;
const signer: Signer = { jwk, kid: await thumbprint(jwk), key: pair.privateKey };
const node = addServer(db, { name: 'node-a', dockerEndpoint: 'tcp://192.0.2.1:2376' });
addServer(db, { name: 'node-b', dockerEndpoint: 'tcp://192.0.2.2:2376' });
db.insert(agentNodes).values({ serverId: node.id, kid: signer.kid, jwk }).run();
const KNOWN = ['alpha', 'bravo', 'charlie'];
for (const slug of KNOWN) {
  db.insert(instances).values({ slug, service: 'probe', serverId: node.id, desired: 'stopped', image: 'cattery/probe:000000000000', config: { ports: {}, secrets: {}, env: {} } }).run();
}
const withdrawn: string[] = [];
const ingest = createAgentIngest({ db, catalog, idlePolicy: 'equal', log, onIsolationFailed: async (s) => { withdrawn.push(s.name); } });
const isolationNow = () => db.select().from(servers).where(eq(servers.id, node.id)).get()!.isolation ?? null;

// Engines that answer `info` only: fleet() asks each server's cores and memory (a fake engine for a unit test; the
// real path is the swarm tests').
const fakeEngine = { docker: { info: async () => ({ NCPU: 8, MemTotal: 16 * 1024 ** 3 }) }, timeoutMs: 1000, hosterId: 'test' } as unknown as Engine;
const fleetDeps = { db, catalog, engineFor: () => fakeEngine, servers: () => db.select().from(servers).all() as Server[] };

let seq = Date.now();
const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const task = fc.record({
  id: hex64, slug: fc.constantFrom(...KNOWN, 'stranger'), noNewPrivs: fc.constantFrom<0 | 1 | undefined>(1, 1, 1, 0, undefined),
});
const sampleOf = (tasks: { id: string; slug: string; noNewPrivs: 0 | 1 | undefined }[]): SamplePayload => ({
  v: 1, server: node.id, seq: ++seq, at: Date.now(), run: '0123456789abcdef', mono: String(process.hrtime.bigint()),
  host: { totalJiffies: 1000 + seq % 1000, idleJiffies: 900 }, mem: { totalBytes: 1e9, availableBytes: 5e8 },
  containers: tasks.map((c) => ({
    id: c.id, slug: c.slug, service: 'probe', cpuNs: 1, memoryBytes: 1, netRxBytes: 0, netTxBytes: 0, blkReadBytes: 0, blkWriteBytes: 0,
    ...(c.noNewPrivs !== undefined ? { noNewPrivs: c.noNewPrivs } : {}),
  })),
});

t.test('generated samples: the recorded check follows every sample, and placement never chooses a failed server', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(fc.array(task, { maxLength: 5 }), { minLength: 1, maxLength: 6 }), async (samples) => {
    db.update(servers).set({ isolation: null }).where(eq(servers.id, node.id)).run();
    withdrawn.length = 0;
    let model: ServerIsolation | null = null;
    for (const tasks of samples) {
      const payload = sampleOf(tasks);
      await ingest.record(await ingest.check(await signDocument(signer, 'agentSample', payload)));
      // Only tasks of instances this manager knows count (a stranger's stays in "other", as for energy).
      const known = tasks.filter((c) => KNOWN.includes(c.slug));
      model = nextIsolation(model, known, new Date(payload.at));
      const got = isolationNow();
      if (JSON.stringify(got && { ...got, checkedAt: '' }) !== JSON.stringify(model && { ...model, checkedAt: '' })) return false;
      const failedNow = known.some((c) => c.noNewPrivs === 0);
      if (failedNow && withdrawn[withdrawn.length - 1] !== 'node-a') return false;
      if (failedNow && !(got?.noNewPrivs === 'failed' && got.missing.every((s) => known.some((c) => c.slug === s && c.noNewPrivs === 0)))) return false;
      const loads = await fleet(fleetDeps);
      const a = loads.find((s) => s.id === node.id)!;
      if (Boolean(a.isolation) !== (got?.noNewPrivs === 'failed')) return false;
      const demand = { busyCores: 0.1, memoryMb: 64 };
      const chosen = place(loads, demand);
      if (got?.noNewPrivs === 'failed' && chosen.server.id === node.id) return false;
      if (got?.noNewPrivs === 'failed' && chosen.candidates.find((c) => c.name === 'node-a')?.refused !== 'isolation') return false;
    }
    return true;
  }), { numRuns: 40 });
  t.pass('every generated sequence');
});

t.test('a failed check stays until instance tasks are seen with no-new-privileges again', async (t) => {
  const at = new Date();
  const failed = nextIsolation(null, [{ slug: 'alpha', noNewPrivs: 0 }, { slug: 'bravo', noNewPrivs: 1 }], at)!;
  t.same({ ...failed, checkedAt: '' }, { noNewPrivs: 'failed', missing: ['alpha'], checkedAt: '' });
  t.equal(nextIsolation(failed, [], at), failed, 'a node emptied of instances proves nothing');
  t.equal(nextIsolation(failed, [{ slug: 'bravo' }], at), failed, 'nor one whose agent does not say');
  t.equal(nextIsolation(failed, [{ slug: 'bravo', noNewPrivs: 1 }], at)!.noNewPrivs, 'ok', 'instance tasks all with it clear it');
  t.equal(nextIsolation(null, [{ slug: 'bravo' }], at)!.noNewPrivs, 'unknown', 'an older agent is unknown, not ok');
});

t.test('placement: generated fleets, a failed server or one without its guard is never chosen', async (t) => {
  const load = (id: number, isolation: string | undefined): ServerLoad => ({
    id, name: `s${id}`, energy: { idleWatts: 50 + id, maxWatts: 200, embodiedKgCo2e: 1000, serviceLifeYears: 6 }, cores: 8, memoryMb: 8192,
    busyCores: 0, memoryMbReserved: 0, ...(isolation ? { isolation } : {}),
  });
  fc.assert(fc.property(fc.array(fc.record({ failed: fc.boolean(), swarm: fc.boolean(), guarded: fc.boolean(), nnp: fc.constantFrom('ok', 'failed', 'unknown', null) }), { minLength: 1, maxLength: 6 }), fc.boolean(), (rows, guardDeployed) => {
    const guarded = guardDeployed ? new Set(rows.map((r, i) => (r.guarded ? `node${i}` : '')).filter(Boolean)) : undefined;
    const loads = rows.map((r, i) => load(i + 1, isolationOf({
      swarmRole: r.swarm ? 'worker' : null,
      isolation: r.nnp ? { noNewPrivs: r.nnp as ServerIsolation['noNewPrivs'], missing: r.nnp === 'failed' ? ['x'] : [], checkedAt: '' } : null,
    }, `node${i}`, guarded)));
    const bad = (i: number) => rows[i]!.nnp === 'failed' || (rows[i]!.swarm && guardDeployed && !rows[i]!.guarded);
    loads.forEach((l, i) => { if (Boolean(refusal(l, { busyCores: 0, memoryMb: 1 })) !== bad(i)) throw new Error(`server ${i}: refusal ${refusal(l, { busyCores: 0, memoryMb: 1 })}`); });
    try {
      const p = place(loads, { busyCores: 0.1, memoryMb: 64 });
      return !bad(p.server.id - 1);
    } catch (err) {
      return isCatteryError(err) && err.code === 'CATTERY_ERR_CAPACITY' && rows.every((_, i) => bad(i));
    }
  }), { numRuns: 300 });
  t.pass('never a refused server; capacity refused only when every server is');
});

t.test('the agent reads NoNewPrivs from /proc/<pid>/status', async (t) => {
  const self = readNoNewPrivs('/proc', process.pid);
  const line = /^NoNewPrivs:\s*(\d)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
  t.equal(String(self), line, 'this process\'s own, as the kernel says it');
  const root = fs.mkdtempSync(path.join(config.dataDir, 'proc-'));
  for (const [pid, text] of [[10, 'Name:\tx\nNoNewPrivs:\t1\nSeccomp:\t2\n'], [11, 'Name:\ty\nNoNewPrivs:\t0\n'], [12, 'Name:\tz\n']] as const) {
    fs.mkdirSync(path.join(root, String(pid)));
    fs.writeFileSync(path.join(root, String(pid), 'status'), text);
  }
  t.equal(readNoNewPrivs(root, 10), 1);
  t.equal(readNoNewPrivs(root, 11), 0);
  t.equal(readNoNewPrivs(root, 12), undefined, 'a kernel without the field: unknown');
  t.equal(readNoNewPrivs(root, 13), undefined, 'a process gone: unknown');
  t.equal(readNoNewPrivs(root, -1), undefined);
});

t.test('/admin names the servers placement keeps away from, and why', async (t) => {
  const cfg = testConfig(t);
  const rt = await createRuntime(cfg, log);
  t.teardown(() => rt.close());
  // The local engine's socket for both: fleet() asks each server's engine for its size (no other address is contacted).
  const failed = addServer(rt.db, { name: 'mairie', dockerEndpoint: 'unix:///var/run/docker.sock' });
  rt.db.update(servers).set({ isolation: { noNewPrivs: 'failed', missing: ['pads-1'], checkedAt: new Date().toISOString() } }).where(eq(servers.id, failed.id)).run();
  const admin = await createUser(rt.db, { login: 'iso-admin', name: 'Admin', roles: ['admin'] });
  const b = pageBrowser(rt.app, { authorization: null });
  b.jar.set('cattery_session', createSession(rt.db, { idleMinutes: 60, maxHours: 1 }, admin.id, 'password'));
  const page = await b.get('/admin?lang=en');
  t.equal(page.statusCode, 200);
  t.match(page.body, 'No new instance is placed on these servers');
  t.match(page.body, /<li>mairie : an instance ran there without no-new-privileges[^<]*\(pads-1\)<\/li>/);
  t.notMatch(page.body, /<li>local : /, 'the server that passes is not listed');
});
