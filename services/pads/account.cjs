// cattery's account adapter for the pads service: `node account.cjs <operation>`, one JSON object on stdin, one on
// stdout; export writes a tar stream (each private pad as Markdown and as its Yjs state). Pads' data lives in the
// server's LevelDB, which only the server may open, so usage, export and delete ask it over loopback: usage is read
// from the bytes the server counts for each pad (nothing loaded), the export is streamed by the server pad by pad
// and copied through to stdout. import is export's inverse: stdin is one line of JSON, then the archive, which is
// streamed to the server as it comes (import.cjs checks it whole, then replaces the account's pads at once).
'use strict';
const http = require('node:http');
const { withLock, storeOperation, serveOperation, validUsername } = require('./accounts-store.cjs');

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

/** The request line of an import (one line of JSON, at most 64 KiB) and the bytes read past it. */
function firstLine(stdin) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err, v) => { stdin.off('data', onData); stdin.off('end', onEnd); stdin.pause(); if (err) reject(err); else resolve(v); };
    const onData = (c) => {
      buf = Buffer.concat([buf, c]);
      const nl = buf.indexOf(10);
      if (nl >= 0) done(null, { line: buf.subarray(0, nl).toString('utf8'), rest: buf.subarray(nl + 1) });
      else if (buf.length > 64 * 1024) done(new Error('the request line is too long'));
    };
    const onEnd = () => done(new Error('no request line on stdin'));
    stdin.on('data', onData);
    stdin.on('end', onEnd);
  });
}

/** Import: the archive after the request line goes to the server as it is read; the server's answer decides. */
async function importFrom(stdin) {
  const { line, rest } = await firstLine(stdin);
  let req;
  try { req = JSON.parse(line); } catch { throw new Error('input is not JSON'); }
  if (!req || !validUsername(req.username)) throw new Error('invalid username');
  const quota = req.quotaMb === undefined ? 0 : req.quotaMb;
  if (!Number.isInteger(quota) || quota < 0) throw new Error('invalid quotaMb');
  return new Promise((resolve, reject) => {
    let answered = false;
    const post = http.request({ host: '127.0.0.1', port, method: 'POST', path: `${target('/import', req.username)}&quotaMb=${quota}`, headers: { 'content-type': 'application/x-tar' } }, (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { if (body.length < 64 * 1024) body += c; });
      res.on('end', () => {
        let answer = null;
        try { answer = JSON.parse(body); } catch { /* below */ }
        if (res.statusCode === 200 && answer && answer.ok === true) resolve();
        else reject(new Error((answer && answer.error) || `pads server: ${res.statusCode}`));
      });
    });
    // The server may answer (a refusal) before the archive is all sent: its answer wins over a broken pipe.
    post.on('error', (err) => { setTimeout(() => { if (!answered) reject(new Error(`pads server: ${err.message}`)); }, 200); });
    post.write(rest);
    stdin.pipe(post);
  });
}

if (process.argv[2] === 'import') {
  const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
  importFrom(process.stdin).then(
    () => { out({ ok: true }); process.exit(0); },
    (err) => { out({ ok: false, error: err.message }); process.exit(1); },
  );
} else serveOperation(async (op, req, out) => {
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
