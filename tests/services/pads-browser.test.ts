// The pad editor as residents use it: two Chromium pages on the same pad, typing at once, converge.
import t from 'tap';
import { chromium } from 'playwright-core';
import { HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';

t.test('two browsers edit one pad and converge', async (t) => {
  const rt = await testRuntime(t);
  const created = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'pads-web' } });
  const base = `http://127.0.0.1:${created.json().ports.http}`;
  await waitFor('pads healthy', async () => (await rt.app.inject('/api/instances/pads-web')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  const open = async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/p/quartier`);
    await page.getByText('Connecté').waitFor();
    return page;
  };
  const [p1, p2] = [await open(), await open()];
  t.equal(await p1.getAttribute('html', 'lang'), 'fr');
  await Promise.all([
    p1.locator('.cm-content').click().then(() => p1.keyboard.type('Bonjour ')),
    p2.locator('.cm-content').click().then(() => p2.keyboard.type('voisins ')),
  ]);
  const content = (p: typeof p1) => p.evaluate(() => (window as unknown as { catteryPad: { text: { toString(): string } } }).catteryPad.text.toString());
  await waitFor('converged', async () => {
    const [a, b] = [await content(p1), await content(p2)];
    return a === b && a.includes('Bonjour') && a.includes('voisins');
  // A liveness bound, not a speed target: on a loaded 2-core machine two Chromium pages and the server can take
  // well over 20 s to exchange their first edits; a real stall still fails here.
  }, 60_000);
  // What each editor shows (its document, without the other person's cursor label) equals the shared text.
  const shown = (p: typeof p1) => p.evaluate(() => (window as unknown as { catteryPad: { view: { state: { doc: { toString(): string } } } } }).catteryPad.view.state.doc.toString());
  t.equal(await shown(p1), await content(p1));
  t.equal(await shown(p2), await content(p1), 'both editors show the same text');

  // A private pad in the browser: the page asks for the account, and the editor then syncs with it.
  t.equal((await rt.app.inject({ method: 'POST', url: '/api/instances/pads-web/accounts', payload: { username: 'lea', password: 'lea-secret-123', quotaMb: 10 } })).statusCode, 201);
  const anonymous = await fetch(`${base}/private/lea/journal`);
  t.equal(anonymous.status, 401, 'without the account: 401');
  t.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic /);
  const ctx = await browser.newContext({ httpCredentials: { username: 'lea', password: 'lea-secret-123' } });
  const mine = await ctx.newPage();
  t.equal((await mine.goto(`${base}/private/lea/journal`))?.status(), 200);
  await mine.getByText('Connecté').waitFor();
  await mine.locator('.cm-content').click();
  await mine.keyboard.type('Mes notes');
  await waitFor('private text shared', async () => (await content(mine)) === 'Mes notes', 10_000);
  await ctx.close();
});
