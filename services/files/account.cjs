// cattery's account adapter for the files service: `node account.cjs <operation>`, one JSON object on stdin
// (secrets included), one JSON object on stdout; export writes a tar stream instead.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { ROOT, withLock, hashPassword, usageOf, validUsername } = require('./users.cjs');

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const fail = (error) => { out({ ok: false, error }); process.exit(1); };

let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  let req;
  try { req = JSON.parse(input); } catch { fail('input is not JSON'); }
  const op = process.argv[2];
  const user = req.username;
  if (!validUsername(user)) fail('invalid username');
  const dir = path.join(ROOT, user);
  const quota = (q) => { if (!Number.isInteger(q) || q < 1) fail('invalid quotaMb'); return q; };
  const password = (p) => { if (typeof p !== 'string' || p.length < 10) fail('invalid password'); return p; };
  const existing = (users) => { if (!users[user]) fail('no such account'); return users[user]; };
  switch (op) {
    case 'create':
      withLock((users) => { if (!users[user]) users[user] = { hash: hashPassword(password(req.password)), quotaMb: quota(req.quotaMb), suspended: false }; });
      fs.mkdirSync(dir, { recursive: true });
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
    case 'usage':
      return out({ ok: true, ...usageOf(dir) });
    case 'export': {
      fs.mkdirSync(dir, { recursive: true });
      const tar = spawn('tar', ['-C', ROOT, '-cf', '-', '--', user], { stdio: ['ignore', 'inherit', 'inherit'] });
      return tar.on('close', (code) => process.exit(code ?? 1));
    }
    case 'delete':
      withLock((users) => { delete users[user]; });
      fs.rmSync(dir, { recursive: true, force: true });
      return out({ ok: true });
    default:
      return fail('unknown operation');
  }
});
