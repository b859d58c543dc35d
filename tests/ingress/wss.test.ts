// A pad's WebSocket over WSS through the front door: two Yjs clients converge, the certificate checked for the name.
import t from 'tap';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { waitFor } from '../helpers.js';
import { DOMAIN, get, startDoor } from './door.js';

t.test('a pad converges between two clients over WSS through the door', async (t) => {
  const { rt, ca, ports } = await startDoor(t, [`pads.${DOMAIN}`]);
  const made = await rt.app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'pads', slug: 'pads' } });
  t.equal(made.statusCode, 201, made.body);
  t.equal((await rt.app.inject({ method: 'PUT', url: '/api/instances/pads/hostnames', payload: { hostnames: [`pads.${DOMAIN}`] } })).statusCode, 200);
  await waitFor('pads over HTTPS', () => get(ports.https, `pads.${DOMAIN}`, ca.rootPem).then((a) => a.status === 200), 300_000, 1000);
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
});
