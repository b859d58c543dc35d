// The account store shared by the Node-based services (files, pads): <root>/.cattery/users.json, written atomically
// under a lock. Passwords are kept as scrypt hashes (node:crypto), never in clear. `cattery images build` copies this
// file into the build context of each service whose manifest lists it in image.local.shared.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = process.env.ACCOUNTS_ROOT || '/srv/files';
const STATE = path.join(ROOT, '.cattery');
const USERS = path.join(STATE, 'users.json');
const USERNAME = /^[a-z][a-z0-9._-]{0,30}[a-z0-9]$/;

function validUsername(u) {
  return typeof u === 'string' && USERNAME.test(u) && !u.includes('..');
}

let cache = { mtimeMs: -1, users: {} };
function readUsers() {
  let st;
  try { st = fs.statSync(USERS); } catch { return {}; }
  if (st.mtimeMs !== cache.mtimeMs) cache = { mtimeMs: st.mtimeMs, users: JSON.parse(fs.readFileSync(USERS, 'utf8')) };
  return cache.users;
}

function withLock(fn) {
  fs.mkdirSync(STATE, { recursive: true });
  const lock = path.join(STATE, 'lock');
  const deadline = Date.now() + 10000;
  for (;;) {
    try { fs.mkdirSync(lock); break; } catch (err) {
      if (err.code !== 'EEXIST' || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    const users = fs.existsSync(USERS) ? JSON.parse(fs.readFileSync(USERS, 'utf8')) : {};
    const out = fn(users);
    const tmp = `${USERS}.${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(users, null, 1), { mode: 0o600 });
    fs.renameSync(tmp, USERS);
    return out;
  } finally {
    fs.rmdirSync(lock);
  }
}

function hashPassword(password) {
  const salt = crypto.randomBytes(16);
  return `scrypt$${salt.toString('hex')}$${crypto.scryptSync(password, salt, 32).toString('hex')}`;
}

function checkPassword(stored, password) {
  const [kind, salt, hex] = String(stored).split('$');
  if (kind !== 'scrypt' || !salt || !hex) return false;
  const want = Buffer.from(hex, 'hex');
  const got = crypto.scryptSync(password, Buffer.from(salt, 'hex'), want.length);
  return crypto.timingSafeEqual(want, got);
}

function usageOf(dir) {
  let bytes = 0; let items = 0;
  const walk = (d) => {
    let entries;
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) { bytes += fs.statSync(p).size; items += 1; }
    }
  };
  walk(dir);
  return { bytes, items };
}

/** The operations that only touch the store; returns false for the others. Bad input throws (never exits inside
 * the lock, which `finally` must release). */
function storeOperation(op, req, out) {
  const user = req.username;
  const quota = (q) => { if (!Number.isInteger(q) || q < 1) throw new Error('invalid quotaMb'); return q; };
  const password = (p) => { if (typeof p !== 'string' || p.length < 10) throw new Error('invalid password'); return p; };
  const existing = (users) => { if (!users[user]) throw new Error('no such account'); return users[user]; };
  switch (op) {
    case 'create': {
      const entry = { hash: hashPassword(password(req.password)), quotaMb: quota(req.quotaMb), suspended: false };
      withLock((users) => { if (!users[user]) users[user] = entry; });
      break;
    }
    case 'setPassword': {
      const hash = hashPassword(password(req.password));
      withLock((users) => { existing(users).hash = hash; });
      break;
    }
    case 'suspend': case 'resume':
      withLock((users) => { existing(users).suspended = op === 'suspend'; });
      break;
    case 'setQuota': {
      const q = quota(req.quotaMb);
      withLock((users) => { existing(users).quotaMb = q; });
      break;
    }
    default:
      return false;
  }
  out({ ok: true });
  return true;
}

/** Read one JSON request from stdin and hand it to `handle(op, req, out)` after checking the username; whatever it
 * throws becomes `{ ok: false, error }` and exit 1. */
function serveOperation(handle) {
  const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const fail = (error) => { out({ ok: false, error }); process.exit(1); };
  let input = '';
  process.stdin.on('data', (c) => { input += c; });
  process.stdin.on('end', async () => {
    let req;
    try { req = JSON.parse(input); } catch { fail('input is not JSON'); }
    const op = process.argv[2];
    if (!validUsername(req.username)) fail('invalid username');
    try {
      if (!(await handle(op, req, out))) fail('unknown operation');
    } catch (err) {
      fail(err.message);
    }
  });
}

module.exports = { ROOT, STATE, readUsers, withLock, hashPassword, checkPassword, usageOf, validUsername, storeOperation, serveOperation };
