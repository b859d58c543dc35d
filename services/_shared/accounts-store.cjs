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

// The store maps usernames to entries, and usernames are chosen by residents: it is kept as an object without a
// prototype, so that no name (`constructor`, `__proto__`, `toString`…) finds anything but an entry of its own, and
// every lookup goes through Object.hasOwn as well. JSON.parse defines "__proto__" as an own key; copying key by key
// with defineProperty keeps it one.
function asStore(parsed) {
  const out = Object.create(null);
  if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
    for (const k of Object.keys(parsed)) {
      const v = parsed[k];
      if (v && typeof v === 'object' && !Array.isArray(v)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

/** The entry of `name` in a store (own keys only), or undefined. */
function entryOf(users, name) {
  return typeof name === 'string' && users && Object.hasOwn(users, name) ? users[name] : undefined;
}

// The file is replaced by rename on every change (withLock), so its inode changes even when two writes land in the
// same mtime tick: inode, mtime and size together name one version of it.
let cache = { version: '', users: Object.create(null) };
function readUsers() {
  let st;
  try { st = fs.statSync(USERS); } catch { cache = { version: '', users: Object.create(null) }; return cache.users; }
  const version = `${st.ino}:${st.mtimeMs}:${st.size}`;
  if (version !== cache.version) cache = { version, users: asStore(JSON.parse(fs.readFileSync(USERS, 'utf8'))) };
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
    const users = asStore(fs.existsSync(USERS) ? JSON.parse(fs.readFileSync(USERS, 'utf8')) : {});
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

/** checkPassword on libuv's thread pool: a server must not stop its event loop for ~50 ms of scrypt per request. */
function checkPasswordAsync(stored, password) {
  const [kind, salt, hex] = String(stored).split('$');
  if (kind !== 'scrypt' || !salt || !hex) return Promise.resolve(false);
  const want = Buffer.from(hex, 'hex');
  if (want.length === 0) return Promise.resolve(false);
  return new Promise((resolve) => {
    crypto.scrypt(String(password), Buffer.from(salt, 'hex'), want.length, (err, got) => {
      resolve(!err && got.length === want.length && crypto.timingSafeEqual(want, got));
    });
  });
}

// RFC 7617 Basic credentials: the scheme is case-insensitive, the token strict base64 (RFC 4648 alphabet, padding
// only at the end), and the user-id ends at the FIRST colon (the password may hold colons). Anything else is no
// credential at all (never a thrown error).
const BASIC = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i;
function parseBasic(header) {
  if (typeof header !== 'string' || header.length > 4096) return null;
  const m = BASIC.exec(header);
  if (!m || m[1].length % 4 === 1) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 1) return null;
  return { name: text.slice(0, colon), password: text.slice(colon + 1) };
}

// A verified credential is remembered for VERIFIED_TTL_MS, keyed by a hash of name and password (the password
// itself is never kept), and forgotten as soon as the users file changes (a new password, a suspension or a
// deletion takes effect on the next request). Only successes are kept, so strangers cannot fill it; it is bounded
// anyway. A wrong password always costs a full scrypt.
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 1000;
const CACHE_KEY = crypto.randomBytes(32);
let verified = { version: null, entries: new Map() };
const inFlight = new Map();

/** The account name when `name`/`password` is a live (present, not suspended) account's credential, else null. */
async function verifyCredential(name, password) {
  if (!validUsername(name) || typeof password !== 'string' || password.length > 1024) return null;
  const users = readUsers();
  if (verified.version !== cache.version) verified = { version: cache.version, entries: new Map() };
  const key = crypto.createHmac('sha256', CACHE_KEY).update(name).update('\0').update(password).digest('hex');
  const hit = verified.entries.get(key);
  const u = entryOf(users, name);
  if (hit && hit > Date.now()) return u && !u.suspended ? name : null;
  if (!u || u.suspended) return null;
  // Parallel requests with the same credential (a client opening a folder) share one scrypt.
  let pending = inFlight.get(key);
  if (!pending) {
    pending = checkPasswordAsync(u.hash, password).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  const version = cache.version;
  if (!(await pending)) return null;
  // The file may have changed while scrypt ran: keep the result only for the version it was checked against.
  if (version === verified.version) {
    if (verified.entries.size >= VERIFIED_MAX) verified.entries.delete(verified.entries.keys().next().value);
    verified.entries.set(key, Date.now() + VERIFIED_TTL_MS);
  }
  const now = entryOf(readUsers(), name);
  return now && !now.suspended && now.hash === u.hash ? name : null;
}

// What a space costs: the bytes its entries take on disk (st_blocks × 512, so block rounding and directories
// count), plus ENTRY_CHARGE per entry below the space's folder (file, folder or anything else), which prices the
// inode and directory slot an empty file or folder takes. `items` counts regular files (what cattery shows),
// `entries` everything below the folder. The folder's own blocks count, not its charge.
const ENTRY_CHARGE = 4096;

function usageOf(dir) {
  let bytes = 0; let items = 0; let entries = 0;
  try { bytes += fs.lstatSync(dir).blocks * 512; } catch { return { bytes, items, entries }; }
  const walk = (d) => {
    let list;
    try { list = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of list) {
      const p = path.join(d, e.name);
      let st;
      try { st = fs.lstatSync(p); } catch { continue; }
      bytes += st.blocks * 512 + ENTRY_CHARGE; entries += 1;
      if (st.isFile()) items += 1;
      else if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return { bytes, items, entries };
}

/** usageOf without blocking the event loop: lstat runs on libuv's thread pool, a few dozen at a time, and the
 * walk yields between them. For servers; the adapters (short-lived processes) use usageOf. */
async function usageOfAsync(dir) {
  const fsp = fs.promises;
  let bytes = 0; let items = 0; let entries = 0;
  try { bytes += (await fsp.lstat(dir)).blocks * 512; } catch { return { bytes, items, entries }; }
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop();
    let names;
    try { names = await fsp.readdir(d); } catch { continue; }
    for (let i = 0; i < names.length; i += 32) {
      const batch = names.slice(i, i + 32).map((n) => path.join(d, n));
      const stats = await Promise.all(batch.map((p) => fsp.lstat(p).catch(() => null)));
      stats.forEach((st, k) => {
        if (!st) return;
        bytes += st.blocks * 512 + ENTRY_CHARGE; entries += 1;
        if (st.isFile()) items += 1;
        else if (st.isDirectory()) stack.push(batch[k]);
      });
    }
  }
  return { bytes, items, entries };
}

/** The operations that only touch the store; returns false for the others. Bad input throws (never exits inside
 * the lock, which `finally` must release). */
function storeOperation(op, req, out) {
  const user = req.username;
  const quota = (q) => { if (!Number.isInteger(q) || q < 1) throw new Error('invalid quotaMb'); return q; };
  const password = (p) => { if (typeof p !== 'string' || p.length < 10) throw new Error('invalid password'); return p; };
  const existing = (users) => { const e = entryOf(users, user); if (!e) throw new Error('no such account'); return e; };
  switch (op) {
    case 'create': {
      // `id` names this account among the accounts that ever had its name: state a server keeps per account in
      // memory (files' dead properties and locks) is dropped when a deleted name is created again.
      const entry = { hash: hashPassword(password(req.password)), quotaMb: quota(req.quotaMb), suspended: false, id: crypto.randomBytes(8).toString('hex') };
      withLock((users) => { if (!entryOf(users, user)) users[user] = entry; });
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

module.exports = { ROOT, STATE, readUsers, entryOf, withLock, hashPassword, checkPassword, checkPasswordAsync, parseBasic, verifyCredential, VERIFIED_TTL_MS, ENTRY_CHARGE, usageOf, usageOfAsync, validUsername, storeOperation, serveOperation };
