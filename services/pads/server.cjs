// Collaborative pads: a Yjs WebSocket server (y-websocket's own connection handling, persisted with y-leveldb).
// /public/<name> is open to whoever has the link, as Framapad does; /private/<owner>/<name> opens only with the
// owner's account (HTTP Basic on the WebSocket upgrade). /_cattery/* answers the account adapter, from inside the
// container only.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const Y = require('yjs');
const { WebSocketServer } = require('ws');
const utils = require('y-websocket/bin/utils');
const { readUsers, checkPassword, validUsername } = require('./accounts-store.cjs');

const PAD = /^[A-Za-z0-9_-]{1,64}$/;
const EDITOR = fs.readFileSync(path.join(__dirname, 'public', 'editor.js'));
// Pad and account names in the page match the routes' patterns ([A-Za-z0-9._-]), so they need no escaping.
const PAGE = `<!doctype html>
<html lang="fr">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pad {{pad}}</title>
<style>body{font:18px/1.5 system-ui,sans-serif;margin:0 auto;max-width:48rem;padding:1rem;color:#111}
#editor{border:2px solid #444;min-height:60vh}#status{color:#333}</style></head>
<body><main><h1>Pad « {{pad}} »</h1>
<p>{{notice}}</p>
<p id="status" role="status">Connexion…</p>
<div id="editor" data-room="{{room}}" aria-label="Texte du pad"></div></main>
<script type="module" src="/editor.js"></script></body></html>`;
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
  const pad = /^\/p\/([A-Za-z0-9_-]{1,64})$/.exec(url.pathname);
  const own = /^\/private\/([a-z0-9._-]{2,32})\/([A-Za-z0-9_-]{1,64})$/.exec(url.pathname);
  if (pad || own) {
    // A private pad's page asks for the account (HTTP Basic); the browser then sends the same credentials on the
    // WebSocket to the same path.
    if (own && userFrom(req) !== own[1]) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="cattery pads", charset="UTF-8"', 'content-type': 'text/plain; charset=utf-8' })
        .end('Ce pad est privé : connectez-vous avec votre compte.\n');
      return;
    }
    const room = pad ? `public/${pad[1]}` : `private/${own[1]}/${own[2]}`;
    const notice = pad ? 'Toute personne qui a ce lien peut lire et écrire ce pad.' : 'Ce pad est privé : vous seul·e pouvez l’ouvrir.';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'" })
      .end(PAGE.replaceAll('{{pad}}', pad ? pad[1] : own[2]).replace('{{room}}', room).replace('{{notice}}', notice));
    return;
  }
  if (url.pathname === '/editor.js') {
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=3600' }).end(EDITOR);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('cattery pads: open /p/<pad> in a browser, or connect a Yjs client to /public/<pad> or /private/<account>/<pad>\n');
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
