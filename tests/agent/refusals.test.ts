// What the manager refuses of a node, through the app's own routes (inject): a bad signature, a key not enrolled, a
// sample for another server, a spent or unknown enrolment token, a replayed sample, a stale or future one, an oversize
// body, a caller with an administrator's token or no signature; and, generated, every byte change of a signed sample
// (fast-check). Each refusal has its own code, and none of them records anything. Also: the local loop leaves an
// agent-metered server alone, and the Swarm service spec mounts only read-only what it reads.
import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { addServer } from '../../src/orchestrator/servers.js';
import { signDocument, type Signer } from '../../src/federation/jws.js';
import { SAMPLE_MAX_BYTES, type SamplePayload } from '../../src/agent/protocol.js';
import { agentServiceSpec } from '../../src/agent/service-spec.js';
import { tokenOf } from '../../src/agent/agent.js';
import { OPERATOR, testConfig } from '../helpers.js';
import { newSigner } from './signer.js';

t.test('the manager refuses what a node must not send', async (t) => {
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const app = rt.app;
  const a = addServer(rt.db, { name: 'node-a', dockerEndpoint: 'unix:///var/run/docker.sock' });
  const b = addServer(rt.db, { name: 'node-b', dockerEndpoint: 'unix:///var/run/docker.sock' });
  const token = async (name: string) => (await app.inject({ method: 'POST', url: `/api/servers/${name}/agent/enrolment`, headers: OPERATOR, payload: { hours: 1 } })).json().token as string;
  const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });
  const code = (r: { headers: Record<string, unknown> }) => String(r.headers['x-cattery-error'] ?? '');
  const enrol = async (signer: Signer, tok: string, iat = Math.floor(Date.now() / 1000)) =>
    post('/api/agent/enrol', { jws: await signDocument(signer, 'agentEnrolment', { v: 1, token: tok, iat }) });

  // Enrolment: only by a token the administrator issued, once, signed by the key to pin.
  const keyA = await newSigner(), keyB = await newSigner(), stranger = await newSigner();
  const tokA = await token('node-a');
  t.equal(code(await enrol(keyA, `${a.id}.${crypto.randomBytes(32).toString('base64url')}`)), 'CATTERY_ERR_AGENT_ENROLMENT', 'a token nobody issued is refused');
  t.equal(code(await enrol(keyA, tokA, Math.floor(Date.now() / 1000) - 3600)), 'CATTERY_ERR_AGENT_CLOCK', 'an enrolment made an hour ago is refused');
  // A token's server id changed to another server's: the secret is that of node-a's token, refused for node-b.
  t.equal(code(await enrol(keyA, tokA.replace(/^\d+/, String(b.id)))), 'CATTERY_ERR_AGENT_ENROLMENT', 'a token is good for its own server only');
  const okA = await enrol(keyA, tokA);
  t.equal(okA.statusCode, 200, 'node-a enrols');
  t.match(okA.json(), { server: 'node-a', kid: keyA.kid, hosterId: config.hosterId });
  t.equal(code(await enrol(stranger, tokA)), 'CATTERY_ERR_AGENT_ENROLMENT', 'a spent token is refused, with another key');
  t.equal(code(await enrol(keyA, tokA)), 'CATTERY_ERR_AGENT_ENROLMENT', 'and with the same key');
  const tokB = await token('node-b');
  t.equal(code(await enrol(keyA, tokB)), 'CATTERY_ERR_AGENT_ENROLMENT', 'one key is not pinned to two servers');
  t.equal((await enrol(keyB, tokB)).statusCode, 200, 'node-b enrols with its own key');
  // An enrolment whose signature is not by the key it names.
  const forged = await signDocument({ ...stranger, jwk: keyA.jwk, kid: keyA.kid }, 'agentEnrolment', { v: 1, token: await token('node-a'), iat: Math.floor(Date.now() / 1000) });
  t.equal(code(await post('/api/agent/enrol', { jws: forged })), 'CATTERY_ERR_AGENT_SIGNATURE', 'an enrolment not signed by the key it names is refused');

  let seq = Date.now();
  const sample = (server: number, over: Partial<SamplePayload> = {}): SamplePayload => ({
    v: 1, server, seq: ++seq, at: Date.now(), run: '0123456789abcdef', mono: String(process.hrtime.bigint()),
    host: { totalJiffies: 1000, idleJiffies: 900 }, mem: { totalBytes: 1e9, availableBytes: 5e8 }, containers: [], ...over,
  });
  const send = async (signer: Signer, payload: SamplePayload, headers: Record<string, string> = {}) =>
    post('/api/agent/samples', { jws: await signDocument(signer, 'agentSample', payload) }, headers);
  const lastSeq = (id: number) => (rt.db.$client.prepare('SELECT last_seq s FROM agent_nodes WHERE server_id = ?').get(id) as { s: number }).s;

  const first = sample(a.id, { at: Date.now() - 30_000 });
  const r1 = await send(keyA, first);
  t.same([r1.statusCode, r1.json()], [200, { recorded: false, watts: null }], 'a first sample sets the baseline');
  const r2 = await send(keyA, sample(a.id, { at: first.at + 10_000, host: { totalJiffies: 1200, idleJiffies: 1000 }, mono: String(BigInt(first.mono) + 10_000_000_000n) }));
  t.equal(r2.json().recorded, true, 'the next one is recorded');
  t.ok(r2.json().watts > 50, `at ${r2.json().watts} W on the default curve`);
  const recorded = () => (rt.db.$client.prepare('SELECT COUNT(*) n FROM meter_samples').get() as { n: number }).n;
  const lines = recorded();

  const refused: [string, string, () => Promise<{ headers: Record<string, unknown>; statusCode: number }>][] = [
    ['a bad signature (another key under node-a\'s name)', 'CATTERY_ERR_AGENT_SIGNATURE', () => send({ ...stranger, jwk: keyA.jwk, kid: keyA.kid }, sample(a.id))],
    ['a key not enrolled', 'CATTERY_ERR_AGENT_UNKNOWN', () => send(stranger, sample(a.id))],
    ['node-b\'s key speaking for node-a', 'CATTERY_ERR_AGENT_UNKNOWN', () => send(keyB, sample(a.id))],
    ['a replayed sample', 'CATTERY_ERR_AGENT_REPLAY', async () => post('/api/agent/samples', { jws: await signDocument(keyA, 'agentSample', { ...first }) })],
    ['a sequence below the last', 'CATTERY_ERR_AGENT_REPLAY', () => send(keyA, sample(a.id, { seq: 5 }))],
    ['a stale sample', 'CATTERY_ERR_AGENT_CLOCK', () => send(keyA, sample(a.id, { at: Date.now() - 5 * 60_000 }))],
    ['a sample from the future', 'CATTERY_ERR_AGENT_CLOCK', () => send(keyA, sample(a.id, { at: Date.now() + 5 * 60_000 }))],
    ['a payload this manager does not read', 'CATTERY_ERR_VALIDATION', () => send(keyA, { ...sample(a.id), extra: 1 } as SamplePayload)],
    ['a sample document signed as an enrolment', 'CATTERY_ERR_AGENT_SIGNATURE', async () => post('/api/agent/samples', { jws: await signDocument(keyA, 'agentEnrolment', sample(a.id)) })],
    ['an oversize body', 'CATTERY_ERR_TOO_LARGE', () => post('/api/agent/samples', { jws: `${'a'.repeat(SAMPLE_MAX_BYTES)}.b.c` })],
    ['no signature, with the administrator\'s token', 'CATTERY_ERR_UNAUTHENTICATED', () => post('/api/agent/samples', {}, OPERATOR)],
    ['an empty JWS', 'CATTERY_ERR_UNAUTHENTICATED', () => post('/api/agent/samples', { jws: '' })],
    ['a form body', 'CATTERY_ERR_UNSUPPORTED_MEDIA', () => app.inject({ method: 'POST', url: '/api/agent/samples', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'jws=a.b.c' })],
  ];
  for (const [what, expected, run] of refused) {
    const r = await run();
    t.equal(code(r), expected, `${what}: ${r.statusCode} ${expected}`);
  }
  t.equal(recorded(), lines, 'nothing refused was recorded');

  // Every byte of a signed sample's body, changed to any other byte: refused, and nothing recorded. The untouched
  // sample is accepted afterwards, so the refusals were the changes' doing.
  const good = sample(a.id, { at: first.at + 20_000, host: { totalJiffies: 1400, idleJiffies: 1100 }, mono: String(BigInt(first.mono) + 20_000_000_000n) });
  const body = Buffer.from(JSON.stringify({ jws: await signDocument(keyA, 'agentSample', good) }));
  const before = lastSeq(a.id);
  await fc.assert(fc.asyncProperty(fc.nat({ max: body.length - 1 }), fc.integer({ min: 1, max: 255 }), async (i, delta) => {
    const changed = Buffer.from(body);
    changed[i] = (changed[i]! + delta) % 256;
    const r = await post('/api/agent/samples', changed);
    return r.statusCode >= 400 && r.statusCode < 500;
  }), { numRuns: 400 });
  t.equal(lastSeq(a.id), before, 'no changed sample moved the sequence');
  t.equal(recorded(), lines, 'nor recorded anything');
  const r3 = await post('/api/agent/samples', body);
  t.equal(r3.statusCode, 200, 'the sample as signed is accepted');
  t.equal(code(await post('/api/agent/samples', body)), 'CATTERY_ERR_AGENT_REPLAY', 'once');

  // The local loop leaves the agents' servers alone; forgetting an agent gives the server back to it.
  await rt.collector.pass();
  await rt.collector.pass();
  const localLines = (id: number) => (rt.db.$client.prepare('SELECT COUNT(*) n FROM meter_samples WHERE server_id = ? AND ts > ?').get(id, new Date(Date.now() - 60_000).toISOString()) as { n: number }).n;
  t.equal(localLines(b.id), 0, 'node-b, metered by its agent, gets no line from the local loop');
  t.same((await app.inject({ method: 'DELETE', url: '/api/servers/node-b/agent', headers: OPERATOR })).json(), { forgotten: true });
  t.equal(code(await send(keyB, sample(b.id))), 'CATTERY_ERR_AGENT_UNKNOWN', 'a forgotten node\'s samples are refused');
  // Its first pass over node-b again only takes readings, as after a start.
  await rt.collector.pass();
  await rt.collector.pass();
  t.ok(localLines(b.id) > 0, 'and the local loop meters node-b again');
});

t.test('a node with RAPL: measured, split and conserved by the manager, across a counter wrap', async (t) => {
  const config = testConfig(t, { idlePolicy: 'equal' });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const app = rt.app;
  const s = addServer(rt.db, { name: 'node-r', dockerEndpoint: 'unix:///var/run/docker.sock' });
  const put = await app.inject({ method: 'PUT', url: '/api/servers/node-r/energy', headers: OPERATOR, payload: { idleWatts: 20, maxWatts: 120, embodiedKgCo2e: 500, serviceLifeYears: 6, meter: { kind: 'rapl' } } });
  t.equal(put.statusCode, 200);
  for (const slug of ['alpha-one', 'beta-two']) {
    rt.db.$client.prepare("INSERT INTO instances (slug, service, server_id, image, config, observed) VALUES (?, 'probe', ?, 'x', '{\"ports\":{},\"secrets\":{},\"env\":{}}', 'running')").run(slug, s.id);
  }
  const key = await newSigner();
  const tok = (await app.inject({ method: 'POST', url: '/api/servers/node-r/agent/enrolment', headers: OPERATOR, payload: {} })).json().token as string;
  t.equal((await app.inject({ method: 'POST', url: '/api/agent/enrol', headers: { 'content-type': 'application/json' }, payload: { jws: await signDocument(key, 'agentEnrolment', { v: 1, token: tok, iat: Math.floor(Date.now() / 1000) }) } })).statusCode, 200);
  const id = (n: number) => n.toString(16).padStart(64, '0');
  const c = (n: number, slug: string, cpuNs: number) => ({ id: id(n), slug, service: 'probe', cpuNs, memoryBytes: 1e6, netRxBytes: 0, netTxBytes: 0, blkReadBytes: 0, blkWriteBytes: 0 });
  const MAX = 262_143_328_850;
  const mono0 = process.hrtime.bigint();
  // Samples 10 s apart by both clocks (a pass is never longer than the wall clock between two samples), in the past
  // within the manager's tolerance.
  const at0 = Date.now() - 30_000;
  let seq = Date.now();
  const send = async (k: number, rapl: number[], containers: ReturnType<typeof c>[], host: { totalJiffies: number; idleJiffies: number }) => {
    const payload: SamplePayload = {
      v: 1, server: s.id, seq: ++seq, at: at0 + k * 10_000, run: 'aaaaaaaaaaaaaaaa', mono: String(mono0 + BigInt(k) * 10_000_000_000n), host,
      mem: { totalBytes: 8e9, availableBytes: 6e9 }, rapl: rapl.map((uj) => ({ uj, maxUj: MAX })), containers,
    };
    return app.inject({ method: 'POST', url: '/api/agent/samples', headers: { 'content-type': 'application/json' }, payload: { jws: await signDocument(key, 'agentSample', payload) } });
  };
  // Two packages; the second wraps between the samples. 10 s apart: package 0 drew 400 J, package 1 300 J.
  await send(0, [1_000_000_000, MAX - 100_000_000], [c(1, 'alpha-one', 0), c(2, 'beta-two', 0)], { totalJiffies: 10_000, idleJiffies: 8_000 });
  const r = await send(1, [1_400_000_000, 200_000_000], [c(1, 'alpha-one', 3e9), c(2, 'beta-two', 1e9), c(3, 'ghost-three', 5e9)], { totalJiffies: 12_000, idleJiffies: 9_000 });
  t.equal(r.statusCode, 200);
  t.equal(r.json().watts, 70, '700 J in 10 s: 70 W, measured');
  const lines = rt.db.$client.prepare('SELECT scope, slug, energy_j e, idle_share_j i, cpu_seconds cpu, method, model FROM meter_samples WHERE server_id = ? ORDER BY scope, slug').all(s.id) as { scope: string; slug: string; e: number; i: number; cpu: number; method: string; model: string }[];
  const by = (scope: string, slug = '') => lines.find((l) => l.scope === scope && l.slug === slug)!;
  t.ok(lines.every((l) => l.method === 'measured' && l.model === 'meter:rapl'), 'every line is measured, by RAPL');
  t.equal(by('server').e, 700, 'the server line is the two packages\' energy, the wrap counted');
  t.equal(by('idle').e, 200, 'idle: 20 W × 10 s');
  const parts = lines.filter((l) => l.scope !== 'server').reduce((a, l) => a + l.e, 0);
  t.ok(Math.abs(parts - 700) < 1e-9, `idle + other + instances = ${parts} J`);
  // Active 500 J over 10 busy CPU seconds (2,000 of 3,000 jiffies): 3 s for alpha, 1 s for beta, the rest other.
  t.ok(Math.abs(by('instance', 'alpha-one').e - 150) < 1e-9 && Math.abs(by('instance', 'beta-two').e - 50) < 1e-9, 'the active part by CPU time');
  t.notOk(lines.some((l) => l.slug === 'ghost-three'), 'a container of no known instance is not credited');
  t.ok(Math.abs(by('other').e - 300) < 1e-9, 'its CPU stays in other');
  t.equal(by('instance', 'alpha-one').i, 100, 'idle shared equally, apart');
});

t.test('cattery agent token SERVER, on the manager: a token that enrols once', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const path = await import('node:path');
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  addServer(rt.db, { name: 'node-t', dockerEndpoint: 'unix:///var/run/docker.sock' });
  const cli = (args: string[]) => spawnSync(process.execPath, [path.join(import.meta.dirname, '../../bin/cattery.js'), 'agent', ...args], {
    env: { PATH: process.env.PATH ?? '', CATTERY_DATA_DIR: config.dataDir, CATTERY_DB: config.dbFile, CATTERY_LOG_LEVEL: 'silent' }, encoding: 'utf8',
  });
  const r = cli(['token', 'node-t', '--hours', '2']);
  t.equal(r.status, 0, r.stderr);
  const tok = r.stdout.trim().split('\n').at(-1)!;
  t.match(tok, /^\d+\.[A-Za-z0-9_-]{43}$/, 'the token is printed on its own line');
  const key = await newSigner();
  const enrol = () => signDocument(key, 'agentEnrolment', { v: 1, token: tok, iat: Math.floor(Date.now() / 1000) })
    .then((jws) => rt.app.inject({ method: 'POST', url: '/api/agent/enrol', headers: { 'content-type': 'application/json' }, payload: { jws } }));
  t.equal((await enrol()).statusCode, 200, 'it enrols');
  t.equal((await enrol()).headers['x-cattery-error'], 'CATTERY_ERR_AGENT_ENROLMENT', 'once');
  const unknown = cli(['token', 'no-such-server']);
  t.equal(unknown.status, 1);
  t.match(unknown.stderr, /CATTERY_ERR_NOT_FOUND/, 'an unknown server is said so');
  t.equal(cli([]).status, 2, 'cattery agent alone says how');
});

t.test('the app refuses an agent route that would not check a signature', async (t) => {
  const config = testConfig(t);
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const { buildApp } = await import('../../src/http/app.js');
  const { PERMISSIONS } = await import('../../src/http/permissions.js');
  PERMISSIONS['POST /api/agent/unsigned'] = ['agent'];
  PERMISSIONS['POST /api/agent/unchecked'] = ['agent'];
  PERMISSIONS['POST /api/admin-signed'] = ['admin'];
  t.teardown(() => { for (const k of ['POST /api/agent/unsigned', 'POST /api/agent/unchecked', 'POST /api/admin-signed']) delete PERMISSIONS[k]; });
  const app = await buildApp({ ...rt, log: pino({ level: 'silent' }), secret: 'a'.repeat(32) });
  t.teardown(() => app.close());
  t.throws(() => app.post('/api/agent/unsigned', async () => 'x'), /agent role and a signed body go together/, 'the agent role on a route without config.signature');
  t.throws(() => app.post('/api/admin-signed', { config: { signature: true } }, async () => 'x'), /agent role and a signed body go together/, 'a signed route for another role');
  t.throws(() => app.post('/api/agent/unchecked', { config: { signature: true } }, async () => 'x'), /check its signature in preValidation/, 'a signed route that checks nothing');
});

t.test('the agent as a Swarm service: one per node, read-only views of the node, its own token only as a secret', async (t) => {
  const fc = (await import('fast-check')).default;
  const nodeId = 'abcdefghijklmnopqrstuvw01';
  const spec = agentServiceSpec({ hosterId: 'h1', image: 'cattery:1', manager: 'https://manager.example', nodeId, tokenSecret: { id: 'sid', name: 'h1-agent-token-x' } });
  t.same(spec.Mode, { Replicated: { Replicas: 1 } }, 'one task');
  t.same(spec.TaskTemplate.Placement.Constraints, [`node.id==${nodeId}`], 'on its node, by id (hostnames can repeat)');
  t.equal(spec.TaskTemplate.ContainerSpec.Secrets.length, 1, 'one secret: its own token');
  // Whatever a node id looks like, nothing else gets into the constraint.
  fc.assert(fc.property(fc.string({ maxLength: 40 }), (id) => {
    try { agentServiceSpec({ hosterId: 'h1', image: 'cattery:1', manager: 'https://m.example', nodeId: id }); return /^[a-z0-9]{25}$/.test(id); } catch { return !/^[a-z0-9]{25}$/.test(id); }
  }), { numRuns: 300 });
  t.same(agentServiceSpec({ hosterId: 'h1', image: 'cattery:1', manager: 'https://m.example', nodeId }).TaskTemplate.ContainerSpec.Secrets, [], 'none once enrolled');
  const mounts = spec.TaskTemplate.ContainerSpec.Mounts;
  for (const m of mounts.filter((x) => x.Type === 'bind')) t.equal(m.ReadOnly, true, `${m.Source} is mounted read-only`);
  t.same(mounts.filter((x) => x.Type === 'bind').map((m) => m.Source).sort(), ['/proc', '/sys', '/var/run/docker.sock']);
  t.equal(spec.TaskTemplate.ContainerSpec.ReadOnly, true);
  t.same(spec.TaskTemplate.ContainerSpec.CapabilityDrop, ['ALL']);
  t.notOk(spec.TaskTemplate.ContainerSpec.Env.some((e) => /TOKEN=/.test(e)), 'no token in the environment: a secret file');
  t.same(spec.TaskTemplate.ContainerSpec.Secrets[0]!.File, { Name: 'cattery-agent-token', UID: '0', GID: '0', Mode: 0o400 });
  // A token file written by hand for several nodes (`cattery agent run --token-file`): each node takes its own line,
  // by whole field; a node named like the start of another gets nothing.
  const file = 'node-1 1.aaa\nnode-10 2.bbb\n';
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-agent-tokens-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'tokens'), file, { mode: 0o600 });
  const of = (node?: string) => tokenOf({ tokenFile: path.join(dir, 'tokens'), ...(node ? { node } : {}) });
  t.equal(of('node-1'), '1.aaa');
  t.equal(of('node-10'), '2.bbb');
  t.equal(of('node'), undefined, 'no line for a prefix');
  t.equal(of(), undefined, 'no line without a node name');
});
