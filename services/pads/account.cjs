// cattery's account adapter for the pads service: `node account.cjs <operation>`, one JSON object on stdin, one on
// stdout; export writes a tar stream (each private pad as Markdown and as its Yjs state). Pads' data lives in the
// server's LevelDB, which only the server may open, so usage, export and delete ask it over loopback.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { spawn } = require('node:child_process');
const { withLock, hashPassword, validUsername } = require('./users.cjs');

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const fail = (error) => { out({ ok: false, error }); process.exit(1); };
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

let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', async () => {
  let req;
  try { req = JSON.parse(input); } catch { fail('input is not JSON'); }
  const op = process.argv[2];
  const user = req.username;
  if (!validUsername(user)) fail('invalid username');
  const quota = (q) => { if (!Number.isInteger(q) || q < 1) fail('invalid quotaMb'); return q; };
  const password = (p) => { if (typeof p !== 'string' || p.length < 10) fail('invalid password'); return p; };
  const existing = (users) => { if (!users[user]) fail('no such account'); return users[user]; };
  try {
    switch (op) {
      case 'create':
        withLock((users) => { if (!users[user]) users[user] = { hash: hashPassword(password(req.password)), quotaMb: quota(req.quotaMb), suspended: false }; });
        return out({ ok: true });
      case 'setPassword':
        withLock((users) => { existing(users).hash = hashPassword(password(req.password)); });
        return out({ ok: true });
      case 'suspend': case 'resume':
        withLock((users) => { existing(users).suspended = op === 'suspend'; });
        return out({ ok: true });
      case 'setQuota':
        withLock((users) => { existing(users).quotaMb = quota(req.quotaMb); });
        return out({ ok: true });
      case 'usage': {
        const pads = await ask('GET', user);
        return out({ ok: true, bytes: pads.reduce((s, p) => s + p.bytes, 0), items: pads.length });
      }
      case 'export': {
        const pads = await ask('GET', user);
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'export-'));
        fs.mkdirSync(path.join(tmp, user));
        for (const p of pads) {
          fs.writeFileSync(path.join(tmp, user, `${p.name}.md`), p.markdown);
          fs.writeFileSync(path.join(tmp, user, `${p.name}.yjs`), Buffer.from(p.state, 'base64'));
        }
        const tar = spawn('tar', ['-C', tmp, '-cf', '-', '--', user], { stdio: ['ignore', 'inherit', 'inherit'] });
        return tar.on('close', (code) => { fs.rmSync(tmp, { recursive: true, force: true }); process.exit(code ?? 1); });
      }
      case 'delete':
        await ask('DELETE', user);
        withLock((users) => { delete users[user]; });
        return out({ ok: true });
      default:
        return fail('unknown operation');
    }
  } catch (err) {
    return fail(err.message);
  }
});
