// The editor's script and page, sent compressed: the bundle is compressed once at start (brotli and gzip, both in
// Node's zlib), each answer picks what the client accepts (RFC 9110 §12.5.3), says so (`Vary: Accept-Encoding`), and
// carries a strong ETag per representation (its bytes differ by coding) so that a revalidation costs a 304.
// Nothing here throws on what a client sends: a header it cannot read counts as not sent.
'use strict';
const crypto = require('node:crypto');
const zlib = require('node:zlib');

// Our preference among codings a client accepts equally: brotli is ~12 % smaller than gzip on the bundle.
const CODINGS = ['br', 'gzip'];

/** Which coding to send for this Accept-Encoding: 'br', 'gzip' or 'identity'. No header means any coding is fine
 * (RFC 9110 §12.5.3), but a client that says nothing may not decode either: it gets the plain bytes. */
function negotiate(header) {
  if (typeof header !== 'string' || header.length > 1024) return 'identity';
  const q = new Map();
  for (const part of header.split(',')) {
    const [name, ...params] = part.split(';').map((s) => s.trim());
    if (!name || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$/i.exec(p);
      if (/^q=/i.test(p)) weight = m ? Number(m[1]) : 0; // an unreadable weight accepts nothing
    }
    const key = name.toLowerCase();
    // x-gzip is gzip's old name (RFC 9110 §8.4.1.3).
    q.set(key === 'x-gzip' ? 'gzip' : key, weight);
  }
  const star = q.get('*');
  const weightOf = (c) => q.get(c) ?? star ?? 0;
  let best = 'identity', bestQ = 0;
  for (const c of CODINGS) if (weightOf(c) > bestQ) { best = c; bestQ = weightOf(c); }
  // identity is acceptable unless refused outright; it wins only when the client ranks it above the others.
  const identityQ = q.get('identity') ?? (star === 0 ? 0 : 1e-3);
  return bestQ > 0 && bestQ >= identityQ ? best : 'identity';
}

/** A body in its three representations, each with its strong ETag (a hash of its own bytes). */
function precompress(body) {
  const reps = {
    identity: body,
    gzip: zlib.gzipSync(body, { level: 9 }),
    br: zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } }),
  };
  const out = {};
  for (const [coding, bytes] of Object.entries(reps)) {
    out[coding] = { bytes, etag: `"${crypto.createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"` };
  }
  // The name of the versioned URL: the content's own hash, so a new bundle has a new address.
  out.version = crypto.createHash('sha256').update(body).digest('hex').slice(0, 16);
  return out;
}

/** Whether If-None-Match names one of these tags (weak comparison, RFC 9110 §13.1.2), and which. */
function matchingTag(header, tags) {
  if (typeof header !== 'string' || header.length > 4096) return undefined;
  if (header.trim() === '*') return tags[0];
  for (const raw of header.split(',')) {
    const tag = raw.trim().replace(/^W\//, '');
    if (tags.includes(tag)) return tag;
  }
  return undefined;
}

/** Send a precompressed asset (GET or HEAD), or 304 when the client already holds a current one. */
function sendAsset(req, res, asset, headers) {
  const coding = negotiate(req.headers['accept-encoding']);
  const rep = asset[coding];
  const common = { vary: 'Accept-Encoding', ...headers };
  const held = matchingTag(req.headers['if-none-match'], [rep.etag, ...['identity', ...CODINGS].map((c) => asset[c].etag)]);
  if (held) {
    res.writeHead(304, { ...common, etag: held }).end();
    return;
  }
  res.writeHead(200, {
    ...common, etag: rep.etag, 'content-length': rep.bytes.length,
    ...(coding === 'identity' ? {} : { 'content-encoding': coding }),
  });
  res.end(req.method === 'HEAD' ? undefined : rep.bytes);
}

/** A small page made per request (it names the pad), compressed as the client accepts. Brotli at quality 5: a page of
 * a kilobyte compresses as well as at 11, for a tenth of the time. */
function sendPage(req, res, html, headers) {
  const coding = negotiate(req.headers['accept-encoding']);
  const body = Buffer.from(html, 'utf8');
  const bytes = coding === 'br' ? zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } })
    : coding === 'gzip' ? zlib.gzipSync(body) : body;
  res.writeHead(200, { vary: 'Accept-Encoding', ...headers, 'content-length': bytes.length, ...(coding === 'identity' ? {} : { 'content-encoding': coding }) });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

module.exports = { negotiate, precompress, matchingTag, sendAsset, sendPage };
