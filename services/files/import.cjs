// The import operation of the files adapter: stdin is one line of JSON ({"username","quotaMb"}) then a tar stream
// laid out as export writes it (<user>/...); the account's space becomes exactly the archive's, whole or not at all.
//
// 1. The archive is stored in a staging folder on the volume, ROOT/.import-<user>@<pid>-<random> (a username never
//    holds "@" nor starts with ".": never a space, never another account's staging; the pid tells a leftover of a
//    crashed import from one under way).
// 2. GNU tar lists it (-tvR, names quoted C-style: one member, one line): every member must be a regular file or a
//    folder named <user>/..., or the folder <user>, without an empty, "." or ".." segment; the list must end with tar's
//    end-of-archive blocks (a tar cut at a member boundary is otherwise a shorter valid one); members and sizes
//    within the service's entry cap, the quota and a hard cap.
// 3. The same tar then extracts it into an empty folder (one parser: the list and the extraction cannot disagree),
//    with options that keep none of the archive's owners and modes; what came out is checked again (only files and
//    folders, no hard link, nothing but <user> at the top) and measured as the server measures a space.
// 4. Modes become what the server's own writes get (0666/0777 less the umask), the owner the volume's.
// 5. Under the accounts lock: the account must still exist; the live folder is renamed into the staging folder
//    and the new one into its place (rolled back if the second rename fails); the account's entry gets a new
//    `dataGen`, so the server drops what it kept about the old tree (usage, dead properties, locks). The old tree
//    goes with the staging folder. A crash between the two renames leaves the live folder missing and `old` in a
//    staging folder: the account's next import puts it back before removing the leftover.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const readline = require('node:readline');
const { ROOT, withLock, entryOf, readUsers, usageOf, validUsername } = require('./accounts-store.cjs');

const MB = 1024 * 1024;
// The volume is 20 GiB (service.json), and an import needs the archive and its extraction side by side.
const HARD_CAP = 8 * 1024 * MB;
// The server's own cap on entries in one space (server.cjs reads the same variable).
const MAX_ENTRIES = (() => { const v = Number(process.env.FILES_MAX_ENTRIES); return Number.isInteger(v) && v > 0 ? v : 20_000; })();
const HEADER_MAX = 4096;

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

/** The first line of `stream`, and whatever came after it in the same reads. */
async function readHeader(stream) {
  let buf = Buffer.alloc(0);
  for (;;) {
    const c = stream.read();
    if (c === null) {
      if (stream.readableEnded) return { line: buf.toString('utf8'), rest: Buffer.alloc(0) };
      await new Promise((resolve) => { stream.once('readable', resolve); stream.once('end', resolve); });
      continue;
    }
    buf = Buffer.concat([buf, c]);
    const nl = buf.indexOf(10);
    if (nl >= 0) return { line: buf.subarray(0, nl).toString('utf8'), rest: buf.subarray(nl + 1) };
    if (buf.length > HEADER_MAX) throw new Error('the first line (JSON) is too long');
  }
}

/** The rest of stdin into `file`, `limit` bytes at most. */
async function receive(stream, rest, file, limit) {
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    let bytes = 0;
    const write = (c) => {
      bytes += c.length;
      if (bytes > limit) throw new Error(`the archive is larger than ${limit} bytes`);
      fs.writeSync(fd, c);
    };
    write(rest);
    for await (const c of stream) write(c);
  } finally { fs.closeSync(fd); }
}

function run(argv, onLine) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => { err = (err + c).slice(-300); });
    let lineErr = null;
    if (onLine) {
      readline.createInterface({ input: child.stdout }).on('line', (l) => {
        if (lineErr) return;
        try { onLine(l); } catch (e) { lineErr = e; child.kill(); }
      });
    } else child.stdout.resume();
    child.on('error', reject);
    child.on('close', (code) => {
      if (lineErr) reject(lineErr);
      else if (code !== 0) reject(new Error(`${onLine ? 'not a readable tar archive' : 'the archive could not be extracted'}: ${err.replace(/\s+/g, ' ').trim()}`));
      else resolve();
    });
  });
}

const refuse = (why) => { throw new Error(`refused archive: ${why}`); };
// block N: <type><perms> <uid/gid> <size> <date> <time> "<name, C-quoted>"
const MEMBER = /^block \d+: ([-d])\S* +\S+ +(\d+) +\S+ +\S+ +"((?:[^"\\]|\\.)*)"$/;
const END = /^block \d+: \*\* Block of NULs \*\*$/;

/** Checks every line of the listing; the members and their bytes. */
async function list(archive, user) {
  let members = 0; let bytes = 0; let ended = false;
  await run(['tar', '-tvPR', '--numeric-owner', '--quoting-style=c', '-f', archive], (line) => {
    if (ended) refuse('data after the end of the archive');
    if (END.test(line)) { ended = true; return; }
    const m = MEMBER.exec(line);
    if (!m) refuse(`not a regular file or folder (${line.slice(0, 120)})`);
    const [, type, size, quoted] = m;
    const name = type === 'd' ? quoted.replace(/\/$/, '') : quoted;
    const segs = name.split('/');
    if (segs[0] !== user) refuse(`outside the account (${quoted.slice(0, 120)})`);
    if (segs.length === 1 && type !== 'd') refuse('the account itself is not a folder');
    if (segs.slice(1).some((s) => s === '' || s === '.' || s === '..')) refuse(`not a plain path (${quoted.slice(0, 120)})`);
    members += 1;
    if (type === '-') bytes += Number(size);
    if (members > MAX_ENTRIES + 1) refuse(`more than ${MAX_ENTRIES} entries`);
    if (bytes > HARD_CAP) refuse(`more than ${HARD_CAP} bytes`);
  });
  if (!ended) refuse('the archive ends before its end-of-archive blocks (truncated?)');
  if (members === 0) refuse('the archive is empty');
  return { members, bytes };
}

/** Only files (one link each) and folders below `dir`; their modes set to what the server's writes get. */
function settle(dir, owner) {
  const mask = process.umask();
  const fix = (p, st) => {
    if (owner && (st.uid !== owner.uid || st.gid !== owner.gid)) fs.lchownSync(p, owner.uid, owner.gid);
    fs.chmodSync(p, (st.isDirectory() ? 0o777 : 0o666) & ~mask);
  };
  const walk = (d) => {
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) { walk(p); fix(p, st); } else if (st.isFile() && st.nlink === 1) fix(p, st);
      else refuse('not only files and folders');
    }
  };
  walk(dir);
  fix(dir, fs.lstatSync(dir));
}

const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; } };

/** Leftovers of this account's crashed imports: a live folder they had moved aside is put back, then they go. */
function sweep(user, live) {
  const prefix = `.import-${user}@`;
  for (const name of fs.readdirSync(ROOT)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) continue;
    const dir = path.join(ROOT, name);
    if (!fs.existsSync(live) && fs.existsSync(path.join(dir, 'old'))) fs.renameSync(path.join(dir, 'old'), live);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function importOperation() {
  let stage = null;
  try {
    const { line, rest } = await readHeader(process.stdin);
    let req;
    try { req = JSON.parse(line); } catch { throw new Error('input is not JSON'); }
    if (!req || typeof req !== 'object' || !validUsername(req.username)) throw new Error('invalid username');
    const user = req.username;
    const quotaMb = req.quotaMb;
    if (!Number.isInteger(quotaMb) || quotaMb < 0) throw new Error('invalid quotaMb');
    if (!entryOf(readUsers(), user)) throw new Error('no such account');
    const live = path.join(ROOT, user);
    sweep(user, live);
    stage = path.join(ROOT, `.import-${user}@${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
    fs.mkdirSync(stage, { mode: 0o700 });

    // The archive may be larger than what it unpacks to (512 bytes of header per member, data padded to 512): twice
    // the quota and 64 MiB, within the cap.
    const quota = quotaMb > 0 ? quotaMb * MB : null;
    const archive = path.join(stage, 'archive.tar');
    await receive(process.stdin, rest, archive, Math.min(HARD_CAP, quota === null ? HARD_CAP : 2 * quota + 64 * MB));
    const { bytes } = await list(archive, user);
    if (quota !== null && bytes > quota) refuse(`${bytes} bytes, above the quota of ${quotaMb} MB`);

    const tree = path.join(stage, 'tree');
    fs.mkdirSync(tree, { mode: 0o700 });
    await run(['tar', '-xf', archive, '-C', tree, '--no-same-owner', '--no-same-permissions', '--no-overwrite-dir', '--no-xattrs', '--no-acls', '--no-selinux']);
    fs.rmSync(archive);
    const top = fs.readdirSync(tree);
    if (top.length !== 1 || top[0] !== user) refuse(`something beside ${user}`);
    const fresh = path.join(tree, user);
    if (!fs.lstatSync(fresh).isDirectory()) refuse(`no ${user} folder`);
    const root = fs.statSync(ROOT);
    settle(fresh, process.getuid() === 0 ? { uid: root.uid, gid: root.gid } : null);
    // The server's own measure (blocks and a charge per entry) against the quota, as its writes are admitted.
    const used = usageOf(fresh);
    if (quota !== null && used.bytes > quota) refuse(`it takes ${used.bytes} bytes on disk, above the quota of ${quotaMb} MB`);
    if (used.entries > MAX_ENTRIES) refuse(`more than ${MAX_ENTRIES} entries`);

    withLock((users) => {
      const entry = entryOf(users, user);
      if (!entry) throw new Error('no such account');
      const aside = path.join(stage, 'old');
      const had = fs.existsSync(live);
      if (had) fs.renameSync(live, aside);
      try { fs.renameSync(fresh, live); } catch (err) { if (had) fs.renameSync(aside, live); throw err; }
      entry.dataGen = crypto.randomBytes(8).toString('hex');
    });
    out({ ok: true });
  } catch (err) {
    out({ ok: false, error: err.message });
    process.exitCode = 1;
  } finally {
    if (stage) fs.rmSync(stage, { recursive: true, force: true });
  }
  // Whatever of stdin a refusal left unread must not keep the process waiting.
  process.exit(process.exitCode ?? 0);
}

module.exports = { importOperation };
