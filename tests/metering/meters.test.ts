// Power from meters: a smart plug answering JSON and a PDU answering Prometheus text, both on loopback, and RAPL
// counters (a recorded powercap tree whose counter the test advances, across its wrap). A meter that stops
// answering gives way to the power curve, and the figures say so.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { createCollector } from '../../src/metering/collector.js';
import { OPERATOR, ROOT, testConfig } from '../helpers.js';

async function meterServer(t: Parameters<Parameters<typeof t.test>[1]>[0], body: () => { status: number; text: string }) {
  const srv = http.createServer((_req, res) => { const b = body(); res.writeHead(b.status); res.end(b.text); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => srv.close(r)));
  return `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
}

const serverLine = (db: { $client: { prepare(s: string): { all(): unknown[] } } }) =>
  db.$client.prepare("SELECT energy_j e, seconds s, method, model FROM meter_samples WHERE scope = 'server' ORDER BY id").all() as { e: number; s: number; method: string; model: string }[];

t.test('a JSON plug, a Prometheus PDU, and a meter that stops answering', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  let plugUp = true;
  const plug = await meterServer(t, () => (plugUp ? { status: 200, text: JSON.stringify({ power: { w: 80 } }) } : { status: 503, text: 'down' }));
  const put = (meter: unknown) => rt.app.inject({ method: 'PUT', url: '/api/servers/local/energy', headers: OPERATOR,
    payload: { idleWatts: 40, maxWatts: 160, embodiedKgCo2e: 900, serviceLifeYears: 6, meter } });
  t.equal((await put({ kind: 'http-json', url: `${plug}/status`, field: 'power.w' })).statusCode, 200);
  t.equal((await put({ kind: 'http-json', url: 'file:///etc/passwd', field: 'x' })).statusCode, 400, 'only http(s) meters');

  await rt.collector.pass();
  await new Promise((r) => setTimeout(r, 500));
  await rt.collector.pass();
  let rows = serverLine(rt.db);
  t.equal(rows.length, 1);
  t.equal(rows[0]!.method, 'measured');
  t.equal(rows[0]!.model, 'meter:http-json');
  t.ok(Math.abs(rows[0]!.e / rows[0]!.s - 80) < 1e-6, 'energy = 80 W × the interval');

  plugUp = false;
  await rt.collector.pass();
  rows = serverLine(rt.db);
  t.equal(rows[1]!.method, 'modelled', 'the plug stopped answering: the curve stands in, and the figure says so');
  t.match(rows[1]!.model, /^power-curve:linear\(40W-160W\)$/);

  const pdu = await meterServer(t, () => ({ status: 200, text: '# HELP pdu_outlet_power_watts Outlet power\n# TYPE pdu_outlet_power_watts gauge\npdu_outlet_power_watts{outlet="3"} 121.5\n' }));
  await put({ kind: 'prometheus', url: `${pdu}/metrics`, metric: 'pdu_outlet_power_watts' });
  await rt.collector.pass();
  await rt.collector.pass();
  rows = serverLine(rt.db);
  t.equal(rows.at(-1)!.model, 'meter:prometheus');
  t.ok(Math.abs(rows.at(-1)!.e / rows.at(-1)!.s - 121.5) < 1e-6);
  const report = (await rt.app.inject({ url: '/api/metering/energy?by=server', headers: OPERATOR })).json();
  t.equal(report.figures.find((f: { kind: string }) => f.kind === 'server').method, 'modelled', 'a period with a modelled pass in it is modelled as a whole');
});

t.test('RAPL counters, across the wrap', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'powercap-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.cpSync(path.join(ROOT, 'tests/fixtures/metering/powercap'), dir, { recursive: true });
  await rt.app.inject({ method: 'PUT', url: '/api/servers/local/energy', headers: OPERATOR,
    payload: { idleWatts: 30, maxWatts: 150, embodiedKgCo2e: 900, serviceLifeYears: 6, meter: { kind: 'rapl' } } });
  const c = createCollector({ db: rt.db, catalog: rt.catalog, engineFor: rt.reconciler.engineFor, log: rt.log, idlePolicy: 'none', retentionHours: 48, hourlyRetentionDays: 730, powercapRoot: dir });
  await c.pass();
  // 328,850 µJ to the top of the range, then 7,671,150 µJ after the wrap: 8 J.
  fs.writeFileSync(path.join(dir, 'intel-rapl:0/energy_uj'), '7671150');
  const [r] = await c.pass();
  t.equal(r!.method, 'measured');
  t.equal(r!.model, 'meter:rapl');
  const rows = serverLine(rt.db);
  t.ok(Math.abs(rows.at(-1)!.e - 8) < 1e-9, `8 J measured (${rows.at(-1)!.e})`);
  const parts = (rt.db.$client.prepare("SELECT SUM(energy_j) e FROM meter_samples WHERE scope != 'server'").get() as { e: number }).e;
  t.ok(Math.abs(parts - 8) < 1e-9, 'idle + other + instances = the measured 8 J');
});
