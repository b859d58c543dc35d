// Placement through the API, on the real engine (its cores and memory from `docker info`): with a second server whose
// power curve is flatter, a new instance would go there, each server's added watts shown; a server whose engine does
// not answer is never chosen; the consolidation plan empties the server with the steeper curve. Nothing is created.
import os from 'node:os';
import t from 'tap';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { OPERATOR, testConfig } from '../helpers.js';

t.test('placement and consolidation from the API', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const api = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => rt.app.inject({ method, url, headers: OPERATOR, ...(payload ? { payload } : {}) });

  const alone = (await api('GET', '/api/servers/placement?service=probe')).json();
  t.equal(alone.server, 'local', 'one server: that one');
  t.equal((await api('POST', '/api/servers', { name: 'neuf', dockerEndpoint: 'unix:///var/run/docker.sock' })).statusCode, 201);
  t.equal((await api('POST', '/api/servers', { name: 'eteint', dockerEndpoint: 'unix:///nonexistent/cattery-placement.sock' })).statusCode, 201);
  t.equal((await api('PUT', '/api/servers/local/energy', { idleWatts: 120, maxWatts: 300, embodiedKgCo2e: 1000, serviceLifeYears: 6 })).statusCode, 200);
  t.equal((await api('PUT', '/api/servers/neuf/energy', { idleWatts: 40, maxWatts: 120, embodiedKgCo2e: 1000, serviceLifeYears: 6 })).statusCode, 200);
  t.equal((await api('PUT', '/api/servers/eteint/energy', { idleWatts: 1, maxWatts: 2, embodiedKgCo2e: 1000, serviceLifeYears: 6 })).statusCode, 200);

  const p = (await api('GET', '/api/servers/placement?service=probe')).json();
  t.equal(p.server, 'neuf', 'the flatter curve');
  t.same(p.candidates.map((c: { name: string }) => c.name).sort(), ['local', 'neuf'], 'a server whose engine does not answer is not a candidate, however cheap');
  // probe: 0.25 CPU limit, never metered: a tenth of it, 0.025 cores, on this machine's cores.
  const cores = os.cpus().length;
  t.equal(Math.round(p.addedWatts * 1e6) / 1e6, Math.round(80 * 0.025 / cores * 1e6) / 1e6, 'its added watts from the curve: 80 W over the cores');
  t.equal((await api('GET', '/api/servers/placement?service=nope')).json().code, 'CATTERY_ERR_UNKNOWN_SERVICE');

  const plans = (await api('GET', '/api/servers/consolidation')).json();
  t.equal(plans[0].empties, 'local', 'the steeper server is the one to rest');
  t.ok(plans[0].kWhPerMonthOff > 0 && plans[0].kWhPerMonthOff >= plans[0].kWhPerMonthIdle, `${plans[0].kWhPerMonthOff} kWh a month switched off, ${plans[0].kWhPerMonthIdle} left at rest`);
  t.equal(rt.db.$client.prepare('SELECT COUNT(*) n FROM instances').get().n, 0, 'nothing was created or moved');
});
