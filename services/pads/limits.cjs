// What one pad, one account or one passer-by may store: public pads are capped in number and in size and expire
// after an idle period the administrator sets (PADS_PUBLIC_*); an account's private pads together stay within its
// quotaMb. Checked on every Yjs message that carries an update, before y-websocket applies it, so nothing past a
// limit is ever stored.
'use strict';
const Y = require('yjs');
const decoding = require('lib0/decoding');
const utils = require('y-websocket/bin/utils');
const { readUsers } = require('./accounts-store.cjs');

const intEnv = (name, dflt) => {
  const v = process.env[name];
  return v !== undefined && /^[0-9]{1,6}$/.test(v) ? Number(v) : dflt;
};
const LIMITS = Object.freeze({
  publicMaxCount: intEnv('PADS_PUBLIC_MAX_COUNT', 1000),
  publicMaxBytes: intEnv('PADS_PUBLIC_MAX_KB', 1024) * 1024,
  // 0 keeps public pads forever.
  publicIdleMs: intEnv('PADS_PUBLIC_IDLE_DAYS', 90) * 86_400_000,
});
const DAY_MS = 86_400_000;
// Activity is written to LevelDB at most this often per pad: an idle expiry counted in days needs no finer clock.
const TOUCH_EVERY_MS = 60_000;

const ldb = () => utils.getPersistence().provider;
const publicNames = new Set();
const lastActive = new Map();
const lastStored = new Map();

/** Load the public pads' names and last activity once at start (a pad without a date is dated now). */
async function loadPublic(now = Date.now()) {
  for (const name of await ldb().getAllDocNames()) {
    if (!name.startsWith('public/')) continue;
    publicNames.add(name);
    const at = await ldb().getMeta(name, 'lastActive');
    lastActive.set(name, typeof at === 'number' ? at : now);
    if (typeof at !== 'number') await ldb().setMeta(name, 'lastActive', now);
  }
}

function touch(name, now = Date.now()) {
  if (!name.startsWith('public/')) return;
  lastActive.set(name, now);
  if (now - (lastStored.get(name) ?? 0) < TOUCH_EVERY_MS) return;
  lastStored.set(name, now);
  ldb().setMeta(name, 'lastActive', now).catch(() => undefined);
}

/** Whether a connection may open this public pad: an existing one always, a new one while the count allows. */
function mayOpenPublic(name) {
  if (publicNames.has(name) || utils.docs.has(name)) return true;
  return publicNames.size < LIMITS.publicMaxCount;
}

function opened(name) {
  if (!name.startsWith('public/')) return;
  publicNames.add(name);
  touch(name);
}

/** Forget a pad entirely: its open connections are closed and its state cleared. */
async function removeDoc(name) {
  const open = utils.docs.get(name);
  if (open) { for (const conn of open.conns.keys()) conn.close(); utils.docs.delete(name); }
  await ldb().clearDocument(name);
  forgetScope(name);
  publicNames.delete(name);
  lastActive.delete(name);
  lastStored.delete(name);
}

/** Remove the public pads idle for longer than the administrator's limit; `now` lets a maintenance call run the
 * sweep as of another date. Pads with a connection open are in use, whatever their date. */
async function expireIdle(now = Date.now()) {
  if (!LIMITS.publicIdleMs) return [];
  const gone = [];
  for (const name of [...publicNames]) {
    const open = utils.docs.get(name);
    if (open && open.conns.size > 0) continue;
    if (now - (lastActive.get(name) ?? now) > LIMITS.publicIdleMs) { await removeDoc(name); gone.push(name); }
  }
  return gone;
}

/** The update a Yjs WebSocket message carries (sync step 2 or update), or null for the others. */
function updateOf(message) {
  const d = decoding.createDecoder(message);
  if (decoding.readVarUint(d) !== 0) return null; // awareness and the rest: not stored
  const sub = decoding.readVarUint(d);
  return sub === 1 || sub === 2 ? decoding.readVarUint8Array(d) : null;
}

const stateBytes = (doc) => Y.encodeStateAsUpdate(doc).length;

/** A document's stored size once `update` is applied: the open copy, what LevelDB holds (it may not be loaded
 * into the open copy yet) and the update, merged as Yjs would. */
async function sizeWith(name, update) {
  const doc = new Y.Doc();
  try {
    const open = utils.docs.get(name);
    if (open) Y.applyUpdate(doc, Y.encodeStateAsUpdate(open));
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(await ldb().getYDoc(name)));
    if (update) Y.applyUpdate(doc, update);
    return stateBytes(doc);
  } finally { doc.destroy(); }
}

/** The scope a pad's bytes count against: itself for a public pad, its owner's account for a private one. */
function scopeOf(name) {
  const m = /^private\/([^/]+)\//.exec(name);
  if (!m) return { key: name, limit: () => LIMITS.publicMaxBytes, others: async () => 0 };
  const user = m[1];
  return {
    key: `user:${user}`,
    limit: () => { const u = readUsers()[user]; return u ? u.quotaMb * 1024 * 1024 : 0; },
    others: async () => {
      let sum = 0;
      for (const n of await ldb().getAllDocNames()) if (n !== name && n.startsWith(`private/${user}/`)) sum += await sizeWith(n, null);
      return sum;
    },
  };
}

// Per scope, an upper bound of its bytes: the exact size at the last check plus every update's length since
// (an update never grows the merged state by more than its own length). The exact size is computed again only
// when the bound would pass the limit, so a resident typing far from the limit costs one addition a message.
const bound = new Map();

/** Whether this message may be applied to the pad `name`; unreadable messages are y-websocket's to refuse. */
async function allowMessage(name, message) {
  let update;
  try { update = updateOf(message); } catch { return true; }
  if (!update) return true;
  const scope = scopeOf(name);
  const limit = scope.limit();
  const b = bound.get(scope.key);
  if (b !== undefined && b + update.length <= limit) { bound.set(scope.key, b + update.length); touch(name); return true; }
  const exact = (await scope.others()) + (await sizeWith(name, update));
  if (exact > limit) { bound.delete(scope.key); return false; }
  bound.set(scope.key, exact);
  touch(name);
  return true;
}

function forgetScope(name) { bound.delete(scopeOf(name).key); }

module.exports = { LIMITS, DAY_MS, loadPublic, mayOpenPublic, opened, expireIdle, allowMessage, forgetScope, removeDoc, publicNames };
