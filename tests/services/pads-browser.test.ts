// The pad editor as residents use it: two Chromium pages on the same pad, typing at once, converge. The editor page
// is also held to every resident page's rules (issue 13, "Sobriety"): under 100 KB on the wire, nothing from another
// origin, no axe-core violation; and its script is served compressed and revalidated with a 304.
import http from 'node:http';
import zlib from 'node:zlib';
import t from 'tap';
import { PAGE_BUDGET, axeViolations, launchChromium, weighPage } from '../chromium.js';
import { HEALTHY_WITHIN_MS, testRuntime, waitFor } from '../helpers.js';

/** A GET with exactly these headers, the body as sent (Node's fetch would decode it). */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

t.test('two browsers edit one pad and converge', async (t) => {
  const rt = await testRuntime(t);
  const created = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'pads-web' } });
  const base = `http://127.0.0.1:${created.json().ports.http}`;
  await waitFor('pads healthy', async () => (await rt.app.inject('/api/instances/pads-web')).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);

  const browser = await launchChromium(t);

  // The editor page, weighed as a resident's first visit (a fresh context: nothing cached), once it is connected.
  // CSP is bypassed in this context only so that axe-core (an inline script) can run; it changes no byte counted.
  const first = await (await browser.newContext({ bypassCSP: true })).newPage();
  const weight = await weighPage(first, `${base}/p/mesure`, () => first.getByText('Connecté').waitFor({ timeout: 60_000 }));
  t.ok(weight.bytes < PAGE_BUDGET, `the editor page: ${weight.bytes} bytes on the wire (budget ${PAGE_BUDGET}): ${JSON.stringify(weight.parts.map(([u, n]) => [new URL(u).pathname, n]))}`);
  t.same(weight.foreign, [], 'nothing asked from another origin');
  t.same(await axeViolations(first), [], 'axe: no WCAG 2.1 A/AA or best-practice violation on the editor page');
  await first.close();

  // The script: at a versioned address kept for good, compressed as the client accepts, byte-exact, revalidated.
  const pageHtml = await (await fetch(`${base}/p/mesure`)).text();
  const script = /<script type="module" src="(\/editor\.[0-9a-f]{16}\.js)">/.exec(pageHtml)?.[1];
  t.ok(script, 'the page names the versioned script');
  const plain = await rawGet(`${base}${script}`, {});
  t.equal(plain.headers['content-encoding'], undefined, 'no Accept-Encoding: plain');
  t.match(plain.headers['cache-control'], /immutable/);
  t.equal(plain.headers.vary, 'Accept-Encoding');
  for (const [ae, coding, decode] of [['br', 'br', zlib.brotliDecompressSync], ['gzip, deflate', 'gzip', zlib.gunzipSync]] as const) {
    const r = await rawGet(`${base}${script}`, { 'accept-encoding': ae });
    t.equal(r.headers['content-encoding'], coding, `${ae}: ${coding}, ${r.body.length} bytes (plain ${plain.body.length})`);
    t.ok(decode(r.body).equals(plain.body), `${coding}: the same bytes once decoded`);
    const again = await rawGet(`${base}${script}`, { 'accept-encoding': ae, 'if-none-match': String(r.headers.etag) });
    t.equal(again.status, 304, `${coding}: a 304 with its ETag`);
  }
  t.equal((await rawGet(`${base}/editor.js`, {})).headers['cache-control'], 'no-cache', 'the unversioned address is revalidated');
  t.equal((await rawGet(`${base}/editor.0000000000000000.js`, {})).body.equals(plain.body), false, 'another version is not served as this one');
  const page = await rawGet(`${base}/p/mesure`, { 'accept-encoding': 'gzip' });
  t.equal(page.headers['content-encoding'], 'gzip');
  t.match(zlib.gunzipSync(page.body).toString(), /Pad « mesure »/, 'the page, compressed');

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
  // Without CodeMirror's default keymap, Enter and Backspace are the browser's own editing; undo is Yjs's, and takes
  // back only this person's edits.
  await p1.locator('.cm-content').click();
  await p1.keyboard.press('Control+End');
  await p1.keyboard.type('ligne');
  await p1.keyboard.press('Enter');
  await p1.keyboard.type('suivantX');
  await p1.keyboard.press('Backspace');
  await waitFor('a new line, shared', async () => (await content(p2)).endsWith('ligne\nsuivant'), 60_000);
  await p1.keyboard.press('Control+z');
  await waitFor('undone', async () => !(await content(p2)).includes('suivant'), 60_000);
  t.match(await content(p2), /voisins/, 'undo took back the last edit only, not the other person\'s');

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
