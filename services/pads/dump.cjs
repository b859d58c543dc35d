// The pads' online dump, so that a backup never pauses the service: the backup runs `node dump.cjs` in the running
// container (manifest backup.dump), which asks the server to write a consistent copy of its whole store, then
// snapshots the volume without the live LevelDB (`pads/db`, excluded). When the server starts and finds no LevelDB
// (absent or an empty folder: how a restore leaves it) but a dump, it rebuilds the LevelDB from the dump first
// (`node dump.cjs restore`, run by server.cjs before anything opens the database).
//
// Format of /var/lib/pads/dump (0600), version 1 — every key and value of the LevelDB as stored, from one LevelDB
// snapshot, in key order. That is every pad, public and private, with everything the store keeps about it: its
// updates (['v1', <pad>, 'update', <clock>]), state vector (['v1_sv', <pad>]) and metadata (['v1', <pad>, 'meta',
// <key>]: `bytes` stored, `lastActive` of public pads); a pad's owner is in its name (private/<owner>/<pad>;
// public/<pad>). Keys are y-leveldb 0.1's lib0 encoding of those arrays, values its bytes as they are.
//   "cattery-pads-dump 1\n"
//   per pair:  "R" | key length (uint32 BE) | key | value length (uint32 BE) | value
//   trailer:   "E" | number of pairs (uint32 BE) | SHA-256 of every byte before the trailer (32 bytes)
// A dump is written as dump.tmp-<random> (0600), fsynced, renamed over `dump`, and the folder fsynced: `dump` is
// always a whole dump. A dump.tmp-* left by a crash is never read, and is removed by the next dump or start.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const MAGIC = Buffer.from('cattery-pads-dump 1\n');
const DB = process.env.YPERSISTENCE || '/var/lib/pads/db';
const DIR = path.dirname(DB);
const DUMP = path.join(DIR, 'dump');
const TMP = /^dump\.tmp-/;
// LevelDB allows large values, y-leveldb stores one update per value: a pad's merged state is at most a few MB.
const MAX_KEY = 64 * 1024;
const MAX_VALUE = 256 * 1024 * 1024;

const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const log = (level, msg, extra) => process.stderr.write(`${JSON.stringify({ level, msg, ...extra })}\n`);

function sweepTemporaries() {
  for (const name of fs.readdirSync(DIR)) if (TMP.test(name)) fs.rmSync(path.join(DIR, name), { force: true, recursive: true });
}

function fsyncDir(dir) {
  const fd = fs.openSync(dir, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** Server side: write every pair of `pairs` (an async iterable of { key, value } Buffers, one snapshot) as the
 * dump, atomically. Written in chunks of about a megabyte as the iterator yields: the store is never held whole. */
async function writeDump(pairs) {
  sweepTemporaries();
  const tmp = path.join(DIR, `dump.tmp-${crypto.randomBytes(8).toString('hex')}`);
  const fh = await fs.promises.open(tmp, 'wx', 0o600);
  const hash = crypto.createHash('sha256');
  let chunk = [];
  let size = 0;
  let count = 0;
  let bytes = 0;
  const flush = async () => {
    const buf = Buffer.concat(chunk);
    chunk = []; size = 0;
    hash.update(buf);
    bytes += buf.length;
    await fh.write(buf);
  };
  const add = async (...parts) => {
    for (const p of parts) { chunk.push(p); size += p.length; }
    if (size >= 1024 * 1024) await flush();
  };
  try {
    await add(MAGIC);
    for await (const { key, value } of pairs) {
      await add(Buffer.from('R'), u32(key.length), key, u32(value.length), value);
      count += 1;
    }
    await flush();
    await fh.write(Buffer.concat([Buffer.from('E'), u32(count), hash.digest()]));
    await fh.sync();
    await fh.close();
    fs.renameSync(tmp, DUMP);
    fsyncDir(DIR);
    return { pairs: count, bytes: bytes + 37 };
  } catch (err) {
    await fh.close().catch(() => undefined);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Read a dump, calling `onPair(key, value)` for each pair (awaited); throws unless the file is one whole dump. */
async function readDump(file, onPair) {
  const fd = fs.openSync(file, 'r');
  try {
    const total = fs.fstatSync(fd).size;
    const hash = crypto.createHash('sha256');
    let pos = 0;
    const read = (n) => {
      if (pos + n > total - 37) throw new Error('the dump is truncated');
      const b = Buffer.alloc(n);
      if (n > 0 && fs.readSync(fd, b, 0, n, pos) !== n) throw new Error('short read');
      pos += n;
      hash.update(b);
      return b;
    };
    if (total < MAGIC.length + 37) throw new Error('the dump is truncated');
    if (!read(MAGIC.length).equals(MAGIC)) throw new Error('not a pads dump (version 1)');
    let count = 0;
    while (pos < total - 37) {
      if (read(1)[0] !== 0x52) throw new Error('malformed dump record');
      const klen = read(4).readUInt32BE();
      if (klen > MAX_KEY) throw new Error('malformed dump record (key length)');
      const key = read(klen);
      const vlen = read(4).readUInt32BE();
      if (vlen > MAX_VALUE) throw new Error('malformed dump record (value length)');
      const value = read(vlen);
      count += 1;
      await onPair(key, value);
    }
    const trailer = Buffer.alloc(37);
    fs.readSync(fd, trailer, 0, 37, pos);
    if (trailer[0] !== 0x45 || trailer.readUInt32BE(1) !== count || !trailer.subarray(5).equals(hash.digest())) {
      throw new Error('the dump is not whole (its trailer does not match)');
    }
    return count;
  } finally { fs.closeSync(fd); }
}

const emptyOrAbsent = (dir) => { try { return fs.readdirSync(dir).length === 0; } catch (err) { if (err.code === 'ENOENT') return true; throw err; } };

/** At start, before the server opens its LevelDB: when there is none (absent, or an empty folder) and a dump
 * exists, check the dump whole, then build the LevelDB from it beside (db.restoring) and rename it into place. */
async function restoreIfNeeded() {
  fs.mkdirSync(DIR, { recursive: true });
  sweepTemporaries();
  if (!emptyOrAbsent(DB) || !fs.existsSync(DUMP)) return null;
  const checked = await readDump(DUMP, () => undefined);
  const building = `${DB}.restoring`;
  fs.rmSync(building, { recursive: true, force: true });
  // y-websocket's own y-leveldb (0.1, with its level 6): the one the server opens the database with.
  const ywsRoot = path.dirname(path.dirname(require.resolve('y-websocket/bin/utils')));
  const { LeveldbPersistence } = require(require.resolve('y-leveldb', { paths: [ywsRoot] }));
  const ldb = new LeveldbPersistence(building);
  let ops = [];
  let size = 0;
  const write = () => {
    const batch = ops;
    ops = []; size = 0;
    return new Promise((resolve, reject) => {
      ldb._transact(async (db) => {
        try { await db.batch(batch, { keyEncoding: 'binary', valueEncoding: 'binary' }); resolve(); } catch (err) { reject(err); }
      });
    });
  };
  try {
    await readDump(DUMP, async (key, value) => {
      ops.push({ type: 'put', key, value });
      size += key.length + value.length;
      if (size >= 4 * 1024 * 1024) await write();
    });
    if (ops.length) await write();
  } finally { await ldb.destroy(); }
  fs.rmSync(DB, { recursive: true, force: true });
  fs.renameSync(building, DB);
  fsyncDir(DIR);
  log('info', 'the pads store was rebuilt from its dump', { pairs: checked });
  return checked;
}

/** `node dump.cjs`: ask the running server for a dump; exit 0 only when it reports the dump whole and in place. */
function askServer() {
  const port = Number(process.env.PORT || 1234);
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/_cattery/pads/dump' }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c) => { body += c; });
    res.on('end', () => {
      let answer = null;
      try { answer = JSON.parse(body); } catch { /* reported below */ }
      if (res.statusCode === 200 && answer && answer.ok === true) { process.stdout.write(`${JSON.stringify(answer)}\n`); process.exit(0); }
      process.stdout.write(`${JSON.stringify({ ok: false, error: (answer && answer.error) || `pads server: ${res.statusCode}` })}\n`);
      process.exit(1);
    });
  });
  req.on('error', (err) => { process.stdout.write(`${JSON.stringify({ ok: false, error: `pads server: ${err.message}` })}\n`); process.exit(1); });
  req.end();
}

if (require.main === module) {
  if (process.argv[2] === 'restore') {
    restoreIfNeeded().then(() => process.exit(0), (err) => { log('error', 'cannot rebuild the pads store from its dump', { err: String(err && err.message) }); process.exit(1); });
  } else askServer();
}

module.exports = { writeDump, readDump, restoreIfNeeded, DUMP, MAGIC };
