// cattery's app served on the front door's unix socket (ingress/): the same routes, WebSocket upgrades included.
// Every connection here is the door's and gets the door's peer name, which trustProxy (app.ts) trusts for one hop,
// so the client address is the one Caddy wrote in X-Forwarded-For. Only the ingress user and root may connect.
import fs from 'node:fs';
import http from 'node:http';
import type { FastifyInstance } from 'fastify';
import { DOOR_PEER } from './proxy-trust.js';

export async function listenForDoor(app: FastifyInstance, socketPath: string, owner?: number): Promise<http.Server> {
  await app.ready();
  fs.rmSync(socketPath, { force: true });
  const server = http.createServer((req, res) => app.routing(req, res));
  server.on('connection', (socket) => Object.defineProperty(socket, 'remoteAddress', { value: DOOR_PEER, configurable: true }));
  server.on('upgrade', (req, socket, head) => app.server.emit('upgrade', req, socket, head));
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(socketPath, resolve); });
  fs.chmodSync(socketPath, 0o600);
  if (owner !== undefined && process.getuid?.() === 0) fs.chownSync(socketPath, owner, owner);
  return server;
}
