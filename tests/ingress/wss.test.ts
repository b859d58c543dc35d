// A pad's WebSocket over WSS through the front door: two Yjs clients converge, the certificate checked for the name;
// then as residents see it, two Chromium windows open https://pads.<domain>/ through the door, trusting the test CA
// from an NSS database of their own profile (as an association's CA would be trusted: no certificate error ignored),
// type at once and converge.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { waitFor } from '../helpers.js';
import { navigationOutcome, openSteadily } from '../chromium.js';
import { DOMAIN, get, startDoor } from './door.js';

t.test('a pad converges between two clients over WSS through the door', async (t) => {
  const { rt, ca, ports } = await startDoor(t, [`pads.${DOMAIN}`]);
  const made = await rt.app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'pads', slug: 'pads' } });
  t.equal(made.statusCode, 201, made.body);
  t.equal((await rt.app.inject({ method: 'PUT', url: '/api/instances/pads/hostnames', payload: { hostnames: [`pads.${DOMAIN}`] } })).statusCode, 200);
  await waitFor('pads over HTTPS', () => get(ports.https, `pads.${DOMAIN}`, ca.rootPem).then((a) => a.status === 200), 300_000, 250);
  // The name resolves to the door on loopback; the certificate is checked for the name against the CA's root.
  const lookup = (_h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void) =>
    (o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4));
  class DoorWS extends WebSocket { constructor(url: string) { super(url, { ca: ca.rootPem, lookup } as WebSocket.ClientOptions); } }
  const providers: WebsocketProvider[] = [];
  const open = () => {
    const doc = new Y.Doc();
    const provider = new WebsocketProvider(`wss://pads.${DOMAIN}:${ports.https}/public`, 'door-pad', doc,
      { WebSocketPolyfill: DoorWS as unknown as typeof globalThis.WebSocket, disableBc: true });
    providers.push(provider);
    return doc;
  };
  const a = open(); const b = open();
  a.getText('t').insert(0, 'bonjour par la porte');
  await waitFor('b sees a\'s text', () => b.getText('t').toString() === 'bonjour par la porte', 30_000, 100);
  b.getText('t').insert(0, '« ');
  await waitFor('a sees b\'s text', () => a.getText('t').toString() === '« bonjour par la porte', 30_000, 100);
  t.pass('both clients converged over WSS, certificate verified');
  // Providers reconnect forever, and their awareness ticks, unless both are destroyed: the process would stay alive.
  for (const p of providers) { p.destroy(); p.doc.destroy(); }

  // Chromium: the name mapped to the door on loopback (the only address it may use), the CA in its own NSS store.
  const home = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'cattery-chromium-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const nssdb = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(nssdb, { recursive: true, mode: 0o700 });
  const caFile = path.join(home, 'ca.pem');
  fs.writeFileSync(caFile, ca.rootPem);
  execFileSync('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'cattery test ACME CA', '-i', caFile]);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    env: { ...process.env, HOME: home },
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run',
      `--host-resolver-rules=MAP pads.${DOMAIN} 127.0.0.1, EXCLUDE localhost`],
  });
  t.teardown(() => browser.close());
  const insecure: string[] = [];
  const page = async () => {
    const p = await browser.newPage();
    p.on('console', (m) => { if (/mixed content|ERR_CERT|insecure/i.test(m.text())) insecure.push(m.text()); });
    // Through tests/chromium.ts: Docker changing the host's interfaces for the tests beside this one makes Chromium
    // drop the page or its WebSocket; that, and only that, reloads it.
    await openSteadily(p, `https://pads.${DOMAIN}:${ports.https}/p/porte`, (timeout) => p.getByText('Connecté').waitFor({ timeout }));
    return p;
  };
  const [p1, p2] = [await page(), await page()];
  t.equal(new URL(p1.url()).protocol, 'https:', 'the page is on https, its certificate accepted by Chromium\'s own checks');
  await Promise.all([
    p1.locator('.cm-content').click().then(() => p1.keyboard.type('Bonjour ')),
    p2.locator('.cm-content').click().then(() => p2.keyboard.type('voisins ')),
  ]);
  const content = (p: typeof p1) => p.evaluate(() => (window as unknown as { catteryPad: { text: { toString(): string } } }).catteryPad.text.toString());
  await waitFor('the two browsers converged over WSS', async () => {
    const [x, y] = [await content(p1), await content(p2)];
    return x === y && x.includes('Bonjour') && x.includes('voisins');
  }, 60_000, 200);
  // The pad's socket went through the door on wss:, not around it.
  const socketUrl = await p1.evaluate(() => (window as unknown as { catteryPad: { provider?: { url?: string } } }).catteryPad.provider?.url ?? '');
  t.match(socketUrl, new RegExp(`^wss://pads\\.${DOMAIN.replace('.', '\\.')}:${ports.https}/`), 'the editor\'s WebSocket is wss through the door');
  t.same(insecure, [], 'no certificate or mixed-content complaint in the console');

  // The same browser without the CA in its store refuses the page: the trust above is the store's, nothing ignored.
  const untrusting = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    env: { ...process.env, HOME: fs.mkdtempSync(path.join(home, 'empty-')) },
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--no-first-run', `--host-resolver-rules=MAP pads.${DOMAIN} 127.0.0.1, EXCLUDE localhost`],
  });
  t.teardown(() => untrusting.close());
  const bare = await untrusting.newPage();
  const refused = await navigationOutcome(bare, `https://pads.${DOMAIN}:${ports.https}/p/porte`);
  t.match(refused, /ERR_CERT_AUTHORITY_INVALID/, 'without the CA, Chromium refuses the certificate');
});
