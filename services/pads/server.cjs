// Collaborative pads: a Yjs WebSocket server (y-websocket's own connection handling, persisted with y-leveldb).
// /public/<name> is open to whoever has the link, as Framapad does; /private/<owner>/<name> opens only with the
// owner's account (HTTP Basic on the WebSocket upgrade). /_cattery/* answers the account adapter, from inside the
// container only.
'use strict';
const http = require('node:http');
const Y = require('yjs');
const { WebSocketServer } = require('ws');
const utils = require('y-websocket/bin/utils');
const { readUsers, checkPassword, validUsername } = require('./accounts-store.cjs');

const PAD = /^[A-Za-z0-9_-]{1,64}$/;
const port = Number(process.env.PORT || 1234);
const ldb = () => utils.getPersistence().provider;

function userFrom(req) {
  const h = req.headers.authorization || '';
  if (!h.startsWith('Basic ')) return null;
  const [name, ...rest] = Buffer.from(h.slice(6), 'base64').toString().split(':');
  const u = validUsername(name) ? readUsers()[name] : undefined;
  return u && !u.suspended && checkPassword(u.hash, rest.join(':')) ? name : null;
}

/** The document a URL names, and whether this request may open it. */
function route(req) {
  const parts = new URL(req.url, 'http://x').pathname.split('/').filter(Boolean);
  if (parts[0] === 'public' && parts.length === 2 && PAD.test(parts[1])) return { doc: `public/${parts[1]}` };
  if (parts[0] === 'private' && parts.length === 3 && validUsername(parts[1]) && PAD.test(parts[2])) {
    return userFrom(req) === parts[1] ? { doc: `private/${parts[1]}/${parts[2]}` } : { status: 401 };
  }
  return { status: 404 };
}

async function docsOf(user) {
  const prefix = `private/${user}/`;
  const names = (await ldb().getAllDocNames()).filter((n) => n.startsWith(prefix));
  return Promise.all(names.map(async (n) => {
    const doc = utils.docs.get(n) || await ldb().getYDoc(n);
    const state = Y.encodeStateAsUpdate(doc);
    return { name: n.slice(prefix.length), markdown: doc.getText('content').toString(), state: Buffer.from(state).toString('base64'), bytes: state.length };
  }));
}

async function internal(req, res, url) {
  const user = url.searchParams.get('user');
  if (!validUsername(user)) { res.writeHead(400).end(); return; }
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(await docsOf(user)));
  } else if (req.method === 'DELETE') {
    for (const d of await docsOf(user)) {
      const name = `private/${user}/${d.name}`;
      const open = utils.docs.get(name);
      if (open) { for (const conn of open.conns.keys()) conn.close(); utils.docs.delete(name); }
      await ldb().clearDocument(name);
    }
    res.writeHead(204).end();
  } else res.writeHead(405).end();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const local = ['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(req.socket.remoteAddress);
  if (url.pathname === '/_cattery/pads' && local) {
    internal(req, res, url).catch((err) => { res.writeHead(500).end(String(err && err.message)); });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('cattery pads: connect a Yjs client to /public/<pad> or /private/<account>/<pad>\n');
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
server.on('upgrade', (req, socket, head) => {
  const r = route(req);
  if (!r.doc) {
    socket.write(`HTTP/1.1 ${r.status} ${r.status === 401 ? 'Unauthorized' : 'Not Found'}\r\nWWW-Authenticate: Basic realm="cattery pads"\r\nConnection: close\r\n\r\n`);
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => utils.setupWSConnection(ws, req, { docName: r.doc }));
});

server.listen(port, '0.0.0.0', () => process.stdout.write(`pads: Yjs on port ${port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
