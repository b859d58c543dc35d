// `cattery agent` as real processes (node bin/cattery.js agent run) against a real cattery server listening on
// loopback: two nodes enrolled with one-time tokens from the admin API, each metering real probe containers of the
// local engine and sending signed samples; every sample recorded for a node is conserved (server = idle + other +
// Σ instances), the busy container gets the active energy by its CPU time, the node's key is 0600 in a 0700 folder,
// and a token used once does not enrol a third agent.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { loadCatalog } from '../../src/catalog/load.js';
import { addServer } from '../../src/orchestrator/servers.js';
import { serviceImageRef } from '../../src/orchestrator/docker/images.js';
import { OPERATOR, ROOT, docker, removeHosterObjects, testConfig, waitFor } from '../helpers.js';

t.test('two agents, two nodes, real containers', async (t) => {
  const config = testConfig(t, { idlePolicy: 'equal' });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    await rt.close();
    await removeHosterObjects(config.hosterId);
  });
  await rt.app.listen({ host: '127.0.0.1', port: 0 });
  const manager = `http://127.0.0.1:${(rt.app.server.address() as { port: number }).port}`;

  // Two servers, both this machine's engine: what each agent sees is the same engine, recorded under its own server.
  const a = addServer(rt.db, { name: 'node-a', dockerEndpoint: 'unix:///var/run/docker.sock' });
  const b = addServer(rt.db, { name: 'node-b', dockerEndpoint: 'unix:///var/run/docker.sock' });
  const image = serviceImageRef(loadCatalog([path.join(ROOT, 'tests/fixtures/services')]).services.get('probe')!);
  for (const [slug, cmd] of [['burner', ['/bin/sh', '-c', 'while :; do :; done']], ['calm', ['/bin/sleep', '3600']]] as const) {
    const c = await docker.createContainer({
      Image: image, Cmd: [...cmd], User: '65534:65534',
      Labels: { 'cattery.hoster': config.hosterId, 'cattery.instance': slug, 'cattery.service': 'probe', 'cattery.generation': '1' },
      HostConfig: { NetworkMode: 'none', Memory: 32 * 1024 * 1024, NanoCpus: 500_000_000 },
    });
    await c.start();
    rt.db.$client.prepare("INSERT INTO instances (slug, service, server_id, image, config, observed) VALUES (?, 'probe', ?, ?, '{\"ports\":{},\"secrets\":{},\"env\":{}}', 'running')").run(slug, a.id, image);
  }

  const tokenFor = async (name: string) => {
    const r = await rt.app.inject({ method: 'POST', url: `/api/servers/${name}/agent/enrolment`, headers: OPERATOR, payload: {} });
    t.equal(r.statusCode, 200, `a token for ${name}`);
    return r.json().token as string;
  };
  const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-agent-test-'));
  t.teardown(() => fs.rmSync(stateRoot, { recursive: true, force: true }));
  const agent = (name: string, token: string, extra: string[] = []) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'agent', 'run', '--manager', manager, '--token', token,
      '--state-dir', path.join(stateRoot, name), '--interval', '1', ...extra], {
      env: { PATH: process.env.PATH ?? '', CATTERY_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    children.push(child);
    return { child, output: () => output };
  };
  const tokenA = await tokenFor('node-a');
  const agentA = agent('node-a', tokenA);
  const agentB = agent('node-b', await tokenFor('node-b'));

  const c = rt.db.$client;
  const passesOf = (serverId: number) => c.prepare(`SELECT ts, SUM(CASE WHEN scope = 'server' THEN energy_j ELSE 0 END) server,
      SUM(CASE WHEN scope != 'server' THEN energy_j ELSE 0 END) parts, SUM(CASE WHEN slug = 'burner' THEN energy_j ELSE 0 END) be,
      SUM(CASE WHEN scope IN ('other', 'instance') THEN energy_j ELSE 0 END) ae, SUM(CASE WHEN slug = 'burner' THEN cpu_seconds ELSE 0 END) bc,
      SUM(CASE WHEN scope IN ('other', 'instance') THEN cpu_seconds ELSE 0 END) ac, COUNT(*) lines
    FROM meter_samples WHERE server_id = ? GROUP BY ts ORDER BY ts`).all(serverId) as { ts: string; server: number; parts: number; be: number; ae: number; bc: number; ac: number; lines: number }[];
  await waitFor('four samples recorded for each node', () => passesOf(a.id).length >= 4 && passesOf(b.id).length >= 4, 60_000, 250)
    .catch((err: Error) => { throw new Error(`${err.message}\nagent a: ${agentA.output()}\nagent b: ${agentB.output()}`); });

  for (const s of [a, b]) {
    const passes = passesOf(s.id);
    for (const p of passes) {
      t.ok(p.server > 0 && Math.abs(p.server - p.parts) < 1e-6 * p.server, `${s.name} ${p.ts}: ${p.server.toFixed(2)} J = idle + other + instances (${p.lines} lines)`);
      t.ok(p.ac > 0 && Math.abs(p.be / p.ae - p.bc / p.ac) < 1e-6, `${s.name} ${p.ts}: the burner has ${(p.be / p.ae * 100).toFixed(1)} % of the active energy for ${(p.bc / p.ac * 100).toFixed(1)} % of the CPU`);
    }
    const burner = c.prepare("SELECT SUM(cpu_seconds) cpu, SUM(energy_j) e FROM meter_samples WHERE server_id = ? AND slug = 'burner'").get(s.id) as { cpu: number; e: number };
    const calm = c.prepare("SELECT SUM(cpu_seconds) cpu, SUM(energy_j) e FROM meter_samples WHERE server_id = ? AND slug = 'calm'").get(s.id) as { cpu: number; e: number };
    if (s === b) {
      // node-b's agent sees the same engine's containers, but they are node-a's instances: their CPU stays in its
      // "other", never credited to a resident by a node that does not run them.
      t.same([burner.cpu, calm.cpu], [null, null], 'node-b credits nothing to node-a\'s instances');
      continue;
    }
    t.ok(burner.cpu > 0.3, `${s.name}: the burner used ${burner.cpu.toFixed(2)} CPU s`);
    t.ok(burner.e > 5 * calm.e, `${s.name}: the burner ${burner.e.toFixed(1)} J, the sleeper ${calm.e.toFixed(2)} J`);
    const model = c.prepare('SELECT DISTINCT method, model FROM meter_samples WHERE server_id = ?').all(s.id) as { method: string; model: string }[];
    t.same(model, [{ method: 'modelled', model: 'power-curve:linear(50W-200W)' }], `${s.name}: modelled from its power curve, by the manager`);
  }
  const power = (await rt.app.inject({ url: '/api/metering/power', headers: OPERATOR })).json() as { servers: { server: string; watts: number }[] };
  t.ok(['node-a', 'node-b'].every((n) => power.servers.some((p) => p.server === n && p.watts > 0)), 'the live figures show both nodes');
  const agents = (await rt.app.inject({ url: '/api/agents', headers: OPERATOR })).json() as { server: string; fingerprint: string | null; lastSampleAt: string | null }[];
  t.ok(agents.filter((x) => x.server.startsWith('node-')).every((x) => x.fingerprint && x.lastSampleAt), 'the admin API lists both nodes, enrolled and reporting');

  // The node's key: 0600 in a 0700 folder, made on the node.
  for (const n of ['node-a', 'node-b']) {
    t.equal(fs.statSync(path.join(stateRoot, n)).mode & 0o777, 0o700, `${n}: state folder 0700`);
    t.equal(fs.statSync(path.join(stateRoot, n, 'node-key.json')).mode & 0o777, 0o600, `${n}: key 0600`);
    t.equal(fs.statSync(path.join(stateRoot, n, 'enrolment.json')).mode & 0o777, 0o600, `${n}: enrolment 0600`);
  }

  // The token node-a enrolled with, used again by a third agent with its own new key: refused, and it says why.
  const third = agent('node-c', tokenA);
  const code = await new Promise<number | null>((r) => third.child.once('exit', r));
  t.equal(code, 1, 'a third agent with a spent token exits with an error');
  t.match(third.output(), /CATTERY_ERR_AGENT_ENROLMENT/, 'the manager refused the spent token');
  t.notOk(fs.existsSync(path.join(stateRoot, 'node-c', 'enrolment.json')), 'and it holds no enrolment');

  // A restarted agent keeps its key and enrolment (no token needed) and its samples are still accepted.
  const before = passesOf(a.id).length;
  process.kill(agentA.child.pid!, 'SIGTERM');
  t.equal(await new Promise((r) => agentA.child.once('exit', r)), 0, 'agent a stops cleanly on SIGTERM');
  const again = spawn(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'agent', 'run', '--manager', manager, '--state-dir', path.join(stateRoot, 'node-a'), '--interval', '1'], {
    env: { PATH: process.env.PATH ?? '', CATTERY_LOG_LEVEL: 'warn' }, stdio: 'ignore',
  });
  children.push(again);
  // Its first sample after the restart is a new run: a baseline only; the next ones are recorded.
  await waitFor('samples from the restarted agent', () => passesOf(a.id).length >= before + 2, 30_000, 250);
  t.pass('the restarted agent reports without a new token');
});
