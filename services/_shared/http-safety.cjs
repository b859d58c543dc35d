// What the Node-based services (files, pads) share so that no single request can stop them: request targets parsed
// without throwing, one JSON log line per event on stderr (the container's log), and a guard that turns a handler's
// failure into that request's 500. `cattery images build` copies this file into each service listing it in
// image.local.shared.
'use strict';

const MAX_TARGET = 8 * 1024;

/** The request target as a URL, or null when it is none a client may send us: origin-form ("/p?q") or absolute-form
 * with http(s) (RFC 9112 §3.2.2: a server must accept it), within MAX_TARGET characters. "*" (asterisk-form) and
 * authority-form (CONNECT) are refused here: no route takes them. */
function targetOf(raw) {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_TARGET) return null;
  let url;
  try {
    // A leading "//" is a path here, not a host: glued to a fixed origin it stays in the pathname.
    url = raw.startsWith('/') ? new URL(`http://target.invalid${raw}`) : new URL(raw);
  } catch { return null; }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
}

/** decodeURIComponent for each path segment, or null when one is not valid percent-encoded UTF-8 or decodes to NUL
 * or a slash (a segment must never become two, nor a C string end early). */
function decodedSegments(pathname) {
  const out = [];
  for (const seg of pathname.split('/')) {
    let d;
    try { d = decodeURIComponent(seg); } catch { return null; }
    if (d.includes('\0') || d.includes('/') || d.includes('\\')) return null;
    out.push(d);
  }
  return out;
}

function log(level, msg, err, extra) {
  const line = { level, time: new Date().toISOString(), msg, ...(extra || {}) };
  if (err) line.err = { message: String(err && err.message), stack: String(err && err.stack).split('\n').slice(0, 8).join('\n') };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

/** A handler's promise: its failure is logged and answered 500 (or the socket closed if the answer had begun). */
function guard(promise, res) {
  Promise.resolve(promise).catch((err) => {
    log('error', 'request failed', err);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('Erreur interne.\n');
    else res.destroy();
  });
}

/** Last resort, when every known path is already guarded: an error that escaped every handler means the process's
 * state can no longer be trusted, so it is logged and the process leaves (Docker's restart policy starts a clean
 * one) instead of carrying on. The fuzz test counts restarts, so such a path shows up as a failure there. */
function lastResort(server) {
  const die = (kind) => (err) => {
    log('fatal', `${kind}: exiting`, err);
    if (server) server.close();
    setTimeout(() => process.exit(70), 500).unref(); // EX_SOFTWARE
  };
  process.on('uncaughtException', die('uncaught exception'));
  process.on('unhandledRejection', die('unhandled rejection'));
}

module.exports = { targetOf, decodedSegments, log, guard, lastResort, MAX_TARGET };
