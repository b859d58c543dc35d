// The import account operation, server side: an account's private pads replaced by those of an archive that this
// service's own export wrote (`<user>/` then `<user>/<pad>.md` and `<user>/<pad>.yjs` per pad; tar.cjs). The whole
// archive is read and checked before anything is written, then store.replace writes it in one LevelDB batch: a
// refused archive, a failure or a crash leaves the account's pads as they were. Each pad comes back from its Yjs
// state (the Markdown is for people; it is checked for its place and size only).
//
// Refused, as a whole: a member outside that layout (another folder, `..`, an absolute name, a name that is not a
// valid pad), another account's folder, anything but regular files and the account's folder (links, devices,
// FIFOs…), a malformed or truncated archive, a Yjs state that does not decode whole, a pad larger than one private
// pad may be (PADS_PRIVATE_MAX_KB), pads together larger than the account's quota (quotaMb > 0) or than the hard
// caps below, an account that does not exist.
'use strict';
const Y = require('yjs');
const { readUsers, entryOf, validUsername } = require('./accounts-store.cjs');
const limits = require('./limits.cjs');
const store = require('./store.cjs');
const { tarReader, TarError } = require('./tar.cjs');

const MiB = 1024 * 1024;
// The pads' states are held in memory until they are written (one batch): their sum is capped whatever the quota,
// at a quarter of the container's memory (256 MB by default: 64 MB). The archive also carries each pad's Markdown
// (at most the text, which the state holds too) and tar's headers: twice the states and a margin bound it.
const HARD = Object.freeze({
  stateBytes: Math.floor(limits.MEMORY / 4),
  archiveBytes: 2 * Math.floor(limits.MEMORY / 4) + 4 * MiB,
});
const PAD = /^[A-Za-z0-9_-]{1,64}$/;

class Refused extends Error {
  constructor(message, status = 422) { super(message); this.status = status; }
}

/** A pad's Yjs state, decoded into a scratch document and encoded again (what is stored is what Yjs made of it). */
function decodePad(pad, bytes) {
  const doc = new Y.Doc();
  try {
    try { Y.applyUpdate(doc, bytes); } catch { throw new Refused(`${pad}.yjs is not a Yjs state`); }
    if (doc.store.pendingStructs || doc.store.pendingDs) throw new Refused(`${pad}.yjs is not a whole Yjs state`);
    return Y.encodeStateAsUpdate(doc);
  } finally { doc.destroy(); }
}

/** Whether member `name` of type `type` has a place in `user`'s export; throws Refused otherwise. Returns null for
 * the account's folder, else { pad, ext }. */
function placeOf(user, name, type) {
  if (name.startsWith('/')) throw new Refused(`absolute member name: ${JSON.stringify(name)}`);
  if (name.split('/').includes('..')) throw new Refused(`member name leaves the archive: ${JSON.stringify(name)}`);
  if (type === '1' || type === '2') throw new Refused(`links are refused: ${JSON.stringify(name)}`);
  if (type === '3' || type === '4' || type === '6') throw new Refused(`devices and FIFOs are refused: ${JSON.stringify(name)}`);
  if (type !== '0' && type !== '5') throw new Refused(`member type ${JSON.stringify(type)} is not in an export: ${JSON.stringify(name)}`);
  const top = name.split('/')[0];
  if (top !== user) {
    throw new Refused(validUsername(top) ? `member of another account: ${JSON.stringify(name)}` : `member outside the export's layout: ${JSON.stringify(name)}`);
  }
  if (type === '5') {
    if (name !== `${user}/`) throw new Refused(`folder outside the export's layout: ${JSON.stringify(name)}`);
    return null;
  }
  const m = /^([^/]+)\.(md|yjs)$/.exec(name.slice(user.length + 1));
  if (!m || !PAD.test(m[1])) throw new Refused(`member outside the export's layout (not <pad>.md or <pad>.yjs): ${JSON.stringify(name)}`);
  return { pad: m[1], ext: m[2] };
}

/** Read `user`'s archive from `body` (a readable stream), check it whole, then replace the account's pads. */
async function importAccount(user, quotaMb, body) {
  if (!validUsername(user) || !entryOf(readUsers(), user)) throw new Refused('no such account', 404);
  if (limits.memoryBusy()) throw new Refused('the pads server is near its memory limit: try again later', 503);
  const perPad = limits.LIMITS.privateMaxBytes;
  const quota = quotaMb > 0 ? quotaMb * MiB : Infinity;
  const reader = tarReader({ maxMember: perPad + limits.slackOf(perPad) });
  const states = new Map();
  const markdown = new Set();
  let archive = 0;
  let stored = 0;
  const take = (e) => {
    const place = placeOf(user, e.name, e.type);
    if (!place) return;
    const { pad, ext } = place;
    if (ext === 'md') {
      if (markdown.has(pad)) throw new Refused(`${pad}.md appears twice`);
      markdown.add(pad);
      return;
    }
    if (states.has(pad)) throw new Refused(`${pad}.yjs appears twice`);
    const state = decodePad(pad, e.body);
    if (state.length > perPad) throw new Refused(`pad ${pad} (${state.length} bytes) is larger than a private pad may be (${perPad})`);
    stored += state.length;
    if (stored > quota) throw new Refused(`the pads (${stored} bytes and more) pass the account's quota (${quotaMb} MB)`);
    if (stored > HARD.stateBytes) throw new Refused(`the pads pass the import's cap (${HARD.stateBytes} bytes)`);
    states.set(pad, state);
  };
  // Events rather than `for await`, whose early exit would destroy the request before its refusal is answered.
  await new Promise((resolve, reject) => {
    const stop = (err) => {
      body.off('data', onData); body.off('end', onEnd); body.off('close', onClose);
      reject(err instanceof TarError ? new Refused(err.message) : err);
    };
    const onData = (chunk) => {
      try {
        archive += chunk.length;
        if (archive > HARD.archiveBytes) throw new Refused(`the archive passes the import's cap (${HARD.archiveBytes} bytes)`);
        for (const e of reader.push(chunk)) take(e);
      } catch (err) { stop(err); }
    };
    const onEnd = () => { try { reader.end(); resolve(); } catch (err) { stop(err); } };
    const onClose = () => stop(new Refused('the archive was cut', 400));
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('close', onClose);
    body.on('error', () => undefined);
  });
  for (const pad of markdown) if (!states.has(pad)) throw new Refused(`${pad}.md has no ${pad}.yjs beside it`);
  // The account may have gone while the archive was read.
  if (!entryOf(readUsers(), user)) throw new Refused('no such account', 404);
  const prefix = `private/${user}/`;
  await store.replace(prefix, new Map([...states].map(([pad, state]) => [prefix + pad, state])));
  return { pads: states.size, bytes: stored };
}

module.exports = { importAccount, Refused, HARD };
