// Who cattery takes for the front door: only connections on the door's unix socket. A TCP client that resets before
// Node reads its address (so that it has none) must not pass for the door and choose its own client address: found
// by an outside review, where 99 of 200 such connections spent a victim's sign-in budget.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { testRuntime } from '../helpers.js';
import { listenForDoor } from '../../src/http/door-socket.js';

t.test('TCP clients that reset at once spend nobody\'s budget but their own', async (t) => {
  const rt = await testRuntime(t, {});
  await rt.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (rt.app.server.address() as net.AddressInfo).port;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-door-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'cattery.sock');
  const door = await listenForDoor(rt.app, sock);
  t.teardown(() => new Promise((r) => { door.closeAllConnections(); door.close(r); }));
  const victim = '203.0.113.66';
  const body = 'login=x&password=y';
  const raw = `POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: ${victim}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  for (let i = 0; i < 4; i++) {
    await Promise.all(Array.from({ length: 50 }, () => new Promise<void>((res) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(raw, () => { s.resetAndDestroy(); res(); }));
      s.on('error', () => res());
    })));
  }
  await new Promise((r) => setTimeout(r, 300));
  const status = await new Promise<number>((res, rej) => {
    const req = http.request({ socketPath: sock, method: 'POST', path: '/login', headers: { host: '127.0.0.1', 'x-forwarded-for': victim, 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length } }, (r) => { r.resume(); res(r.statusCode ?? 0); });
    req.on('error', rej); req.end(body);
  });
  t.not(status, 429, `the victim's first sign-in through the door is not throttled (${status})`);
});
