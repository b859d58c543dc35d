// Collaborative pads: a Yjs WebSocket server (y-websocket's own connection handling, persisted with y-leveldb).
// /public/<name> is open to whoever has the link, as Framapad does; /private/<owner>/<name> opens only with the
// owner's account (HTTP Basic on the WebSocket upgrade). /_cattery/* answers the account adapter, from inside the
// container only. No request may stop the process: every target, header and message is parsed without throwing, and
// each handler's failure ends that request only (see `guard`).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

// A restore leaves the live LevelDB out (it is in no backup): rebuilt from the dump before anything opens it
// (y-websocket's utils opens it when first required, below). A dump that is not whole stops the start: starting
// empty would hide the loss.
if (spawnSync(process.execPath, [path.join(__dirname, 'dump.cjs'), 'restore'], { stdio: 'inherit' }).status !== 0) process.exit(1);

const { WebSocketServer } = require('ws');
const utils = require('y-websocket/bin/utils');
const { parseBasic, verifyCredential, validUsername } = require('./accounts-store.cjs');
const limits = require('./limits.cjs');
const store = require('./store.cjs');
const wire = require('./wire.cjs');
const { tarHeader, TAR_END } = require('./tar.cjs');
const { importAccount, Refused } = require('./import.cjs');
const { writeDump } = require('./dump.cjs');
const { targetOf, log, guard, lastResort } = require('./http-safety.cjs');
const staticAsset = require('./static.cjs');

const PAD = /^[A-Za-z0-9_-]{1,64}$/;
// The bundle, compressed once; its versioned address (/editor.<hash>.js) may be kept for good by any cache, since a
// new bundle gets a new address, and the page (never stored) always names the current one.
const EDITOR = staticAsset.precompress(fs.readFileSync(path.join(__dirname, 'public', 'editor.js')));
const EDITOR_PATH = `/editor.${EDITOR.version}.js`;
const SCRIPT = { 'content-type': 'text/javascript; charset=utf-8' };
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
<div id="editor" data-room="{{room}}"></div></main>
<script type="module" src="{{editor}}"></script></body></html>`;
const port = Number(process.env.PORT || 1234);

/** The account these credentials open, or null; malformed credentials are no credentials. */
async function userFrom(req) {
  const c = parseBasic(req.headers.authorization);
  return c ? verifyCredential(c.name, c.password) : null;
}

/** The document a WebSocket path names, and whether this request may open it. */
async function route(url, req) {
  const parts = url.pathname.split('/').filter(Boolean);
  let doc;
  if (parts[0] === 'public' && parts.length === 2 && PAD.test(parts[1])) {
    doc = `public/${parts[1]}`;
    if (!limits.mayOpenPublic(doc)) return { status: 507 };
  } else if (parts[0] === 'private' && parts.length === 3 && validUsername(parts[1]) && PAD.test(parts[2])) {
    if ((await userFrom(req)) !== parts[1]) return { status: 401 };
    doc = `private/${parts[1]}/${parts[2]}`;
  } else return { status: 404 };
  // Past the connection caps, or near the memory limit for a pad not in memory yet: later (503).
  if (!wire.mayConnect(doc) || (!utils.docs.has(doc) && limits.memoryBusy())) return { status: 503 };
  return { doc };
}

/** An account's private pads as a tar stream (`<user>/<pad>.md` and `<user>/<pad>.yjs`), one pad in memory at a
 * time and written as the client reads: never the whole account in memory, nor on any disk. The trailer
 * `x-pads-complete: yes` tells the reader it got the whole of it. */
async function exportTar(user, res) {
  const prefix = `private/${user}/`;
  res.writeHead(200, { 'content-type': 'application/x-tar', trailer: 'x-pads-complete' });
  const write = (buf) => new Promise((resolve, reject) => {
    if (res.destroyed) { reject(new Error('export reader gone')); return; }
    if (res.write(buf)) { resolve(); return; }
    const done = () => { res.off('drain', done); res.off('close', done); res.destroyed ? reject(new Error('export reader gone')) : resolve(); };
    res.on('drain', done);
    res.on('close', done);
  });
  const entry = async (name, body) => {
    await write(tarHeader(name, body.length));
    await write(body);
    if (body.length % 512) await write(Buffer.alloc(512 - (body.length % 512)));
  };
  try {
    await write(tarHeader(`${user}/`, 0, '5'));
    for (const name of store.namesWith(prefix)) {
      const { markdown, state } = await store.snapshot(name);
      const pad = name.slice(prefix.length);
      await entry(`${user}/${pad}.md`, Buffer.from(markdown, 'utf8'));
      await entry(`${user}/${pad}.yjs`, Buffer.from(state.buffer, state.byteOffset, state.byteLength));
    }
    await write(TAR_END);
    res.addTrailers({ 'x-pads-complete': 'yes' });
    res.end();
  } catch (err) {
    log('error', 'export failed', err);
    res.destroy();
  }
}

const JSON_TYPE = { 'content-type': 'application/json' };
let dumping = Promise.resolve();

async function internal(req, res, url) {
  if (url.pathname === '/_cattery/pads/expire' && req.method === 'POST') {
    // The idle sweep on demand, optionally as of another date (`at`, ms since the epoch): maintenance from inside
    // the container, and how a test sees a 90-day expiry without waiting 90 days.
    const at = url.searchParams.get('at');
    const removed = await limits.expireIdle(at && /^[0-9]{1,15}$/.test(at) ? Number(at) : Date.now());
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ removed }));
    return;
  }
  if (url.pathname === '/_cattery/pads/public' && req.method === 'GET') {
    // With each public pad's stored bytes (store.cjs), and how far stored bytes may run past a limit (slack).
    const stored = Object.fromEntries([...limits.publicNames].map((n) => [n, store.storedOf(n)]));
    const slack = { public: limits.slackOf(limits.LIMITS.publicMaxBytes), private: limits.slackOf(limits.LIMITS.privateMaxBytes) };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ limits: limits.LIMITS, slack, names: [...limits.publicNames], stored }));
    return;
  }
  if (url.pathname === '/_cattery/pads/dump' && req.method === 'POST') {
    // One dump at a time; each from its own snapshot (store.rawSnapshot), streamed to the file (dump.cjs).
    const run = dumping.then(async () => writeDump(await store.rawSnapshot()));
    dumping = run.catch(() => undefined);
    try {
      const r = await run;
      res.writeHead(200, JSON_TYPE).end(JSON.stringify({ ok: true, ...r }));
    } catch (err) {
      log('error', 'dump failed', err);
      res.writeHead(500, JSON_TYPE).end(JSON.stringify({ ok: false, error: 'the dump failed (see the service log)' }));
    }
    return;
  }
  const user = url.searchParams.get('user');
  if (!validUsername(user)) { res.writeHead(400).end(); return; }
  if (url.pathname === '/_cattery/pads/import' && req.method === 'POST') {
    const q = url.searchParams.get('quotaMb');
    try {
      const r = await importAccount(user, q && /^[0-9]{1,9}$/.test(q) ? Number(q) : 0, req);
      res.writeHead(200, JSON_TYPE).end(JSON.stringify({ ok: true, ...r }));
    } catch (err) {
      if (!(err instanceof Refused)) log('error', 'import failed', err);
      const status = err instanceof Refused ? err.status : 500;
      const error = err instanceof Refused ? err.message : 'the import failed (see the service log)';
      // What the client still sends is read and dropped (bounded), so that it reads this answer, not a reset.
      res.writeHead(status, { ...JSON_TYPE, connection: 'close' }).end(JSON.stringify({ ok: false, error }));
      let left = 64 * 1024 * 1024;
      req.on('data', (c) => { left -= c.length; if (left < 0) req.destroy(); });
      req.resume();
    }
    return;
  }
  const prefix = `private/${user}/`;
  if (url.pathname === '/_cattery/pads/usage' && req.method === 'GET') {
    // From the stored bytes the store keeps for every pad: nothing is loaded.
    const names = store.namesWith(prefix);
    const bytes = names.reduce((sum, n) => sum + store.storedOf(n), 0);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes, items: names.length }));
  } else if (url.pathname === '/_cattery/pads/export' && req.method === 'GET') {
    await exportTar(user, res);
  } else if (url.pathname === '/_cattery/pads' && req.method === 'GET') {
    const pads = store.namesWith(prefix).map((n) => ({ name: n.slice(prefix.length), bytes: store.storedOf(n) }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(pads));
  } else if (url.pathname === '/_cattery/pads' && req.method === 'DELETE') {
    for (const n of store.namesWith(prefix)) await limits.removeDoc(n);
    res.writeHead(204).end();
  } else res.writeHead(url.pathname === '/_cattery/pads' ? 405 : 400).end();
}

const TEXT = { 'content-type': 'text/plain; charset=utf-8' };

async function handle(req, res) {
  const url = targetOf(req.url);
  if (!url) { res.writeHead(400, TEXT).end('Requête invalide.\n'); return; }
  const local = ['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(req.socket.remoteAddress);
  if (url.pathname.startsWith('/_cattery/') && local) { await internal(req, res, url); return; }
  const pad = /^\/p\/([A-Za-z0-9_-]{1,64})$/.exec(url.pathname);
  const own = /^\/private\/([a-z0-9._-]{2,32})\/([A-Za-z0-9_-]{1,64})$/.exec(url.pathname);
  if (pad || own) {
    // A private pad's page asks for the account (HTTP Basic); the browser then sends the same credentials on the
    // WebSocket to the same path.
    if (own && (await userFrom(req)) !== own[1]) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="cattery pads", charset="UTF-8"', ...TEXT })
        .end('Ce pad est privé : connectez-vous avec votre compte.\n');
      return;
    }
    if (pad && !limits.mayOpenPublic(`public/${pad[1]}`)) {
      res.writeHead(507, TEXT).end('Le nombre de pads publics est atteint : ouvrez un pad existant, ou demandez à l’association.\n');
      return;
    }
    const room = pad ? `public/${pad[1]}` : `private/${own[1]}/${own[2]}`;
    const notice = pad ? 'Toute personne qui a ce lien peut lire et écrire ce pad.' : 'Ce pad est privé : vous seul·e pouvez l’ouvrir.';
    // Compressed per request (it names the pad); it holds no secret, so compressing what it reflects reveals nothing.
    staticAsset.sendPage(req, res, PAGE.replaceAll('{{pad}}', pad ? pad[1] : own[2]).replace('{{room}}', room).replace('{{notice}}', notice).replace('{{editor}}', EDITOR_PATH), {
      'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'",
    });
    return;
  }
  if (url.pathname === EDITOR_PATH) {
    staticAsset.sendAsset(req, res, EDITOR, { ...SCRIPT, 'cache-control': 'public, max-age=31536000, immutable' });
    return;
  }
  if (url.pathname === '/editor.js') {
    // The unversioned address, for a page loaded before an upgrade: revalidated each time (a 304 when unchanged).
    staticAsset.sendAsset(req, res, EDITOR, { ...SCRIPT, 'cache-control': 'no-cache' });
    return;
  }
  res.writeHead(200, TEXT).end('cattery pads: open /p/<pad> in a browser, or connect a Yjs client to /public/<pad> or /private/<account>/<pad>\n');
}

// A Yjs message carries at most one pad's worth of update; a bigger frame is refused by ws before it is read (and
// the connection closed, 1009). ws buffers a frame whole before it is handed on, so anonymous connections get the
// public pads' bound and only signed-in ones the private pads' larger one.
const frameLimit = (padBytes) => Math.max(padBytes, 64 * 1024) + 64 * 1024;
const wssPublic = new WebSocketServer({ noServer: true, maxPayload: frameLimit(limits.LIMITS.publicMaxBytes) });
const wssPrivate = new WebSocketServer({ noServer: true, maxPayload: frameLimit(limits.LIMITS.privateMaxBytes) });
const REASON = { 401: 'Unauthorized', 404: 'Not Found', 503: 'Service Unavailable', 507: 'Insufficient Storage' };

async function upgrade(req, socket, head) {
  const url = targetOf(req.url);
  const r = url ? await route(url, req) : { status: 400 };
  if (socket.destroyed) return;
  if (!r.doc) {
    const auth = r.status === 401 ? 'WWW-Authenticate: Basic realm="cattery pads"\r\n' : '';
    socket.end(`HTTP/1.1 ${r.status} ${REASON[r.status] ?? 'Bad Request'}\r\n${auth}Content-Length: 0\r\nConnection: close\r\n\r\n`);
    return;
  }
  (r.doc.startsWith('public/') ? wssPublic : wssPrivate).handleUpgrade(req, socket, head, (ws) => {
    limits.opened(r.doc);
    // Every message is metered (wire.cjs), then handed to y-websocket once the pad is loaded.
    wire.connect(ws, req, r.doc);
  });
}

const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 15_000, maxHeaderSize: 16 * 1024 }, (req, res) => guard(handle(req, res), res));
server.on('upgrade', (req, socket, head) => {
  // An upgraded socket has lost the HTTP server's own error listener: a reset must not become an uncaught error.
  socket.on('error', () => socket.destroy());
  upgrade(req, socket, head).catch((err) => { log('error', 'upgrade failed', err); socket.destroy(); });
});

lastResort(server);

const SWEEP_MS = 3_600_000;
store.init()
  .then(() => limits.loadPublic())
  .then(() => limits.expireIdle())
  .then(() => {
    setInterval(() => { limits.expireIdle().catch((err) => log('error', 'idle sweep failed', err)); }, SWEEP_MS).unref();
    server.listen(port, '0.0.0.0', () => log('info', `Yjs on port ${port}`, null, { limits: limits.LIMITS }));
  })
  .catch((err) => { log('error', 'cannot load the public pads', err); process.exit(1); });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
