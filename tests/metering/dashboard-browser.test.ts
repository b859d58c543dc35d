// The energy dashboard as the city's staff see it, in Chromium with JavaScript off: figures per server and per
// service with how each was obtained, no person anywhere, accessible (axe-core) and light.
import { createRequire } from 'node:module';
import t from 'tap';
import { pino } from 'pino';
import { chromium } from 'playwright-core';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { recordPass, type MeterLine } from '../../src/metering/store.js';
import { testConfig } from '../helpers.js';
import { freePort } from '../identity/provider.js';

const axeSource: string = createRequire(import.meta.url)('axe-core').source;

t.test('the city reads the dashboard', async (t) => {
  const port = await freePort();
  const rt = await createRuntime(testConfig(t, { port, publicUrl: `http://127.0.0.1:${port}` }), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const base = await rt.app.listen({ host: '127.0.0.1', port });
  const serverId = (rt.db.$client.prepare("SELECT id FROM servers WHERE name = 'local'").get() as { id: number }).id;
  const l = (scope: MeterLine['scope'], slug: string, service: string, energyJ: number, idleShareJ = 0): MeterLine => ({
    scope, slug, service, seconds: 600, energyJ, idleShareJ, cpuSeconds: 1, memBytes: 1e6, netRxBytes: 0, netTxBytes: 0, blkReadBytes: 0, blkWriteBytes: 0,
    method: 'modelled', model: 'power-curve:linear(50W-200W)',
  });
  for (let i = 6; i >= 1; i--) { // in time order, as the collector writes
    recordPass(rt.db, serverId, new Date(Date.now() - i * 600_000), [
      l('server', '', '', 36_000 + 7200 + 3600), l('idle', '', '', 36_000), l('other', '', '', 3600),
      l('instance', 'courriel', 'mail', 5400, 18_000), l('instance', 'pads-quartier', 'pads', 1800, 18_000),
    ]);
  }
  rt.db.$client.prepare("INSERT INTO instances (slug, service, server_id, image, config) VALUES ('courriel', 'mail', ?, 'x', '{\"ports\":{},\"secrets\":{},\"env\":{}}')").run(serverId);
  rt.db.$client.prepare("INSERT INTO accounts (instance_id, username, state, quota_mb) VALUES (1, 'marie.dupont', 'active', 10)").run();
  await createUser(rt.db, { login: 'mairie', name: 'Service énergie de la mairie', roles: ['city'], password: 'mot de passe de la mairie' });
  await createUser(rt.db, { login: 'lea', name: 'Léa', roles: ['resident'], password: 'mot de passe de lea' });

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--no-first-run'] });
  t.teardown(() => browser.close());
  const signIn = async (login: string, password: string) => {
    const ctx = await browser.newContext({ javaScriptEnabled: false, locale: 'fr-FR' });
    const page = await ctx.newPage();
    await page.goto(`${base}/login?next=/dashboard`);
    await page.getByLabel('Identifiant').fill(login);
    await page.getByLabel('Mot de passe').fill(password);
    await page.getByRole('button', { name: 'Se connecter' }).click();
    return { ctx, page };
  };

  const resident = await signIn('lea', 'mot de passe de lea');
  t.match(await resident.page.locator('main').textContent(), /pas accès/, 'a resident has no dashboard');

  const { ctx, page } = await signIn('mairie', 'mot de passe de la mairie');
  let bytes = 0;
  page.on('response', async (r) => { const s = await r.request().sizes().catch(() => undefined); bytes += (s?.responseBodySize ?? 0) + (s?.responseHeadersSize ?? 0); });
  await page.goto(`${base}/dashboard?period=day`);
  await page.waitForLoadState('networkidle');
  t.equal(new URL(page.url()).pathname, '/dashboard');
  const main = (await page.locator('main').textContent())!;
  t.match(main, /Énergie et usage des serveurs/);
  // One resident uses mail: the open data withholds its energy, and so does the city's view of this page.
  t.notMatch(main, /Courriel/, 'a service of one resident is not shown to the city');
  t.match(main, /ne sont pas montrés seuls/, 'and the page says why');
  t.match(main, /Au repos/);
  t.match(main, /estimé par un modèle \(cpu-share \+ power-curve:linear\(50W-200W\)\)/, 'each figure says how it was obtained');
  t.notMatch(main, /\b9\.0\b/, 'nor its 6 passes × 5,400 J = 9.0 Wh');
  t.notMatch(main, /courriel|pads-quartier/, 'nor any instance by name');
  t.notMatch(main, /marie|dupont/i, 'no person on the page');
  t.ok(bytes < 100 * 1024, `${bytes} bytes transferred`);
  await page.getByRole('link', { name: '30 jours' }).click();
  t.match(page.url(), /period=month/);

  const audit = await (await browser.newContext({ bypassCSP: true, locale: 'fr-FR' })).newPage();
  await audit.context().addCookies(await ctx.cookies());
  await audit.goto(`${base}/dashboard`);
  await audit.addScriptTag({ content: axeSource });
  const violations = await audit.evaluate(async () => {
    const r = await (window as unknown as { axe: { run(o: unknown): Promise<{ violations: { id: string }[] }> } }).axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v) => v.id);
  });
  t.same(violations, [], 'axe: no violation on the dashboard');
  // With JavaScript on, the power figures follow the metering passes through the page's WebSocket.
  await t.test('the power figure is live with JavaScript on, and whole without it', async (t) => {
    const live = await browser.newContext({ locale: 'fr-FR' });
    t.teardown(() => live.close());
    await live.addCookies(await ctx.cookies());
    const city = await live.newPage();
    const requests: string[] = [];
    let scriptBytes = 0;
    city.on('request', (r) => requests.push(r.url()));
    city.on('response', async (r) => { if (r.url().endsWith('/live-power.js')) scriptBytes = (await r.body()).length; });
    const socket = city.waitForEvent('websocket');
    await city.goto(`${base}/dashboard/city`);
    t.equal(new URL((await socket).url()).pathname, '/dashboard/live', 'the page opens its live socket');
    city.on('console', (m) => t.comment(`console: ${m.text()}`));
    await rt.collector.pass(); // the first pass only takes the counters' starting values
    await new Promise((r) => setTimeout(r, 1000));
    const first = await rt.collector.pass();
    t.ok(first.length > 0, 'a pass with readings');
    const total = first.reduce((sum, r) => sum + r.watts, 0);
    await city.locator('[data-live="total"]').filter({ hasText: (Math.round(total * 10) / 10).toFixed(1) }).waitFor({ timeout: 20_000 });
    t.pass(`the city page shows the new total (${total.toFixed(1)} W) without a reload`);
    t.ok(scriptBytes > 0 && scriptBytes < 5 * 1024, `the script is ${scriptBytes} bytes (< 5 KB)`);
    t.same(requests.filter((u) => new URL(u).origin !== new URL(base).origin && !u.startsWith('data:')), [], 'nothing from elsewhere');

    const energy = await live.newPage();
    await energy.goto(`${base}/dashboard`);
    await energy.waitForEvent('websocket');
    const before = await energy.locator('[data-live="at"]').getAttribute('datetime');
    const second = await rt.collector.pass();
    t.not(second[0]!.at, before);
    await energy.locator(`[data-live="at"][datetime="${second[0]!.at}"]`).waitFor({ timeout: 20_000 });
    t.equal(await energy.locator(`tr[data-server="${serverId}"] [data-live="watts"]`).textContent(), `${second[0]!.watts.toFixed(1)} W`, 'the server\'s row follows the pass');

    const still = await ctx.newPage(); // JavaScript off: the same figures, server-rendered
    await still.goto(`${base}/dashboard/city`);
    t.match(await still.locator('[data-live="total"]').textContent(), /^\d+[.,]\d$/, 'without a script the page still shows the last reading');
  });
});
