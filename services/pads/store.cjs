// The pads' storage: y-leveldb's on-disk layout (the y-leveldb 0.1 that y-websocket 2 persists with: a levelup db) (one LevelDB, each pad's updates under ['v1', pad, 'update', clock],
// its state vector under ['v1_sv', pad], its meta under ['v1', pad, 'meta', key]), written by this module alone so
// that every byte it stores is counted. y-websocket's own persistence stored each update as it came and merged them
// only past 500 updates, so "insert a megabyte, delete it" again and again filled the disk with bytes the pad's
// merged size never showed, and loaded them all back into memory to open the pad.
//
// Here each pad's stored bytes are known at all times (`bytes` meta, written in the same batch as every update, and
// an index of every pad in memory), a pad whose stored updates pass its allowance is compacted to its merged state
// (flushDocument's layout: one update, the others cleared), a pad is compacted when its last connection closes, and
// one that still holds extra updates (a crash, data from before) is compacted when it is next loaded. Loading
// streams the updates one at a time into a scratch document: never the whole list in memory.
'use strict';
const Y = require('yjs');
const encoding = require('lib0/encoding');
const lbuf = require('lib0/buffer');
const utils = require('y-websocket/bin/utils');

const provider = utils.getPersistence().provider;
const BITS32 = 0xffffffff;
const updKey = (name, clock) => ['v1', name, 'update', clock];
const metaKey = (name, key) => ['v1', name, 'meta', key];
const svKey = (name) => ['v1_sv', name];
// Import fences (below), in a namespace of their own: not a pad for y-leveldb's getAllDocNames (['v1_sv', …]).
const fenceKey = (name) => ['v1_fence', name];
const LOAD = Symbol('load');

/** Run `f(db)` in y-leveldb's queue of transactions (so that its own getMeta/setMeta/clearDocument stay ordered
 * with ours), with the error passed on (y-leveldb's `_transact` swallows it). */
function tx(f) {
  return new Promise((resolve, reject) => {
    provider._transact(async (db) => { try { resolve(await f(db)); } catch (err) { reject(err); } });
  });
}

const svValue = (clock, sv) => {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, clock);
  encoding.writeVarUint8Array(e, sv);
  return Buffer.from(encoding.toUint8Array(e));
};
const bytesValue = (n) => Buffer.from(lbuf.encodeAny(n));

/** Every stored pad's name and stored bytes (the sum of its updates' lengths as LevelDB holds them). */
const index = new Map();
/** Per pad an import replaced: client → clock (see `replace`). */
const fences = new Map();

/** Read every pad's stored bytes at start: the `bytes` meta, or (a pad written before this module) the sum of its
 * updates' lengths, read one at a time and then written as its meta. */
async function init() {
  for (const name of await provider.getAllDocNames()) {
    let bytes = await provider.getMeta(name, 'bytes');
    if (typeof bytes !== 'number') {
      bytes = await tx(async (db) => {
        let sum = 0;
        for await (const value of db.createValueStream({ gte: updKey(name, 0), lt: updKey(name, BITS32) })) sum += value.length;
        await db.put(metaKey(name, 'bytes'), bytesValue(sum));
        return sum;
      });
    }
    index.set(name, bytes);
  }
  await tx(async (db) => {
    for await (const { key, value } of db.createReadStream({ gte: ['v1_fence'], lt: ['v1_fencf'] })) {
      const clocks = lbuf.decodeAny(value);
      fences.set(key[1], new Map(Object.entries(clocks).map(([c, k]) => [Number(c), k])));
    }
  });
}

/** Apply a pad's stored updates, one at a time, to a fresh document; with the stored bytes and clock range. */
async function readInto(db, name, ydoc) {
  let bytes = 0; let first = -1; let last = -1;
  for await (const { key, value } of db.createReadStream({ gte: updKey(name, 0), lt: updKey(name, BITS32) })) {
    if (first < 0) first = key[3];
    last = key[3];
    bytes += value.length;
    Y.applyUpdate(ydoc, value);
  }
  return { bytes, first, last };
}

/** Per open pad (a y-websocket WSSharedDoc): `stored` (bytes on disk), `logical` (an upper bound of its merged
 * size: exact at load, compaction and each exact check, plus the length of every update since), the clock range
 * of its stored updates, and `dead` once removed (late events of a removed pad must not write it back). */
function stateOf(doc) { return doc.padStore; }

function setStored(st, bytes) {
  st.stored = bytes;
  if (!st.dead && st.last >= 0) index.set(st.name, bytes);
}

const failed = (name) => (err) => {
  console.error(JSON.stringify({ level: 'error', msg: 'pad not stored', pad: name, err: String(err && err.message) }));
  // The open copy has what the disk missed: its clients are cut, so that they send it again on reconnection.
  const open = utils.docs.get(name);
  if (open) for (const conn of open.conns.keys()) conn.terminate();
};

/** Write the pad's merged state as its only update (with its state vector and bytes), then clear the others.
 * Never rejects (a failure is logged and cuts the pad's clients). */
function compact(doc) {
  const st = stateOf(doc);
  if (st.dead) return Promise.resolve();
  const state = Y.encodeStateAsUpdate(doc);
  const sv = Y.encodeStateVector(doc);
  const from = st.first;
  const clock = st.last + 1;
  st.first = clock; st.last = clock;
  st.logical = state.length; st.compacted = state.length;
  setStored(st, state.length);
  return tx(async (db) => {
    if (st.dead) return;
    await db.batch([
      { type: 'put', key: updKey(st.name, clock), value: Buffer.from(state) },
      { type: 'put', key: svKey(st.name), value: svValue(clock, sv) },
      { type: 'put', key: metaKey(st.name, 'bytes'), value: bytesValue(state.length) },
    ]);
    if (from >= 0 && from < clock) await db.clear({ gte: updKey(st.name, from), lt: updKey(st.name, clock) });
  }).catch(failed(st.name));
}

function append(doc, update) {
  const st = stateOf(doc);
  if (st.dead) return Promise.resolve();
  const clock = st.last + 1;
  const fresh = st.first < 0;
  if (fresh) st.first = clock;
  st.last = clock;
  st.logical += update.length;
  setStored(st, st.stored + update.length);
  const bytes = st.stored;
  const sv = fresh ? Y.encodeStateVector(doc) : null;
  return tx(async (db) => {
    if (st.dead) return;
    const ops = [
      { type: 'put', key: updKey(st.name, clock), value: Buffer.from(update) },
      { type: 'put', key: metaKey(st.name, 'bytes'), value: bytesValue(bytes) },
    ];
    if (sv) ops.push({ type: 'put', key: svKey(st.name), value: svValue(clock, sv) });
    await db.batch(ops);
  }).catch(failed(st.name));
}

/** y-websocket's persistence hooks. The pad is loaded before any of its messages is handled (server.cjs holds
 * them until `ready`), then each update it applies is stored, or (`compactNext`, set by the limits) the whole pad
 * compacted in its place. */
const persistence = {
  provider,
  bindState(name, doc) {
    const st = { name, stored: 0, logical: 0, compacted: 0, first: -1, last: -1, dead: false, compactNext: false, exactNext: -1 };
    doc.padStore = st;
    st.ready = tx(async (db) => {
      const scratch = new Y.Doc();
      try {
        const r = await readInto(db, name, scratch);
        const state = Y.encodeStateAsUpdate(scratch);
        Y.applyUpdate(doc, state, LOAD);
        Object.assign(st, { first: r.first, last: r.last, logical: state.length, compacted: state.length });
        setStored(st, r.bytes);
      } finally { scratch.destroy(); }
    }).then(() => {
      // Extra updates left from before (a crash, an older version): compacted now, once.
      if (st.last > st.first || st.stored > st.logical) return compact(doc);
      return undefined;
    });
    st.ready.catch(failed(name));
    doc.on('update', (update, origin) => {
      if (origin === LOAD || st.dead) return;
      const exact = st.exactNext;
      st.exactNext = -1;
      if (st.compactNext) { st.compactNext = false; compact(doc); } else {
        append(doc, update);
        if (exact >= 0) st.logical = exact;
      }
    });
    return st.ready;
  },
  // The last connection closed: the pad is compacted if it took updates, before y-websocket destroys it.
  async writeState(_name, doc) {
    const st = stateOf(doc);
    if (!st) return;
    await st.ready.catch(() => undefined);
    if (!st.dead && st.last > st.first) await compact(doc);
  },
};
utils.setPersistence(persistence);

/** After a message was handled: an exact size the check measured holds even when the message changed nothing. */
function settle(doc) {
  const st = stateOf(doc);
  if (!st) return;
  if (st.exactNext >= 0) st.logical = st.exactNext;
  st.exactNext = -1;
  st.compactNext = false;
}

/** The exact merged size of an open pad once `update` is applied (a scratch copy: the pad itself is untouched). */
function sizeAfter(doc, update) {
  const scratch = new Y.Doc();
  try {
    Y.applyUpdate(scratch, Y.encodeStateAsUpdate(doc));
    if (update) Y.applyUpdate(scratch, update);
    return Y.encodeStateAsUpdate(scratch).length;
  } finally { scratch.destroy(); }
}

/** A pad's stored bytes (0 for a pad never stored). */
const storedOf = (name) => index.get(name) ?? 0;

/** The stored pads whose name starts with `prefix`, sorted. */
const namesWith = (prefix) => [...index.keys()].filter((n) => n.startsWith(prefix)).sort();

/** Remove a pad: its open copy is marked dead (nothing of it is written again) and every key of it cleared. */
async function remove(name) {
  const open = utils.docs.get(name);
  if (open && open.padStore) open.padStore.dead = true;
  index.delete(name);
  await tx(async (db) => {
    await db.del(svKey(name));
    await db.clear({ gte: ['v1', name], lt: ['v1', name, 'zzzzzzz'] });
  });
}

/** A pad's Markdown and Yjs state: from its open copy, or read from the disk into a scratch document that is
 * dropped right after (one pad in memory at a time). */
async function snapshot(name) {
  const open = utils.docs.get(name);
  if (open && open.padStore) {
    await open.padStore.ready;
    return { markdown: open.getText('content').toString(), state: Y.encodeStateAsUpdate(open) };
  }
  const scratch = new Y.Doc();
  try {
    await tx((db) => readInto(db, name, scratch));
    return { markdown: scratch.getText('content').toString(), state: Y.encodeStateAsUpdate(scratch) };
  } finally { scratch.destroy(); }
}

// ---- Import: an account's pads replaced whole (import.cjs validates the archive, this writes it). ----

// What an import took away, per pad: Yjs clients whose items the replaced pad held past what the imported state
// holds (client → the imported state's clock for it, 0 if absent). An editor still holding the replaced pad would
// send those items back on reconnection (a CRDT merges, it never forgets), so a connection that announces or sends
// any of them is closed with 4409 (wire.cjs) instead: the pad's own editor then reloads it afresh. Kept in memory
// (stored beside the pads, written in the import's batch, read at start). What it cannot see: a stale editor whose
// only changes were deletions of imported text.

/** Whether clocks a connection announces (a state vector, or an update's end clocks) reach into a fenced range. */
function staleFor(name, clocks) {
  const fence = fences.get(name);
  if (!fence) return false;
  for (const [client, clock] of clocks) if (fence.has(client) && clock > fence.get(client)) return true;
  return false;
}

const mergeClocks = (into, sv) => { for (const [c, k] of sv) if (k > (into.get(c) ?? 0)) into.set(c, k); };

/** Take a pad's open copy out of use: nothing of it is stored again, its clients are closed (4409: the pad was
 * replaced; y-websocket's editor reloads), and the next connection loads the pad from the store. Its connections are
 * taken from it first, so that y-websocket's close handler does not remove a newer copy of the same name from
 * `docs`. Returns the state vector the copy held, or null when the pad was not open. */
function retire(name) {
  const open = utils.docs.get(name);
  if (!open) return null;
  if (open.padStore) open.padStore.dead = true;
  utils.docs.delete(name);
  const sv = Y.decodeStateVector(Y.encodeStateVector(open));
  const conns = [...open.conns.keys()];
  open.conns.clear();
  for (const conn of conns) { try { conn.close(4409, 'pad replaced'); } catch { conn.terminate(); } }
  open.destroy();
  return sv;
}

/** Replace every pad under `prefix` (one account's private pads) by `pads` (full name → Yjs state), whole or not at
 * all: one LevelDB batch deletes every key of the old pads and writes the new ones (each as a single update, as
 * compaction leaves it), so a failure or a crash leaves the old pads as they were. Runs in the store's queue of
 * transactions: every update stored before it is in the old pads, none after it is written (their copies are
 * retired first). */
function replace(prefix, pads) {
  return tx(async (db) => {
    const old = namesWith(prefix);
    const taken = new Map();
    for (const name of new Set([...old, ...pads.keys()])) {
      const sv = retire(name);
      if (sv) taken.set(name, sv);
    }
    const ops = [];
    for (const name of old) {
      const sv = taken.get(name) ?? new Map();
      ops.push({ type: 'del', key: svKey(name) });
      for await (const { key, value } of db.createReadStream({ gte: ['v1', name], lt: ['v1', name, 'zzzzzzz'] })) {
        ops.push({ type: 'del', key });
        if (key[2] === 'update') mergeClocks(sv, Y.decodeStateVector(Y.encodeStateVectorFromUpdate(value)));
      }
      taken.set(name, sv);
    }
    for (const [name, state] of pads) {
      ops.push(
        { type: 'put', key: updKey(name, 0), value: Buffer.from(state) },
        { type: 'put', key: svKey(name), value: svValue(0, Y.encodeStateVectorFromUpdate(state)) },
        { type: 'put', key: metaKey(name, 'bytes'), value: bytesValue(state.length) },
      );
    }
    const fenced = new Map();
    for (const name of new Set([...taken.keys(), ...pads.keys(), ...[...fences.keys()].filter((n) => n.startsWith(prefix))])) {
      const sv = taken.get(name) ?? new Map();
      const now = pads.has(name) ? Y.decodeStateVector(Y.encodeStateVectorFromUpdate(pads.get(name))) : new Map();
      // A client fenced by an earlier import stays fenced, at the clock this state holds for it.
      const fence = new Map([...(fences.get(name) ?? new Map()).keys()].map((c) => [c, now.get(c) ?? 0]));
      for (const [c, k] of sv) if (k > (now.get(c) ?? 0)) fence.set(c, now.get(c) ?? 0);
      fenced.set(name, fence);
      ops.push(fence.size
        ? { type: 'put', key: fenceKey(name), value: Buffer.from(lbuf.encodeAny(Object.fromEntries(fence))) }
        : { type: 'del', key: fenceKey(name) });
    }
    await db.batch(ops);
    for (const name of old) index.delete(name);
    for (const [name, state] of pads) index.set(name, state.length);
    for (const [name, fence] of fenced) { if (fence.size) fences.set(name, fence); else fences.delete(name); }
  });
}

// ---- The online dump (dump.cjs writes it): every key and value of the LevelDB, from one snapshot. ----

/** A stream of every { key, value } of the store as LevelDB holds them (raw bytes), read from one snapshot: a
 * LevelDB iterator reads the snapshot taken when it is made, and it is made inside the store's queue, between two
 * of its writes. Consumed outside the queue: edits go on being stored while it is read. */
const rawSnapshot = () => tx(async (db) => db.createReadStream({ keyEncoding: 'binary', valueEncoding: 'binary' }));

module.exports = { init, stateOf, compact, settle, sizeAfter, storedOf, namesWith, remove, snapshot, index, replace, staleFor, rawSnapshot };
