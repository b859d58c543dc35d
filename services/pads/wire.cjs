// What one WebSocket connection may cost the server. A pad's connections are open to whoever has its link, so every
// message, whatever its type, is paid for out of the connection's budget before y-websocket sees it:
// - bytes and messages: a token bucket per connection (WIRE.rate a second, WIRE.burst at once, each message at least
//   WIRE.messageCost); a connection in debt, or with too much read but not yet handled, is paused (its socket is no
//   longer read: TCP slows the sender down) until the bucket refills. Work a message causes is billed too: the
//   whole pad a sync step 1 asks for, the scratch copy of an exact size check. Near the memory limit, no connection
//   is read until memory falls again.
// - awareness (cursors, names): y-websocket keeps every client state it is sent and sends it on to every
//   connection of the pad. A connection speaks for one client only (the first clientID it announces that no other
//   connection holds); entries for other clients are dropped (y-websocket's own client echoes the states it
//   receives: those are no-ops), as are states over WIRE.awarenessState and messages over WIRE.awarenessMax.
// - sync messages must be well formed (a malformed one closes the connection with 4400, instead of y-websocket
//   logging an error for each); updates pass the storage limits (limits.cjs); other message types are dropped.
//   On a pad an import replaced, a connection that announces or sends what the import took away is closed (4409).
// - slow consumers: a connection whose outgoing buffer passes WIRE.buffered (plus the size of any large message
//   it was sent, a pad's initial sync) is cut, so that a client that stops reading cannot make the server hold
//   everything the pad's other clients send.
// - WIRE.connsPerPad connections per pad, WIRE.conns in all (server.cjs refuses the upgrade past them, 503).
'use strict';
const Y = require('yjs');
const encoding = require('lib0/encoding');
const decoding = require('lib0/decoding');
const utils = require('y-websocket/bin/utils');
const limits = require('./limits.cjs');
const store = require('./store.cjs');

const KiB = 1024;
const WIRE = Object.freeze({
  rate: 1024 * KiB,
  burst: 4096 * KiB,
  messageCost: 1 * KiB,
  queued: 4096 * KiB,
  awarenessMax: 64 * KiB,
  awarenessState: 4 * KiB,
  buffered: 1024 * KiB,
  connsPerPad: 64,
  conns: 256,
});

let connections = 0;
// Under memory pressure (limits.memoryBusy) no connection is read at all: ws buffers each frame whole before it is
// handed on, so frames in progress on many connections would otherwise still grow. Checked every 200 ms.
const live = new Set();
let pressure = false;
setInterval(() => {
  const busy = limits.memoryBusy();
  if (busy === pressure) return;
  pressure = busy;
  for (const resume of live) resume();
}, 200).unref();
/** Whether one more connection may open on pad `name`. */
function mayConnect(name) {
  const open = utils.docs.get(name);
  return connections < WIRE.conns && (!open || open.conns.size < WIRE.connsPerPad);
}

const bytesOf = (data) => {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
};
const lengthOf = (data) => (typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength ?? data.length ?? 0);

/** Cut the connection when its outgoing buffer shows a client that does not read what it is sent. */
function guardSend(ws) {
  const send = ws.send.bind(ws);
  let grace = 0;
  ws.send = (data, opts, cb) => {
    const before = ws.bufferedAmount;
    if (before <= WIRE.buffered) grace = 0;
    else if (before > WIRE.buffered + grace) { ws.terminate(); return; }
    const len = lengthOf(data);
    if (len > WIRE.buffered / 2) grace += len;
    send(data, opts, cb);
  };
}

/** The pad, loaded, then the connection handed to y-websocket; null when the connection closed meanwhile. A pad
 * is loaded before y-websocket's first sync step, so that the client is told the pad's real state (and answers
 * with what it lacks, not with all it has). */
async function attach(ws, req, name) {
  let doc;
  for (;;) {
    doc = utils.getYDoc(name);
    try { await store.stateOf(doc).ready; } catch (err) { drop(doc, name); throw err; }
    if (utils.docs.get(name) === doc) break;
  }
  if (ws.readyState !== ws.OPEN) { if (doc.conns.size === 0) drop(doc, name); return null; }
  utils.setupWSConnection(ws, req, { docName: name });
  return doc;
}

function drop(doc, name) {
  if (utils.docs.get(name) === doc && doc.conns.size === 0) { utils.docs.delete(name); doc.destroy(); }
}

/** Meter every message of `ws` (connected to pad `name`), then hand what passes to y-websocket in arrival order. */
function connect(ws, req, name) {
  connections += 1;
  guardSend(ws);
  const c = { tokens: WIRE.burst, at: Date.now(), queued: 0, paused: false, timer: null, own: -1, closed: false, refused: false };
  const refill = () => {
    const now = Date.now();
    c.tokens = Math.min(WIRE.burst, c.tokens + ((now - c.at) * WIRE.rate) / 1000);
    c.at = now;
  };
  const throttle = () => {
    if (c.closed) return;
    refill();
    if (c.tokens >= 0 && c.queued < WIRE.queued && !pressure) {
      if (c.paused) { c.paused = false; ws.resume(); }
      return;
    }
    if (!c.paused) { c.paused = true; ws.pause(); }
    if (!c.timer && c.tokens < 0) {
      c.timer = setTimeout(() => { c.timer = null; throttle(); }, Math.max(20, Math.ceil((-c.tokens * 1000) / WIRE.rate)));
    }
  };
  const charge = (bytes) => { c.tokens -= bytes; };
  // ws reports a protocol breach (an oversized or malformed frame) as an 'error' before closing: without a listener
  // it would be thrown, and end the process.
  ws.on('error', () => undefined);
  live.add(throttle);
  ws.on('close', () => {
    live.delete(throttle);
    connections -= 1;
    c.closed = true;
    if (c.timer) clearTimeout(c.timer);
  });

  const docReady = attach(ws, req, name);
  const emit = ws.emit.bind(ws);
  let chain = docReady.then(() => undefined, () => { ws.terminate(); });
  ws.emit = (event, ...args) => {
    if (event !== 'message') return emit(event, ...args);
    const [data, isBinary] = args;
    const size = lengthOf(data);
    c.queued += size;
    charge(size + WIRE.messageCost);
    throttle();
    chain = chain.then(async () => {
      c.queued -= size;
      const doc = await docReady;
      // What arrived before the client's close frame is still applied (CLOSING); nothing after a refusal.
      if (!doc || c.refused || ws.readyState === ws.CLOSED) return;
      const v = isBinary === false ? {} : verdict(ws, c, name, doc, bytesOf(data), charge);
      if (v.close) { c.refused = true; ws.close(v.close, v.reason); return; }
      if (v.pass) {
        emit('message', v.pass, true);
        store.settle(doc);
      }
      throttle();
    }).catch((err) => {
      console.error(JSON.stringify({ level: 'error', msg: 'message not handled', pad: name, err: String(err && err.message) }));
      ws.terminate();
    });
    return true;
  };
}

/** What to do with one message: `{ pass }` (the bytes y-websocket gets), `{ close, reason }`, or `{}` (dropped). */
function verdict(ws, c, name, doc, bytes, charge) {
  let d;
  let type;
  try {
    d = decoding.createDecoder(bytes);
    type = decoding.readVarUint(d);
  } catch { return { close: 4400, reason: 'malformed message' }; }
  if (type === 0) {
    let sub; let payload; let clocks;
    try {
      sub = decoding.readVarUint(d);
      payload = decoding.readVarUint8Array(d);
      if (sub === 0) clocks = Y.decodeStateVector(payload);
      else if (sub === 1 || sub === 2) clocks = Y.parseUpdateMeta(payload).to;
      else return { close: 4400, reason: 'unknown sync message' };
    } catch { return { close: 4400, reason: 'malformed sync message' }; }
    // An editor that still holds what an import took away from this pad (store.cjs, fences): closed, never merged.
    if (store.staleFor(name, clocks)) return { close: 4409, reason: 'pad replaced' };
    if (sub === 0) {
      // The answer is the part of the pad the client lacks: at most all of it.
      charge(store.stateOf(doc).logical);
      return { pass: bytes };
    }
    const r = limits.checkUpdate(name, doc, payload, charge);
    if (r === 'ok') return { pass: bytes };
    return r === 'busy' ? { close: 4503, reason: 'server busy' } : { close: 4507, reason: 'pad full' };
  }
  if (type === 1) return awareness(ws, c, doc, d, bytes.length);
  return {};
}

/** An awareness message reduced to this connection's own client, or dropped. */
function awareness(ws, c, doc, d, size) {
  if (size > WIRE.awarenessMax) return {};
  let keep = null;
  try {
    const inner = decoding.createDecoder(decoding.readVarUint8Array(d));
    const count = decoding.readVarUint(inner);
    for (let i = 0; i < count; i++) {
      const id = decoding.readVarUint(inner);
      const clock = decoding.readVarUint(inner);
      const state = decoding.readVarString(inner);
      if (c.own < 0 && !heldByOther(ws, doc, id)) c.own = id;
      if (id === c.own) keep = { id, clock, state };
    }
  } catch { return { close: 4400, reason: 'malformed awareness message' }; }
  if (!keep || keep.state.length > WIRE.awarenessState) return {};
  try { JSON.parse(keep.state); } catch { return {}; }
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, 1);
  encoding.writeVarUint(inner, keep.id);
  encoding.writeVarUint(inner, keep.clock);
  encoding.writeVarString(inner, keep.state);
  const out = encoding.createEncoder();
  encoding.writeVarUint(out, 1);
  encoding.writeVarUint8Array(out, encoding.toUint8Array(inner));
  return { pass: encoding.toUint8Array(out) };
}

function heldByOther(ws, doc, id) {
  for (const [conn, ids] of doc.conns) if (conn !== ws && ids.has(id)) return true;
  return false;
}

module.exports = { WIRE, connect, mayConnect };
