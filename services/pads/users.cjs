// The account store of the pads service: /var/lib/pads/.cattery/users.json (same format as the files service's), written atomically under a lock.
// Passwords are kept as scrypt hashes (node:crypto), never in clear.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = process.env.PADS_ROOT || '/var/lib/pads';
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

module.exports = { ROOT, STATE, readUsers, withLock, hashPassword, checkPassword, usageOf, validUsername };
