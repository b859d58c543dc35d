// The pads service end to end: two Yjs clients edit one pad at once and converge; private pads open only with their
// owner's account; text survives a restart; the export holds Markdown and the Yjs state.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import tar from 'tar-fs';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { testRuntime, waitFor } from '../helpers.js';

function client(base: string, room: string, auth?: string) {
  const headers = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
  // y-websocket builds its socket with `new WebSocketPolyfill(url)`: this one adds the account's credentials.
  class AuthWS extends WebSocket { constructor(url: string) { super(url, { headers }); } }
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(base, room, doc, { WebSocketPolyfill: AuthWS as unknown as typeof globalThis.WebSocket, disableBc: true });
  return { doc, provider, text: doc.getText('content') };
}

t.test('pads: convergence, privacy, persistence, export, deletion', async (t) => {
  const rt = await testRuntime(t);
  const { app } = rt;
  const created = await app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'pads', slug: 'pads' } });
  t.equal(created.statusCode, 202, created.body);
  const base = `ws://127.0.0.1:${created.json().ports.http}`;
  await waitFor('pads healthy', async () => (await app.inject('/api/instances/pads')).json().observed === 'healthy', 120_000, 500);
  t.equal((await app.inject({ method: 'POST', url: '/api/instances/pads/accounts', payload: { username: 'lea', password: 'lea-secret-123', quotaMb: 10 } })).statusCode, 201);

  const clients: ReturnType<typeof client>[] = [];
  const open = (room: string, auth?: string) => { const c = client(base, room, auth); clients.push(c); return c; };

  const a = open('public/courses');
  const b = open('public/courses');
  await waitFor('both synced', () => a.provider.synced && b.provider.synced);
  // Concurrent edits: each client types before seeing the other's.
  a.text.insert(0, 'Pain, lait. ');
  b.text.insert(0, 'Pommes. ');
  await waitFor('converged', () => a.text.toString() === b.text.toString() && a.text.length === 'Pain, lait. Pommes. '.length);
  t.match(a.text.toString(), /Pain, lait\./);
  t.match(a.text.toString(), /Pommes\./);

  const anon = open('private/lea/journal');
  const refused = await new Promise<number>((resolve) => {
    (anon.provider as unknown as { on(ev: string, f: (e: unknown) => void): void }).on('connection-close', () => resolve(401));
    setTimeout(() => resolve(anon.provider.synced ? 0 : 401), 5000);
  });
  t.equal(refused, 401);
  t.notOk(anon.provider.synced, 'an anonymous client never opens a private pad');
  anon.provider.destroy();
  const intruder = open('private/lea/journal', 'lea:wrong-password');
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(intruder.provider.synced, 'a wrong password never opens it');
  intruder.provider.destroy();

  const lea = open('private/lea/journal', 'lea:lea-secret-123');
  await waitFor('lea synced', () => lea.provider.synced);
  lea.text.insert(0, '# Mon journal\n\nAujourd\'hui, atelier numérique.');
  await new Promise((r) => setTimeout(r, 500));
  lea.provider.destroy();

  const restarted = await app.inject({ method: 'POST', url: '/api/instances/pads/restart?wait=true' });
  t.equal(restarted.statusCode, 200);
  await waitFor('pads healthy again', async () => (await app.inject('/api/instances/pads')).json().observed === 'healthy', 60_000, 500);
  const again = open('private/lea/journal', 'lea:lea-secret-123');
  await waitFor('text after restart', () => again.provider.synced && again.text.toString().includes('atelier numérique'), 30_000);
  t.pass('the text survived a restart of the instance');
  again.provider.destroy();

  const usage = (await app.inject('/api/instances/pads/accounts/lea?usage=true')).json();
  t.equal(usage.usageItems, 1);
  const exp = await app.inject('/api/instances/pads/accounts/lea/export');
  t.equal(exp.statusCode, 200);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-export-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await pipeline(Readable.from(exp.rawPayload), tar.extract(dir));
  t.match(fs.readFileSync(path.join(dir, 'lea', 'journal.md'), 'utf8'), /# Mon journal/);
  const restored = new Y.Doc();
  Y.applyUpdate(restored, fs.readFileSync(path.join(dir, 'lea', 'journal.yjs')));
  t.match(restored.getText('content').toString(), /atelier numérique/, 'the Yjs state restores the pad');

  t.equal((await app.inject({ method: 'DELETE', url: '/api/instances/pads/accounts/lea' })).statusCode, 204);
  const gone = open('private/lea/journal', 'lea:lea-secret-123');
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(gone.provider.synced, 'a deleted account opens nothing');
  t.equal((await app.inject('/api/instances/pads/accounts/lea?usage=true')).statusCode, 404);
  // Providers reconnect forever unless destroyed, and would keep the test process alive.
  for (const c of clients) { c.provider.destroy(); c.doc.destroy(); }
});
