// WebDAV for residents: one space per account at /<username>/, HTTP Basic authentication against the account store,
// a per-account quota checked before every upload. Built on webdav-server (v2) because Apache's and nginx's WebDAV
// modules have no per-user quota.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const webdav = require('webdav-server').v2;
const { ROOT, readUsers, checkPassword, usageOf, validUsername } = require('./accounts-store.cjs');

const ANONYMOUS = { uid: '', username: '', isDefaultUser: true };

const userManager = {
  getDefaultUser(cb) { cb(ANONYMOUS); },
  getUserByNamePassword(name, password, cb) {
    const u = validUsername(name) ? readUsers()[name] : undefined;
    if (!u || u.suspended || !checkPassword(u.hash, password)) return cb(webdav.Errors.UserNotFound);
    cb(null, { uid: name, username: name });
  },
};

/** The first segment of a path names whose space it is; a resident reaches only their own. */
function owner(p) {
  const first = String(p).split('/').filter(Boolean)[0];
  return first ? decodeURIComponent(first) : '';
}

class OwnSpacePrivileges extends webdav.PrivilegeManager {
  _can(fullPath, user, _resource, _privilege, cb) {
    cb(null, Boolean(user && !user.isDefaultUser && validUsername(user.username) && owner(fullPath.toString()) === user.username));
  }
}

const server = new webdav.WebDAVServer({
  port: Number(process.env.PORT || 8080),
  hostname: '0.0.0.0',
  requireAuthentification: true,
  httpAuthentication: new webdav.HTTPBasicAuthentication(userManager, 'cattery files'),
  privilegeManager: new OwnSpacePrivileges(),
  rootFileSystem: new webdav.PhysicalFileSystem(ROOT),
  maxRequestDepth: 10,
});

server.beforeRequest((ctx, next) => {
  const { method, headers, url } = ctx.request;
  if (method !== 'PUT') return next();
  const user = owner(new URL(url, 'http://x').pathname);
  const account = validUsername(user) ? readUsers()[user] : undefined;
  if (!account) return next(); // authentication and privileges answer this one
  const length = Number(headers['content-length']);
  if (!Number.isFinite(length)) { ctx.setCode(411); return ctx.exit(); }
  const used = usageOf(path.join(ROOT, user)).bytes;
  if (used + length > account.quotaMb * 1024 * 1024) { ctx.setCode(507); return ctx.exit(); }
  next();
});

fs.mkdirSync(ROOT, { recursive: true });
server.start(() => process.stdout.write(`files: WebDAV on port ${server.options.port}\n`));
process.on('SIGTERM', () => server.stop(() => process.exit(0)));
