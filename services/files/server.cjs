// WebDAV for residents: one space per account at /<username>/, HTTP Basic authentication against the account store,
// a per-account quota enforced on every write (PUT with or without Content-Length, COPY, MOVE). Built on
// webdav-server (v2) because Apache's and nginx's WebDAV modules have no per-user quota. webdav-server decodes
// targets and headers with functions that throw inside its callbacks, so every request is checked here first
// (checkRequest) and only well-formed ones reach it.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Writable } = require('node:stream');
const webdav = require('webdav-server').v2;
const { parseIfHeader } = require('webdav-server/lib/helper/v2/IfParser');
const { ROOT, ENTRY_CHARGE, readUsers, entryOf, parseBasic, verifyCredential, usageOfAsync, validUsername } = require('./accounts-store.cjs');
const { targetOf, decodedSegments, log, lastResort } = require('./http-safety.cjs');

const ANONYMOUS = { uid: '', username: '', isDefaultUser: true };
// webdav-server reads the body of every method but PUT into one buffer of Content-Length bytes and parses it whole,
// synchronously: 64 KB of dense XML took 8 MB of heap and 180 ms of the event loop, 1 MB (the former bound) 130 MB
// and 3 s. Real clients' PROPFIND, PROPPATCH and LOCK bodies are a few hundred bytes to 2 KB. The bodies in flight,
// all residents together, are bounded too (past it: 503 and Retry-After).
const MAX_XML_BODY = 8 * 1024;
const XML_IN_FLIGHT_MAX = 128 * 1024;
let xmlInFlight = 0;
// What is read and dropped of a refused upload's body, at most, so that the client reads the refusal.
const DRAIN_MAX = 64 * 1024 * 1024;
const DRAIN_MS = 10_000;

/** webdav-server's own Basic parser splits at every colon and refuses base64 with + or /; this one follows RFC 7617
 * and verifies off the event loop (accounts-store's cache). */
const authentication = {
  askForAuthentication() { return { 'WWW-Authenticate': 'Basic realm="cattery files", charset="UTF-8"' }; },
  getUser(ctx, cb) {
    const c = parseBasic(ctx.headers.find('Authorization'));
    if (!c) return cb(webdav.Errors.MissingAuthorisationHeader, ANONYMOUS);
    verifyCredential(c.name, c.password).then(
      (name) => (name ? cb(null, { uid: name, username: name }) : cb(webdav.Errors.BadAuthentication, ANONYMOUS)),
      () => cb(webdav.Errors.BadAuthentication, ANONYMOUS));
  },
};

/** The first segment of a decoded path names whose space it is; a resident reaches only their own. */
const owner = (p) => String(p).split('/').filter(Boolean)[0] || '';

class OwnSpacePrivileges extends webdav.PrivilegeManager {
  _can(fullPath, user, _resource, _privilege, cb) {
    cb(null, Boolean(user && !user.isDefaultUser && validUsername(user.username) && owner(fullPath.toString()) === user.username));
  }
}

const MB = 1024 * 1024;
const BLOCK = 4096;
const envInt = (name, fallback) => { const v = Number(process.env[name]); return Number.isInteger(v) && v > 0 ? v : fallback; };
// Entries (files and folders) per space: each costs ENTRY_CHARGE of quota already; this also bounds what a walk of
// one space costs and how many of the volume's inodes one resident can take.
const MAX_ENTRIES = envInt('FILES_MAX_ENTRIES', 20_000);

const accountOf = (user) => (validUsername(user) ? entryOf(readUsers(), user) : undefined);
const quotaOf = (user) => { const a = accountOf(user); return a && Number.isInteger(a.quotaMb) && a.quotaMb > 0 ? a.quotaMb * MB : null; };
/** Which account of that name this is, and which tree of it: a deleted name created again is another account
 * (accounts-store `id`), and a space replaced whole by an import is another tree (`dataGen`, set by import.cjs):
 * usage, dead properties and locks kept about the one before are dropped. */
const generationOf = (user) => { const a = accountOf(user); return a ? `${a.id || 'before-ids'}/${a.dataGen || ''}` : null; };
const allocated = (n) => Math.ceil(Math.max(0, n) / BLOCK) * BLOCK;

// ---- Usage per space, never walked on the request path -------------------------------------------------------
// Each space's usage is `base`, the result of the last asynchronous walk (usageOfAsync: blocks × 512 + a charge per
// entry), plus the reservations of the writes that walk may not have seen: a write reserves what it adds (a file's
// bytes as they arrive, rounded up to blocks; an entry and its charge; a copied tree), and its reservation is
// dropped only when a walk that started after the write had finished has completed. Every finished write asks for
// a walk; one space has at most one walk running and one more queued. Admission compares base + reservations with
// the quota synchronously, so parallel writes see each other.
let doneSeq = 0;
const spaces = new Map();

function spaceOf(user) {
  const gen = generationOf(user);
  let s = spaces.get(user);
  if (!s || s.gen !== gen) {
    s = { user, gen, base: null, active: new Set(), done: [], doneBytes: 0, doneEntries: 0, epoch: 0, walking: null, again: false };
    spaces.set(user, s);
    s.ready = walk(s);
  }
  return s;
}

function walk(s) {
  if (s.walking) { s.again = true; return s.walking; }
  const startSeq = doneSeq;
  s.epoch += 1;
  s.walking = usageOfAsync(path.join(ROOT, s.user)).then((m) => {
    s.base = m;
    while (s.done.length > 0 && s.done[0].seq <= startSeq) {
      const r = s.done.shift();
      s.doneBytes -= r.bytes; s.doneEntries -= r.entries;
    }
  }, (err) => log('error', 'usage walk failed', err)).finally(() => {
    s.walking = null;
    if (s.again) { s.again = false; setImmediate(() => walk(s)); }
  });
  return s.walking;
}

/** What the space holds, to the best knowledge right now (errs on the large side). */
function estimate(s) {
  let bytes = (s.base ? s.base.bytes : 0) + s.doneBytes;
  let entries = (s.base ? s.base.entries : 0) + s.doneEntries;
  for (const r of s.active) { bytes += r.bytes(); entries += r.entries; }
  return { bytes, entries };
}

/** A reservation of `entries` entries and `bytes()` bytes, counted until a walk after its end has completed. */
function reserve(s, entries, bytes) {
  const r = { entries, bytes, ended: false, space: s };
  s.active.add(r);
  r.end = () => {
    if (r.ended) return;
    r.ended = true;
    s.active.delete(r);
    const b = r.bytes();
    doneSeq += 1;
    s.done.push({ seq: doneSeq, bytes: b, entries: r.entries });
    s.doneBytes += b; s.doneEntries += r.entries;
    walk(s);
  };
  return r;
}

/** Admits `entries` more entries and `bytes()` more bytes into the user's space when they fit (quota, entry cap),
 * reserving them at once (check and reservation in one synchronous step, so that parallel writes see each other):
 * the reservation, or 'full', or null when the user has no account. */
async function admit(user, entries, bytes) {
  if (quotaOf(user) === null) return null;
  const s = spaceOf(user);
  await s.ready;
  const quota = quotaOf(user);
  if (quota === null) return null;
  // A walk under way may free what a DELETE just gave back: when the space looks full, wait for it (twice at most).
  for (let i = 0; ; i++) {
    const now = estimate(s);
    if (now.bytes + bytes() <= quota && now.entries + entries <= MAX_ENTRIES) return reserve(s, entries, bytes);
    if (i >= 2 || !s.walking) return 'full';
    await s.walking;
  }
}

/** Whether `entries` and `bytes` more would fit now (an early refusal; the writes themselves are admitted above). */
async function wouldFit(user, entries, bytes) {
  const quota = quotaOf(user);
  if (quota === null) return true; // authentication and privileges answer these
  const s = spaceOf(user);
  await s.ready;
  for (let i = 0; ; i++) {
    const now = estimate(s);
    if (now.bytes + bytes <= quota && now.entries + entries <= MAX_ENTRIES) return true;
    if (i >= 2 || !s.walking) return false;
    await s.walking;
  }
}

// ---- Dead properties and locks: in memory, bounded --------------------------------------------------------------
// webdav-server's PhysicalFileSystem keeps a `resources` object with a property manager and a lock manager for every
// path it ever looked at (even paths that do not exist), and properties of any size: memory one resident could fill.
// Here both live in maps that hold only resources that have a property or a live lock, within these bounds, and are
// forgotten with the resource (DELETE, MOVE) or the account (deleted and created again).
// Sizes are of the JSON text kept (UTF-16: 2 bytes a character) plus the name and 64 bytes of overhead.
const PROP_RESOURCE_MAX = 8 * 1024; // bytes of dead properties on one resource (about 4 KB of XML text)
const PROP_RESOURCE_COUNT = 32; // dead properties on one resource
const PROP_ACCOUNT_MAX = 256 * 1024; // bytes of dead properties of one account
const PROP_TOTAL_MAX = 16 * MB; // bytes of dead properties of all accounts
const LOCKS_PER_ACCOUNT = 64;
const LOCKS_TOTAL = 2048;
const LOCK_OWNER_MAX = 1024; // the LOCK request's <owner> element, kept with the lock
const LOCK_TIMEOUT_S = 600; // every lock, whatever Timeout the client asked (webdav-server's option)

// Both indexed by account first, so that what a DELETE or MOVE forgets is looked for among that account's only.
const propsOf = new Map(); // user → Map(path → Map(name → { json, size })): JSON text, whose size is what it takes
const locksOf = new Map(); // user → Map(path → [Lock])
const propBytes = new Map(); // user → bytes
let propTotal = 0;
const propGen = new Map(); // user → generation the user's properties and locks belong to

/** Forget the account's properties and locks when its name now belongs to another account (or none). */
function checkGeneration(user) {
  const gen = generationOf(user);
  if (propGen.get(user) === gen || (gen === null && !propGen.has(user))) return;
  if (gen === null) propGen.delete(user); else propGen.set(user, gen);
  forget(`/${user}`);
}

function dropProps(user, key) {
  const byPath = propsOf.get(user);
  const props = byPath && byPath.get(key);
  if (!props) return;
  let size = 0;
  for (const p of props.values()) size += p.size;
  byPath.delete(key);
  if (byPath.size === 0) propsOf.delete(user);
  const left = (propBytes.get(user) || 0) - size;
  if (left > 0) propBytes.set(user, left); else propBytes.delete(user);
  propTotal -= size;
}

const under = (key, base) => key === base || key.startsWith(`${base}/`);
/** A resource and everything below it is gone (or moved): its properties and locks go too. */
function forget(base) {
  const user = owner(base);
  const props = propsOf.get(user);
  if (props) for (const key of [...props.keys()]) if (under(key, base)) dropProps(user, key);
  const locks = locksOf.get(user);
  if (locks) {
    for (const key of [...locks.keys()]) if (under(key, base)) locks.delete(key);
    if (locks.size === 0) locksOf.delete(user);
  }
}

/** After a MOVE: dead properties follow the resource (RFC 4918 9.9.1), locks do not (7.7); whatever the destination
 * had is gone with it. Within one account (privileges allow no other MOVE). */
function moveProps(from, to) {
  forget(to);
  const user = owner(from);
  const byPath = propsOf.get(user);
  if (byPath && owner(to) === user) {
    for (const key of [...byPath.keys()]) {
      if (!under(key, from)) continue;
      const props = byPath.get(key);
      byPath.delete(key);
      byPath.set(to + key.slice(from.length), props);
    }
  }
  forget(from);
}

class BoundedPropertyManager {
  constructor(key) { this.key = key; this.user = owner(key); }
  get map() { const byPath = propsOf.get(this.user); return byPath && byPath.get(this.key); }
  setProperty(name, value, attributes, callback) {
    let json;
    try { json = JSON.stringify([value ?? null, attributes ?? null]); } catch { return callback(webdav.Errors.Forbidden); }
    const size = 2 * (json.length + String(name).length) + 64;
    const map = this.map || new Map();
    const old = map.get(name);
    const delta = size - (old ? old.size : 0);
    let onResource = delta;
    for (const p of map.values()) onResource += p.size;
    if ((!old && map.size >= PROP_RESOURCE_COUNT) || onResource > PROP_RESOURCE_MAX
      || (propBytes.get(this.user) || 0) + delta > PROP_ACCOUNT_MAX || propTotal + delta > PROP_TOTAL_MAX) {
      return callback(webdav.Errors.InsufficientStorage);
    }
    map.set(name, { json, size });
    if (!propsOf.has(this.user)) propsOf.set(this.user, new Map());
    propsOf.get(this.user).set(this.key, map);
    propBytes.set(this.user, (propBytes.get(this.user) || 0) + delta);
    propTotal += delta;
    callback(null);
  }
  getProperty(name, callback) {
    const p = this.map && this.map.get(name);
    if (!p) return callback(webdav.Errors.PropertyNotFound);
    const [value, attributes] = JSON.parse(p.json);
    callback(null, value ?? undefined, attributes ?? undefined);
  }
  removeProperty(name, callback) {
    const map = this.map;
    const p = map && map.get(name);
    if (p) {
      if (map.size === 1) dropProps(this.user, this.key);
      else {
        map.delete(name);
        propBytes.set(this.user, (propBytes.get(this.user) || 0) - p.size);
        propTotal -= p.size;
      }
    }
    callback(null);
  }
  getProperties(callback) {
    const out = Object.create(null);
    if (this.map) for (const [name, p] of this.map) { const [value, attributes] = JSON.parse(p.json); out[name] = { value: value ?? undefined, attributes: attributes ?? undefined }; }
    callback(null, out);
  }
}

/** The live locks on one path (expired ones are dropped on the way). */
function liveLocks(user, key) {
  const byPath = locksOf.get(user);
  if (!byPath || !byPath.has(key)) return [];
  const list = byPath.get(key).filter((l) => !l.expired());
  if (list.length > 0) byPath.set(key, list);
  else { byPath.delete(key); if (byPath.size === 0) locksOf.delete(user); }
  return list;
}
function countLocks(user) {
  let mine = 0; let all = 0;
  for (const [u, byPath] of [...locksOf]) {
    for (const key of [...byPath.keys()]) {
      const n = liveLocks(u, key).length;
      all += n;
      if (u === user) mine += n;
    }
  }
  return { mine, all };
}

class BoundedLockManager {
  constructor(key) { this.key = key; this.user = owner(key); }
  getLocks(callback) { callback(null, liveLocks(this.user, this.key)); }
  setLock(lock, callback) {
    let ownerSize;
    try { ownerSize = Buffer.byteLength(JSON.stringify(lock.owner ?? null)); } catch { return callback(webdav.Errors.Forbidden); }
    if (ownerSize > LOCK_OWNER_MAX) return callback(webdav.Errors.Forbidden);
    const { mine, all } = countLocks(this.user);
    if (mine >= LOCKS_PER_ACCOUNT || all >= LOCKS_TOTAL) return callback(webdav.Errors.InsufficientStorage);
    const list = liveLocks(this.user, this.key);
    if (!locksOf.has(this.user)) locksOf.set(this.user, new Map());
    locksOf.get(this.user).set(this.key, [...list, lock]);
    callback(null);
  }
  removeLock(uuid, callback) {
    const list = liveLocks(this.user, this.key);
    const i = list.findIndex((l) => l.uuid === uuid);
    if (i < 0) return callback(null, false);
    list.splice(i, 1);
    if (list.length === 0) forgetLocksAt(this.user, this.key);
    callback(null, true);
  }
  getLock(uuid, callback) {
    const lock = liveLocks(this.user, this.key).find((l) => l.uuid === uuid);
    if (lock) callback(null, lock); else callback();
  }
  refresh(uuid, timeoutSeconds, callback) {
    this.getLock(uuid, (e, lock) => {
      if (e || !lock) return callback(e);
      lock.refresh(Math.min(timeoutSeconds || LOCK_TIMEOUT_S, LOCK_TIMEOUT_S));
      callback(null, lock);
    });
  }
}
function forgetLocksAt(user, key) {
  const byPath = locksOf.get(user);
  if (!byPath) return;
  byPath.delete(key);
  if (byPath.size === 0) locksOf.delete(user);
}
// Expired locks are dropped when their resource is looked at, and by this sweep for the others.
setInterval(() => countLocks(''), 60_000).unref();

/** Writes that take space are admitted against the owner's quota and entry cap (files, folders: _create; bytes:
 * _openWriteStream, which counts what passes through it and fails with InsufficientStorage (507) past the quota,
 * removing the partial file). Properties and locks are kept in the bounded maps above. */
class QuotaFileSystem extends webdav.PhysicalFileSystem {
  constructor(root) {
    super(root);
    // PhysicalFileSystem's own per-path map stays empty: what it would hold is kept above.
    this.resources = new Proxy(Object.create(null), { get: () => undefined, set: () => true, deleteProperty: () => true, has: () => false });
  }

  _lockManager(p, ctx, callback) { checkGeneration(owner(p.toString())); callback(null, new BoundedLockManager(p.toString())); }

  _propertyManager(p, ctx, callback) { checkGeneration(owner(p.toString())); callback(null, new BoundedPropertyManager(p.toString())); }

  _create(p, ctx, callback) {
    const user = owner(p.toString());
    const cost = ENTRY_CHARGE + (ctx.type.isDirectory ? BLOCK : 0);
    admit(user, 1, () => cost).then((r) => {
      if (r === null) return callback(webdav.Errors.Forbidden);
      if (r === 'full') return callback(webdav.Errors.InsufficientStorage);
      super._create(p, ctx, (e) => { r.end(); callback(e); });
    }, (err) => callback(err));
  }

  _delete(p, ctx, callback) {
    super._delete(p, ctx, (e) => {
      if (!e) forget(p.toString());
      const user = owner(p.toString());
      if (spaces.has(user)) walk(spaceOf(user));
      callback(e);
    });
  }

  _move(from, to, ctx, callback) {
    super._move(from, to, ctx, (e, overwritten) => {
      if (!e) moveProps(from.toString(), to.toString());
      for (const user of new Set([owner(from.toString()), owner(to.toString())])) if (spaces.has(user)) walk(spaceOf(user));
      callback(e, overwritten);
    });
  }

  _openWriteStream(p, ctx, callback) {
    const user = owner(p.toString());
    const realPath = this.getRealPath(p).realPath;
    fs.lstat(realPath, (err, st) => {
      // The file is truncated when opened. Its old blocks are in the space's `base` when the walk that made it had
      // ended before the truncation and no other has started since: they are credited back until a walk starts.
      const old = !err && st.isFile() ? st.blocks * 512 : 0;
      let written = 0; let epoch = -1; let space = null;
      const bytes = () => allocated(written) - (space && space.epoch === epoch ? old : 0);
      admit(user, 0, bytes).then((r) => {
        if (r === null) return callback(webdav.Errors.Forbidden);
        if (r === 'full') return callback(webdav.Errors.InsufficientStorage);
        space = r.space;
        epoch = space.walking ? -1 : space.epoch;
        const quota = quotaOf(user) ?? 0;
        super._openWriteStream(p, ctx, (e, file) => {
          if (e) { r.end(); return callback(e); }
          let failed = false;
          const counter = new Writable({
            write(chunk, _enc, done) {
              written += chunk.length;
              if (estimate(space).bytes > quota) return done(webdav.Errors.InsufficientStorage);
              if (file.write(chunk)) done(); else file.once('drain', () => done());
            },
            // webdav-server answers on this stream's 'finish': only once the file itself is complete on disk.
            final(done) { file.end(() => { r.end(); done(); }); },
          });
          counter.on('error', () => {
            failed = true;
            file.destroy();
            // The reservation ends once the partial file is gone, and a walk then counts the space again.
            fs.rm(realPath, { force: true }, () => { forget(p.toString()); r.end(); walk(space); });
          });
          file.on('error', (err2) => counter.destroy(err2));
          // A client that goes away mid-upload leaves what it sent; its reservation ends with the request.
          const res = ctx.context && ctx.context.response;
          if (res) res.once('close', () => { if (!failed && !r.ended) { file.end(); r.end(); } });
          callback(null, counter);
        });
      }, (e) => callback(e));
    });
  }
}

const dav = new webdav.WebDAVServer({
  requireAuthentification: true,
  httpAuthentication: authentication,
  privilegeManager: new OwnSpacePrivileges(),
  rootFileSystem: new QuotaFileSystem(ROOT),
  maxRequestDepth: 10,
  lockTimeout: LOCK_TIMEOUT_S,
});

/** The decoded path a Destination header names on this server, or null when it is not one we can read. */
function destinationOf(value) {
  if (typeof value !== 'string') return null;
  const url = targetOf(value);
  return url ? decodedSegments(url.pathname) : null;
}

/** Why this request may not reach webdav-server (status, reason), or null when it may. */
function checkRequest(req) {
  const url = targetOf(req.url);
  if (!url || !decodedSegments(url.pathname)) return [400, 'request target'];
  if (req.headers.destination !== undefined && !destinationOf(req.headers.destination)) return [400, 'Destination header'];
  if (req.headers.if !== undefined) { try { parseIfHeader(String(req.headers.if)); } catch { return [400, 'If header']; } }
  const length = req.headers['content-length'];
  if (req.method !== 'PUT' && length !== undefined && Number(length) > MAX_XML_BODY) return [413, 'body too large'];
  return null;
}

/** Quota checks that can be decided before anything is written, so that a write refused for space leaves nothing
 * behind: a PUT that declares its length, and COPY or MOVE of a tree into a space (MOVE inside one space changes
 * nothing). The writes themselves are admitted again, one by one, in QuotaFileSystem. Asynchronous: sizes are
 * measured on the thread pool (usageOfAsync), never by a synchronous walk. */
dav.beforeRequest((ctx, next) => {
  const { method, headers } = ctx.request;
  if (method !== 'PUT' && method !== 'COPY' && method !== 'MOVE') return next();
  const segs = decodedSegments(targetOf(ctx.request.url).pathname).filter(Boolean);
  if (!ctx.user || ctx.user.isDefaultUser || segs[0] !== ctx.user.username) return next(); // privileges answer these
  (async () => {
    if (method === 'PUT') {
      if (headers['content-length'] === undefined) return true;
      const st = await fs.promises.lstat(path.join(ROOT, ...segs)).catch(() => null);
      const old = st && st.isFile() ? st.blocks * 512 : 0;
      return wouldFit(segs[0], st ? 0 : 1, allocated(Number(headers['content-length'])) - old + (st ? 0 : ENTRY_CHARGE));
    }
    const target = destinationOf(headers.destination).filter(Boolean);
    if (method === 'MOVE' && target[0] === segs[0]) return true;
    if (segs.length < 2) return true; // a whole space is not copied anywhere: privileges answer
    const src = await usageOfAsync(path.join(ROOT, ...segs));
    return wouldFit(target[0], src.entries + 1, src.bytes + ENTRY_CHARGE);
  })().then((ok) => {
    if (ok) return next();
    ctx.setCode(507);
    ctx.exit();
  }, (err) => { log('error', 'quota check failed', err); ctx.setCode(500); ctx.exit(); });
});

const server = http.createServer({ requestTimeout: 0, headersTimeout: 15_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
  const problem = checkRequest(req);
  if (problem) {
    res.writeHead(problem[0], { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end(`Requête refusée : ${problem[1]}.\n`);
    return;
  }
  const xml = req.method !== 'PUT' ? Number(req.headers['content-length'] || 0) : 0;
  if (xml > 0) {
    if (xmlInFlight + xml > XML_IN_FLIGHT_MAX) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1', connection: 'close' }).end('Serveur occupé, réessayez.\n');
      return;
    }
    xmlInFlight += xml;
    res.once('close', () => { xmlInFlight -= xml; });
  }
  // A refused upload is answered before its body has all arrived. Closing at once would reset the connection and
  // the client might lose the 507 it has not read yet; the rest is read and dropped instead, within bounds.
  res.on('finish', () => {
    if (req.complete) return;
    let drained = 0;
    const stop = setTimeout(() => req.destroy(), DRAIN_MS).unref();
    req.on('data', (c) => { drained += c.length; if (drained > DRAIN_MAX) req.destroy(); });
    req.on('end', () => clearTimeout(stop));
    req.resume();
  });
  try {
    dav.executeRequest(req, res);
  } catch (err) {
    log('error', 'request failed', err);
    if (!res.headersSent) res.writeHead(500, { connection: 'close' });
    res.end();
  }
});
lastResort(server);

fs.mkdirSync(ROOT, { recursive: true });
const port = Number(process.env.PORT || 8080);
server.listen(port, '0.0.0.0', () => log('info', `WebDAV on port ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
