// cattery's account adapter for the pads service: `node account.cjs <operation>`, one JSON object on stdin, one on
// stdout; export writes a tar stream (each private pad as Markdown and as its Yjs state). Pads' data lives in the
// server's LevelDB, which only the server may open, so usage, export and delete ask it over loopback.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { spawn } = require('node:child_process');
const { withLock, storeOperation, serveOperation } = require('./accounts-store.cjs');

const port = Number(process.env.PORT || 1234);

function ask(method, user) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: `/_cattery/pads?user=${encodeURIComponent(user)}` }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => (res.statusCode < 300 ? resolve(body ? JSON.parse(body) : null) : reject(new Error(`pads server: ${res.statusCode}`))));
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
      const pads = await ask('GET', user);
      out({ ok: true, bytes: pads.reduce((s, p) => s + p.bytes, 0), items: pads.length });
      return true;
    }
    case 'export': {
      const pads = await ask('GET', user);
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'export-'));
      fs.mkdirSync(path.join(tmp, user));
      for (const p of pads) {
        fs.writeFileSync(path.join(tmp, user, `${p.name}.md`), p.markdown);
        fs.writeFileSync(path.join(tmp, user, `${p.name}.yjs`), Buffer.from(p.state, 'base64'));
      }
      spawn('tar', ['-C', tmp, '-cf', '-', '--', user], { stdio: ['ignore', 'inherit', 'inherit'] })
        .on('close', (code) => { fs.rmSync(tmp, { recursive: true, force: true }); process.exit(code ?? 1); });
      return true;
    }
    case 'delete':
      await ask('DELETE', user);
      withLock((users) => { delete users[user]; });
      out({ ok: true });
      return true;
    default:
      return false;
  }
});
