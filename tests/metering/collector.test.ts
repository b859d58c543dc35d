// The collector on real containers of the local engine: one burning CPU gets most of the active energy, an idle one
// little; every pass is conserved; the stats API fallback agrees; the API, /metrics and the live stream serve the
// figures, and the city never reads one account.
import t from 'tap';
import WebSocket from 'ws';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { loadCatalog } from '../../src/catalog/load.js';
import { createCollector } from '../../src/metering/collector.js';
import { OPERATOR, ROOT, docker, removeHosterObjects, testConfig } from '../helpers.js';
import { serviceImageRef } from '../../src/orchestrator/docker/images.js';
import path from 'node:path';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('metering real containers', async (t) => {
  const config = testConfig(t, { idlePolicy: 'equal' });
  // The reconciler is not started: these containers are the test's own, made with cattery's labels.
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(async () => { await rt.close(); await removeHosterObjects(config.hosterId); });
  const catalog = loadCatalog([path.join(ROOT, 'tests/fixtures/services')]);
  const image = serviceImageRef(catalog.services.get('probe')!);
  const run = async (slug: string, cmd: string[]) => {
    const c = await docker.createContainer({
      Image: image, Cmd: cmd, User: '65534:65534',
      Labels: { 'cattery.hoster': config.hosterId, 'cattery.instance': slug, 'cattery.service': 'probe', 'cattery.generation': '1' },
      HostConfig: { NetworkMode: 'none', Memory: 32 * 1024 * 1024 },
    });
    await c.start();
    return c;
  };
  await run('burner', ['/bin/sh', '-c', 'while :; do :; done']);
  await run('calm', ['/bin/sleep', '3600']);
  const serverId = (rt.db.$client.prepare("SELECT id FROM servers WHERE name = 'local'").get() as { id: number }).id;
  // Rows for the account figure: the instance and two residents' accounts with their usage.
  const inst = rt.db.$client.prepare("INSERT INTO instances (slug, service, server_id, image, config, observed) VALUES ('calm', 'probe', ?, ?, '{\"ports\":{},\"secrets\":{},\"env\":{}}', 'running') RETURNING id").get(serverId, image) as { id: number };
  rt.db.$client.prepare("INSERT INTO accounts (instance_id, username, state, quota_mb, usage_bytes, usage_items) VALUES (?, 'alice', 'active', 10, 3000, 1), (?, 'bob', 'active', 10, 1000, 3)").run(inst.id, inst.id);

  await rt.collector.pass();
  for (let i = 0; i < 3; i++) { await sleep(2000); await rt.collector.pass(); }
  t.same(rt.collector.readers(), { cgroup: 2, stats: 0, skipped: 0 }, 'both read from cgroup files, no stats API call');

  const c = rt.db.$client;
  const passes = c.prepare(`SELECT ts, SUM(CASE WHEN scope = 'server' THEN energy_j ELSE 0 END) server, SUM(CASE WHEN scope != 'server' THEN energy_j ELSE 0 END) parts
    FROM meter_samples GROUP BY ts`).all() as { ts: string; server: number; parts: number }[];
  t.equal(passes.length, 3, 'three passes recorded (the first only took readings)');
  for (const p of passes) t.ok(Math.abs(p.server - p.parts) < 1e-6 * p.server, `pass ${p.ts}: ${p.server.toFixed(2)} J = idle + other + instances`);
  const by = (slug: string) => (c.prepare("SELECT SUM(energy_j) e, SUM(cpu_seconds) cpu, SUM(idle_share_j) i FROM meter_samples WHERE slug = ?").get(slug) as { e: number; cpu: number; i: number });
  const burner = by('burner'), calm = by('calm');
  const active = (c.prepare("SELECT SUM(energy_j) e FROM meter_samples WHERE scope IN ('other', 'instance')").get() as { e: number }).e;
  // What the burner gets depends on what runs beside this file (2 cores, tap's 2 jobs, containers of other tests):
  // on a loaded CI machine it got 0.9 CPU s in 6 s. A busy loop gets a few percent of a core even at a load of 20.
  t.ok(burner.cpu > 0.3, `the burner used ${burner.cpu.toFixed(2)} CPU seconds in about 6 s`);
  t.ok(calm.cpu < 0.1, `the sleeper used ${calm.cpu.toFixed(3)}`);
  t.ok(burner.e > 0.9 * (burner.e + calm.e), `the burner has ${burner.e.toFixed(1)} J of the containers' ${(burner.e + calm.e).toFixed(1)} J`);
  // The attribution, whatever the load: in every pass the burner's part of the active energy ("other" is the host's
  // own work, the neighbouring tests' included) is its part of the CPU time.
  const perPass = c.prepare(`SELECT ts, SUM(CASE WHEN slug = 'burner' THEN energy_j ELSE 0 END) be, SUM(energy_j) ae,
      SUM(CASE WHEN slug = 'burner' THEN cpu_seconds ELSE 0 END) bc, SUM(cpu_seconds) ac
    FROM meter_samples WHERE scope IN ('other', 'instance') GROUP BY ts`).all() as { ts: string; be: number; ae: number; bc: number; ac: number }[];
  t.equal(perPass.length, 3);
  for (const p of perPass) {
    t.ok(p.ac > 0 && Math.abs(p.be / p.ae - p.bc / p.ac) < 1e-6, `pass ${p.ts}: the burner has ${(p.be / p.ae * 100).toFixed(1)} % of the active energy for ${(p.bc / p.ac * 100).toFixed(1)} % of the CPU time`);
  }
  t.ok(burner.e > 0 && active > burner.e, `and a part of the active energy the busy test machine leaves (${(burner.e / active * 100).toFixed(0)} %)`);
  t.equal(Math.round(burner.i * 1e6), Math.round(calm.i * 1e6), 'idle shared equally under the equal policy, apart from active energy');
  const mem = c.prepare("SELECT mem_byte_seconds / seconds m FROM meter_samples WHERE slug = 'calm' LIMIT 1").get() as { m: number };
  t.ok(mem.m > 0 && mem.m < 32 * 1024 * 1024, `working set ${mem.m} bytes, under the limit`);

  // The stats API fallback sees the same burner.
  const viaStats = createCollector({ db: rt.db, catalog: rt.catalog, engineFor: rt.reconciler.engineFor, log: rt.log, idlePolicy: 'none', retentionHours: 48, hourlyRetentionDays: 730, useStatsApi: true });
  await viaStats.pass();
  await sleep(2000);
  const readings = await viaStats.pass();
  t.same(viaStats.readers(), { cgroup: 0, stats: 2, skipped: 0 });
  const burnW = readings[0]!.instances.find((i) => i.slug === 'burner')!.watts;
  t.ok(burnW > 5 * readings[0]!.instances.find((i) => i.slug === 'calm')!.watts, 'the stats API tells the same story');

  // A container listed as running but unreadable a moment later (created, restarting or removed between the list and
  // the read: what a bulk provisioning does all the time) is left out of that pass, not asked from the stats API,
  // whose answer waits about a second inside dockerd (issue 15). Here a listed container that no longer exists.
  const ghost = { Id: 'f'.repeat(64), Names: ['/ghost'], State: 'running', Labels: { 'cattery.hoster': config.hosterId, 'cattery.instance': 'ghost', 'cattery.service': 'probe', 'cattery.generation': '1' } };
  const withGhost = (server: Parameters<typeof rt.reconciler.engineFor>[0]) => {
    const e = rt.reconciler.engineFor(server);
    const docker = new Proxy(e.docker, {
      get(target, prop) {
        if (prop === 'listContainers') return async (o: object) => [...await target.listContainers(o), ghost];
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    return { ...e, docker };
  };
  const haunted = createCollector({ db: rt.db, catalog: rt.catalog, engineFor: withGhost, log: rt.log, idlePolicy: 'none', retentionHours: 48, hourlyRetentionDays: 730 });
  await haunted.pass();
  const seen = await haunted.pass();
  t.same(haunted.readers(), { cgroup: 2, stats: 0, skipped: 1 }, 'the real containers from their cgroups; the vanished one left out, no stats API call');
  t.same(seen[0]!.instances.map((i) => i.slug).sort(), ['burner', 'calm'], 'and the pass goes on with the others');

  // The API: an administrator reads instances and one account; the city reads servers and services as the open data
  // publishes them, and no instance (one instance can be one resident).
  const city = (await rt.app.inject({ method: 'POST', url: '/api/tokens', headers: OPERATOR, payload: { name: 'mairie', roles: ['city'] } })).json().token as string;
  const cityH = { authorization: `Bearer ${city}` };
  const energy = await rt.app.inject({ url: '/api/metering/energy?by=instance', headers: OPERATOR });
  t.equal(energy.statusCode, 200);
  const figs = energy.json().figures as { key: string; kind: string; method: string; model: string; co2eG: { total: number } }[];
  // Among instances, the burner leads (the idle and other lines may be larger on a machine busy with other tests).
  const top = figs.filter((f) => f.kind === 'instance')[0]!;
  t.equal(top.key, 'burner', 'the top instance is the burner');
  t.equal(top.method, 'modelled');
  t.match(top.model, /cpu-share \+ power-curve:linear\(50W-200W\)/);
  t.ok(top.co2eG.total > 0);
  t.ok(figs.some((f) => f.kind === 'idle') && figs.some((f) => f.kind === 'other'), 'idle and other processes on lines of their own');
  t.equal((await rt.app.inject({ url: '/api/metering/top?limit=1', headers: OPERATOR })).json()[0].key, 'burner');
  t.equal((await rt.app.inject({ url: '/api/metering/energy?by=instance', headers: cityH })).statusCode, 403, 'the city reads no instance');
  t.equal((await rt.app.inject({ url: '/api/metering/top?limit=1', headers: cityH })).statusCode, 403, 'nor the top list');
  const cityServices = (await rt.app.inject({ url: '/api/metering/energy?by=service', headers: cityH })).json().figures as { key: string; kind: string }[];
  t.notOk(cityServices.some((f) => f.kind === 'service' && f.key === 'probe'), 'a service of two residents is withheld from the city, as in the open data');
  t.ok(cityServices.some((f) => f.kind === 'idle'), 'idle and other processes are the machine\'s');
  const cityPower = (await rt.app.inject({ url: '/api/metering/power', headers: cityH })).json() as { servers: { instances: unknown[] }[] };
  t.ok(cityPower.servers.every((s) => s.instances.length === 0), 'power now per server for the city, without instances');
  const deny = await rt.app.inject({ url: '/api/metering/accounts/calm/alice', headers: cityH });
  t.equal(deny.statusCode, 403, 'the city cannot read one account');
  const alice = await rt.app.inject({ url: '/api/metering/accounts/calm/alice', headers: OPERATOR });
  t.equal(alice.statusCode, 200);
  t.equal(alice.json().keyShare, 0.5 * 0.75 + 0.5 * 0.25);
  t.equal(alice.json().method, 'modelled');
  const metrics = await rt.app.inject({ url: '/metrics', headers: OPERATOR });
  t.equal(metrics.statusCode, 200);
  t.match(metrics.body, /cattery_server_power_watts\{server="local",method="modelled"/);
  t.match(metrics.body, /cattery_instance_energy_joules_total\{server="local",instance="burner",service="probe",kind="active"\} \d/);
  t.notMatch(metrics.body, /alice|bob/, 'no person in the metrics');
  t.equal((await rt.app.inject({ url: '/metrics', headers: cityH })).statusCode, 403, 'Prometheus\'s per-instance series are the administrators\'');
  t.equal((await rt.app.inject({ url: '/metrics', headers: { authorization: null } } as never)).statusCode, 401);

  const settings = await rt.app.inject({ method: 'PUT', url: '/api/servers/local/energy', headers: OPERATOR,
    payload: { idleWatts: 30, maxWatts: 120, curve: [30, 45, 55, 63, 70, 78, 86, 94, 102, 111, 120], embodiedKgCo2e: 800, serviceLifeYears: 8 } });
  t.equal(settings.statusCode, 200, settings.body);
  t.equal((await rt.app.inject({ method: 'PUT', url: '/api/servers/local/energy', headers: OPERATOR, payload: { idleWatts: 90, maxWatts: 20, embodiedKgCo2e: 1, serviceLifeYears: 5 } })).statusCode, 400);

  // The live stream: a reading after each pass.
  const base = await rt.app.listen({ host: '127.0.0.1', port: 0 });
  const ws = new WebSocket(`${base.replace('http', 'ws')}/api/metering/stream`, { headers: cityH });
  const got: unknown[] = [];
  ws.on('message', (m: Buffer) => got.push(JSON.parse(m.toString())));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  await sleep(1000);
  const r = await rt.collector.pass();
  await sleep(300);
  ws.terminate();
  t.ok(got.length >= 1, 'the stream sent the current power');
  const last = got.at(-1) as { model: string; watts: number }[];
  t.match(last[0]!.model, /specpower-11pt/, 'with the server\'s new curve');
  t.equal(last[0]!.watts, r[0]!.watts);
});
