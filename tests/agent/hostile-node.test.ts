// A hostile node (an outside review of issue 15): an enrolled node's signed samples cannot credit CPU or energy to
// instances of another server (generated lists of victims and claims), nor stretch a pass beyond the wall-clock time
// between two samples (generated claims of its monotonic clock). Each node's own token only reaches its own task:
// tests/agent/refusals.test.ts (one service per node) and tests/agent/swarm-agent.test.ts (read back on a swarm).
import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { addServer } from '../../src/orchestrator/servers.js';
import { instances } from '../../src/db/schema.js';
import { signDocument, type Signer } from '../../src/federation/jws.js';
import type { SamplePayload } from '../../src/agent/protocol.js';
import { DEFAULT_SERVER_ENERGY } from '../../src/metering/power.js';
import { OPERATOR, testConfig } from '../helpers.js';
import { newSigner } from './signer.js';

const config = testConfig(t);
const rt = await createRuntime(config, pino({ level: 'silent' }));
t.teardown(() => rt.close());
const app = rt.app;
const a = addServer(rt.db, { name: 'node-a', dockerEndpoint: 'unix:///var/run/docker.sock' });
const b = addServer(rt.db, { name: 'node-b', dockerEndpoint: 'unix:///var/run/docker.sock' });
const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
const token = async (name: string) => (await app.inject({ method: 'POST', url: `/api/servers/${name}/agent/enrolment`, headers: OPERATOR, payload: { hours: 1 } })).json().token as string;
const keyA = await newSigner();
const enrolled = await post('/api/agent/enrol', { jws: await signDocument(keyA, 'agentEnrolment', { v: 1, token: await token('node-a'), iat: Math.floor(Date.now() / 1000) }) });
t.equal(enrolled.statusCode, 200, 'node-a enrols');

const addInstance = (slug: string, serverId: number) => rt.db.insert(instances).values({
  slug, service: 'probe', serverId, image: 'cattery/probe:000000000000', config: { ports: {}, secrets: {}, env: {} },
}).run();

let seq = Date.now();
const run = crypto.randomBytes(8).toString('hex');
const send = async (p: SamplePayload) => {
  const r = await post('/api/agent/samples', { jws: await signDocument(keyA, 'agentSample', p) });
  if (r.statusCode !== 200) throw new Error(`sample refused: ${r.statusCode} ${r.body}`);
  return r.json() as { recorded: boolean; watts: number | null };
};
const container = (slug: string, cpuNs: number) => ({
  id: crypto.createHash('sha256').update(slug).digest('hex'), slug, service: 'probe',
  cpuNs, memoryBytes: 1e7, netRxBytes: 0, netTxBytes: 0, blkReadBytes: 0, blkWriteBytes: 0,
});
const energyOf = (serverId: number, scope: string, slug = '') => (rt.db.$client.prepare(
  'SELECT COALESCE(SUM(energy_j), 0) j, COALESCE(SUM(cpu_seconds), 0) c FROM meter_samples WHERE server_id = ? AND scope = ? AND slug = ?',
).get(serverId, scope, slug) as { j: number; c: number });

t.test('a node credits CPU and energy only to instances placed on its own server', async (t) => {
  addInstance('own-on-a', a.id);
  const victims = ['victim-one', 'victim-two', 'victim-three'];
  for (const v of victims) addInstance(v, b.id);
  // Generated: which victims the hostile node lists beside its own instance, and how much CPU it claims for them.
  await fc.assert(fc.asyncProperty(fc.subarray(victims, { minLength: 1 }), fc.integer({ min: 1, max: 9 }), async (listed, cpuS) => {
    const before = new Map(victims.map((v) => [v, energyOf(a.id, 'instance', v)]));
    const mono = process.hrtime.bigint();
    const base = { v: 1 as const, server: a.id, run, host: { totalJiffies: 0, idleJiffies: 0 }, mem: { totalBytes: 1e9, availableBytes: 5e8 } };
    const t0 = Date.now();
    await send({ ...base, seq: ++seq, at: t0, mono: String(mono), host: { totalJiffies: 100_000, idleJiffies: 90_000 }, containers: [container('own-on-a', 0), ...listed.map((v) => container(v, 0))] });
    await send({
      ...base, seq: ++seq, at: t0 + 10, mono: String(mono + 10_000_000_000n), host: { totalJiffies: 102_000, idleJiffies: 90_000 },
      containers: [container('own-on-a', 1e9), ...listed.map((v) => container(v, cpuS * 1e9))],
    });
    // The next property run starts from zero CPU again: a restart for the split, counted from zero.
    for (const v of listed) {
      const now = energyOf(a.id, 'instance', v), was = before.get(v)!;
      if (now.c !== was.c || now.j !== was.j) throw new Error(`node-a credited ${v} (on node-b) with ${(now.c - was.c).toFixed(1)} CPU s and ${(now.j - was.j).toFixed(1)} J`);
    }
  }), { numRuns: 12 });
  t.ok(energyOf(a.id, 'instance', 'own-on-a').c > 0, 'its own instance is credited (the property above is not vacuous)');
});

t.test('a pass never counts more seconds than the wall clock saw between two samples', async (t) => {
  // Generated: how far a node's monotonic clock claims to have gone between two samples sent 10 s apart.
  await fc.assert(fc.asyncProperty(fc.integer({ min: 3_600, max: 100_000_000 }), async (claimedS) => {
    const before = energyOf(a.id, 'server');
    const mono = process.hrtime.bigint();
    const t0 = Date.now() - 10_000;
    const base = { v: 1 as const, server: a.id, mem: { totalBytes: 1e9, availableBytes: 5e8 }, containers: [] };
    const myRun = crypto.randomBytes(8).toString('hex');
    await send({ ...base, seq: ++seq, at: t0, run: myRun, mono: String(mono), host: { totalJiffies: 0, idleJiffies: 0 } });
    await send({ ...base, seq: ++seq, at: t0 + 10_000, run: myRun, mono: String(mono + BigInt(claimedS) * 1_000_000_000n), host: { totalJiffies: 1000, idleJiffies: 500 } });
    const after = energyOf(a.id, 'server');
    const seconds = (rt.db.$client.prepare('SELECT seconds s FROM meter_samples WHERE server_id = ? AND scope = ? ORDER BY id DESC LIMIT 1').get(a.id, 'server') as { s: number }).s;
    // 10 s of wall clock at most at the server's full power (with a second of slack for the round trip).
    if (seconds > 11 || after.j - before.j > DEFAULT_SERVER_ENERGY.maxWatts * 11) {
      throw new Error(`two samples 10 s apart recorded a pass of ${seconds} s and ${((after.j - before.j) / 3.6e6).toFixed(1)} kWh`);
    }
  }), { numRuns: 8 });
  t.pass();
});

t.test('a node\'s own clock cannot add up to more than the manager\'s tolerance: generated `at` sawtooths', async (t) => {
  // Samples sent back to back, each claiming an `at` anywhere the manager accepts (60 s behind to 15 s ahead) and an
  // hour of its monotonic clock: whatever the order, the passes recorded add up to the spread of those `at` once.
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: -55_000, max: 14_000 }), { minLength: 2, maxLength: 8 }), async (offsets) => {
    const myRun = crypto.randomBytes(8).toString('hex');
    const mono = process.hrtime.bigint();
    const base = { v: 1 as const, server: a.id, run: myRun, mem: { totalBytes: 1e9, availableBytes: 5e8 }, containers: [] };
    const firstId = (rt.db.$client.prepare('SELECT COALESCE(MAX(id), 0) m FROM meter_samples').get() as { m: number }).m;
    const now = Date.now();
    for (const [k, off] of offsets.entries()) {
      await send({ ...base, seq: ++seq, at: now + off, mono: String(mono + BigInt(k) * 3_600_000_000_000n), host: { totalJiffies: 1000 * (k + 1), idleJiffies: 500 * (k + 1) } });
    }
    const total = (rt.db.$client.prepare("SELECT COALESCE(SUM(seconds), 0) s FROM meter_samples WHERE id > ? AND server_id = ? AND scope = 'server'").get(firstId, a.id) as { s: number }).s;
    const bound = (Math.max(...offsets) - Math.min(...offsets)) / 1000 + offsets.length;
    if (total > bound) throw new Error(`${offsets.join(', ')}: ${total.toFixed(1)} s recorded, at most ${bound.toFixed(1)} s possible`);
    return true;
  }), { numRuns: 25 });
  t.pass();
});
