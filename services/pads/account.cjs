// cattery's account adapter for the pads service: `node account.cjs <operation>`, one JSON object on stdin, one on
// stdout; export writes a tar stream (each private pad as Markdown and as its Yjs state). Pads' data lives in the
// server's LevelDB, which only the server may open, so usage, export and delete ask it over loopback: usage is read
// from the bytes the server counts for each pad (nothing loaded), the export is streamed by the server pad by pad
// and copied through to stdout.
'use strict';
const http = require('node:http');
const { withLock, storeOperation, serveOperation } = require('./accounts-store.cjs');

const port = Number(process.env.PORT || 1234);
const target = (what, user) => `/_cattery/pads${what}?user=${encodeURIComponent(user)}`;

/** A small JSON answer of the server (usage, delete). */
function ask(method, what, user) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target(what, user) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; if (body.length > 1024 * 1024) req.destroy(new Error('pads server: answer too long')); });
      res.on('end', () => (res.statusCode < 300 ? resolve(body ? JSON.parse(body) : null) : reject(new Error(`pads server: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The server's tar stream, copied to stdout as it comes (never held, never written to a disk); the exit code is 0
 * only when the server said, in its trailer, that the whole archive was sent. */
function exportTo(user, out) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'GET', path: target('/export', user) }, (res) => {
      if (res.statusCode !== 200) { res.resume(); reject(new Error(`pads server: ${res.statusCode}`)); return; }
      let ended = false;
      res.pipe(out, { end: false });
      res.on('end', () => { ended = true; });
      res.on('close', () => {
        if (ended && res.trailers['x-pads-complete'] === 'yes') out.write('', () => resolve());
        else reject(new Error('pads server: the export was cut'));
      });
      res.on('error', () => undefined);
    });
    req.on('error', reject);
    req.end();
  });
}

serveOperation(async (op, req, out) => {
  const user = req.username;
  if (storeOperation(op, req, out)) return true;
  switch (op) {
    case 'usage': {
      const u = await ask('GET', '/usage', user);
      out({ ok: true, bytes: u.bytes, items: u.items });
      return true;
    }
    case 'export':
      await exportTo(user, process.stdout);
      return true;
    case 'delete':
      await ask('DELETE', '', user);
      withLock((users) => { delete users[user]; });
      out({ ok: true });
      return true;
    default:
      return false;
  }
});
