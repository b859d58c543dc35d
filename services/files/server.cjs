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
const { ROOT, readUsers, parseBasic, verifyCredential, usageOf, validUsername } = require('./accounts-store.cjs');
const { targetOf, decodedSegments, log, lastResort } = require('./http-safety.cjs');

const ANONYMOUS = { uid: '', username: '', isDefaultUser: true };
// webdav-server reads the body of every method but PUT into one buffer of Content-Length bytes: XML requests only.
const MAX_XML_BODY = 1024 * 1024;
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

const quotaOf = (user) => { const a = validUsername(user) ? readUsers()[user] : undefined; return a ? a.quotaMb * 1024 * 1024 : null; };
const sizeOf = (p) => { try { const st = fs.statSync(p); return st.isDirectory() ? usageOf(p).bytes : st.size; } catch { return 0; } };

// Bytes being written right now, per account, by streams not yet finished: two uploads at once share one quota.
const writing = new Map();

/** Each write stream counts what passes through it against the owner's quota, measured when the file was opened;
 * past it the stream fails with InsufficientStorage (507) and the partial file is removed. */
class QuotaFileSystem extends webdav.PhysicalFileSystem {
  _openWriteStream(p, ctx, callback) {
    const user = owner(p.toString());
    const quota = quotaOf(user);
    super._openWriteStream(p, ctx, (e, file) => {
      if (e || quota === null) return callback(e, file);
      const realPath = this.getRealPath(p).realPath;
      const mine = writing.get(user) || new Set();
      writing.set(user, mine);
      const writtenBy = (key) => [...mine].reduce((s, x) => s + x[key], 0);
      // `base`: the space without the streams still writing (this file was just truncated). What they have put on
      // disk is taken out and counted through their `written` instead; `flushed` only counts writes already on disk,
      // so the base errs on the large side. A stream that ends hands its bytes to the others' base.
      const base = usageOf(path.join(ROOT, user)).bytes - writtenBy('flushed');
      const counter = new Writable({
        write(chunk, _enc, done) {
          counter.written += chunk.length;
          if (counter.base + writtenBy('written') > quota) return done(webdav.Errors.InsufficientStorage);
          if (file.write(chunk, (err) => { if (!err) counter.flushed += chunk.length; })) done(); else file.once('drain', () => done());
        },
        // webdav-server answers on this stream's 'finish': only once the file itself is complete on disk.
        final(done) { file.end(() => done()); },
      });
      counter.written = 0;
      counter.flushed = 0;
      counter.base = base;
      mine.add(counter);
      const finish = (kept) => {
        if (!mine.delete(counter)) return;
        if (kept) for (const x of mine) x.base += counter.written;
        if (mine.size === 0) writing.delete(user);
      };
      counter.on('finish', () => finish(true));
      counter.on('error', () => {
        finish(false);
        file.destroy();
        fs.rm(realPath, { force: true }, () => undefined);
        delete this.resources[p.toString()];
      });
      file.on('error', (err) => counter.destroy(err));
      callback(null, counter);
    });
  }
}

const dav = new webdav.WebDAVServer({
  requireAuthentification: true,
  httpAuthentication: authentication,
  privilegeManager: new OwnSpacePrivileges(),
  rootFileSystem: new QuotaFileSystem(ROOT),
  maxRequestDepth: 10,
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

/** Quota checks that can be decided before anything is written: a PUT that declares its length, and COPY or MOVE
 * of a tree into a space (MOVE inside one space changes nothing). */
dav.beforeRequest((ctx, next) => {
  const { method, headers } = ctx.request;
  const segs = decodedSegments(targetOf(ctx.request.url).pathname).filter(Boolean);
  let target = segs; let added = 0;
  if (method === 'PUT' && headers['content-length'] !== undefined) {
    added = Number(headers['content-length']) - sizeOf(path.join(ROOT, ...segs));
  } else if (method === 'COPY' || method === 'MOVE') {
    target = destinationOf(headers.destination).filter(Boolean);
    if (method === 'COPY' || target[0] !== segs[0]) added = sizeOf(path.join(ROOT, ...segs));
  } else return next();
  const quota = quotaOf(target[0]);
  if (quota === null || added <= 0) return next(); // authentication and privileges answer the others
  if (usageOf(path.join(ROOT, target[0])).bytes + added > quota) { ctx.setCode(507); return ctx.exit(); }
  next();
});

const server = http.createServer({ requestTimeout: 0, headersTimeout: 15_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
  const problem = checkRequest(req);
  if (problem) {
    res.writeHead(problem[0], { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end(`Requête refusée : ${problem[1]}.\n`);
    return;
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
