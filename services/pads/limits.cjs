// What one pad, one account or one passer-by may store: public pads are capped in number and in size and expire
// after an idle period the administrator sets (PADS_PUBLIC_*); an account's private pads together stay within its
// quotaMb, and one private pad within PADS_PRIVATE_MAX_KB. Checked on every Yjs message that carries an update,
// before y-websocket applies it, against the bytes actually stored (store.cjs), so nothing past a limit is stored.
'use strict';
const fs = require('node:fs');
const utils = require('y-websocket/bin/utils');
const store = require('./store.cjs');
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
  // One private pad's merged size: a pad is loaded whole to be edited or exported, so it must fit in memory
  // whatever the account's quota (the quota bounds all of the account's pads together).
  privateMaxBytes: intEnv('PADS_PRIVATE_MAX_KB', 2048) * 1024,
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
  if (open) {
    if (open.padStore) open.padStore.dead = true;
    for (const conn of open.conns.keys()) conn.close();
    utils.docs.delete(name);
  }
  await store.remove(name);
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

// How far a pad's stored updates may run past its allowance before it is compacted: a quarter of the allowance, at
// least 64 KiB, so that compaction (one encoding of the pad, one write) costs at most as much as the bytes that led
// to it. Stored bytes therefore stay within limit + slack: public pad ≤ PADS_PUBLIC_MAX_KB + slack, an account's
// pads together ≤ quotaMb + the slack of one private pad.
const slackOf = (cap) => Math.max(64 * 1024, Math.floor(cap / 4));

// Memory guard: every pad a connection opens is held in memory, and how much memory a pad's bytes take depends on
// how it was written (a megabyte of single letters typed all over the text is tens of megabytes of Yjs items). No
// fixed count of bytes per pad can promise the container's memory, so the process watches its own: above the high
// mark, no pad is opened that is not already, and no update is applied (the connection is closed with 4503; the
// client retries later). The marks are fractions of the container's memory limit (cgroup), 256 MB if unknown.
function memoryLimit() {
  for (const f of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const v = Number(fs.readFileSync(f, 'utf8').trim());
      if (Number.isFinite(v) && v > 0 && v < 2 ** 50) return v;
    } catch { /* not this cgroup version */ }
  }
  return 256 * 1024 * 1024;
}
const MEMORY = memoryLimit();
const MEMORY_HIGH = { rss: Math.floor(MEMORY * 0.85), live: Math.floor(MEMORY * 0.45) };
let memorySeen = { at: 0, busy: false };
let collected = 0;
const over = (m) => m.rss > MEMORY_HIGH.rss || m.heapUsed + m.external > MEMORY_HIGH.live;
/** Whether the process is near its memory limit (measured at most every 100 ms). Past a mark, garbage is first
 * collected (node --expose-gc, at most once a second), so that what is counted is memory in use. */
function memoryBusy() {
  const now = Date.now();
  if (now - memorySeen.at >= 100) {
    let m = process.memoryUsage();
    if (over(m) && typeof global.gc === 'function' && now - collected >= 1000) {
      collected = now;
      global.gc();
      m = process.memoryUsage();
    }
    memorySeen = { at: now, busy: over(m) };
  }
  return memorySeen.busy;
}

/** The scope a pad's bytes count against, besides its own cap: nothing more for a public pad, its owner's quota
 * over all their pads for a private one. */
function scopeOf(name) {
  const m = /^private\/([^/]+)\//.exec(name);
  if (!m) return null;
  const user = m[1];
  const u = readUsers()[user];
  const quota = u && Number.isInteger(u.quotaMb) ? u.quotaMb * 1024 * 1024 : 0;
  const prefix = `private/${user}/`;
  const others = () => store.namesWith(prefix).reduce((s, n) => (n === name ? s : s + store.storedOf(n)), 0);
  return { user, quota, prefix, others };
}

const capOf = (name) => (name.startsWith('public/') ? LIMITS.publicMaxBytes : LIMITS.privateMaxBytes);

/** Whether the update `update` may be applied to the open pad `doc` (named `name`): 'ok', 'full' (a limit would
 * be passed: refused) or 'busy' (memory). Synchronous: checked and applied in one turn of the event loop. The
 * exact check (a scratch copy of the pad) is made only when the cheap bounds would pass a limit; `charge(bytes)`
 * bills its cost to the connection that caused it. */
function checkUpdate(name, doc, update, charge) {
  const st = store.stateOf(doc);
  if (!st || st.dead) return 'full';
  if (memoryBusy()) return 'busy';
  const n = update.length;
  const cap = capOf(name);
  const slack = slackOf(cap);
  const scope = scopeOf(name);
  const others = scope ? scope.others() : 0;
  const quota = scope ? scope.quota : Infinity;
  const rawOver = st.stored + n > cap + slack || others + st.stored + n > quota + slack;
  if (!rawOver && st.logical + n <= cap && others + st.logical + n <= quota) {
    touch(name);
    return 'ok';
  }
  // Exact: the pad's merged size once the update is applied.
  charge(st.logical + n);
  const exact = store.sizeAfter(doc, update);
  if (exact > cap) return 'full';
  let rest = others;
  if (scope && rest + exact > quota) {
    // The owner's other open pads may hold updates not yet compacted: compacted first, then counted again.
    for (const other of store.namesWith(scope.prefix)) {
      const open = other !== name && utils.docs.get(other);
      if (open && open.padStore && open.padStore.last > open.padStore.first) { charge(open.padStore.logical); store.compact(open); }
    }
    rest = scope.others();
    if (rest + exact > quota) return 'full';
  }
  if (rawOver) st.compactNext = true;
  st.exactNext = exact;
  touch(name);
  return 'ok';
}

module.exports = { LIMITS, DAY_MS, loadPublic, mayOpenPublic, opened, expireIdle, checkUpdate, memoryBusy, slackOf, capOf, removeDoc, publicNames, MEMORY, MEMORY_HIGH };
