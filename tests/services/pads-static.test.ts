// The pads server's compressed answers (services/pads/static.cjs), on a real HTTP server on loopback: for any
// Accept-Encoding a client may send (generated, well-formed or not), the answer is in a coding the client accepts
// (or none), decodes to exactly the bundle's bytes, says `Vary: Accept-Encoding`, and a revalidation with the ETag it
// got is a 304. The same module serves the real instance (tests/services/pads-browser.test.ts checks it there).
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';
import t from 'tap';
import fc from 'fast-check';

type Rep = { bytes: Buffer; etag: string };
type Asset = { identity: Rep; gzip: Rep; br: Rep; version: string };
const staticAsset = createRequire(import.meta.url)('../../services/pads/static.cjs') as {
  negotiate(h: unknown): 'br' | 'gzip' | 'identity';
  precompress(b: Buffer): Asset;
  sendAsset(req: http.IncomingMessage, res: http.ServerResponse, a: Asset, h: Record<string, string>): void;
  sendPage(req: http.IncomingMessage, res: http.ServerResponse, html: string, h: Record<string, string>): void;
};

// A body that compresses like a script (repeated words) with some noise, so each coding gives different bytes.
const BODY = Buffer.concat([Buffer.from('const editor = () => view.dispatch(state);\n'.repeat(2000)), crypto.randomBytes(4096)]);
const PAGE = '<!doctype html><html lang="fr"><title>Pad « été »</title><p>Ce pad est à vous.</p></html>';

/** The weight a header gives a coding, read independently of the module (RFC 9110 §12.5.3), or undefined. */
function weightIn(header: string, coding: string): number | undefined {
  let star: number | undefined;
  let found: number | undefined;
  for (const part of header.split(',')) {
    const [name, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const w = q === undefined ? 1 : /^q=(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(q) ? Number(q.slice(2)) : 0;
    if (name === coding || (coding === 'gzip' && name === 'x-gzip')) found = w;
    if (name === '*') star = w;
  }
  return found ?? star;
}

function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const decode = (coding: string | undefined, b: Buffer) => coding === 'br' ? zlib.brotliDecompressSync(b) : coding === 'gzip' ? zlib.gunzipSync(b) : b;

t.test('the editor bundle and the page, compressed as each client accepts', async (t) => {
  const asset = staticAsset.precompress(BODY);
  const server = http.createServer((req, res) => {
    if (req.url === '/page') staticAsset.sendPage(req, res, PAGE, { 'content-type': 'text/html; charset=utf-8' });
    else staticAsset.sendAsset(req, res, asset, { 'content-type': 'text/javascript', 'cache-control': 'no-cache' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;

  t.ok(asset.br.bytes.length < asset.gzip.bytes.length && asset.gzip.bytes.length < BODY.length / 4, 'brotli < gzip < a quarter of the bytes');
  t.equal(new Set([asset.identity.etag, asset.gzip.etag, asset.br.etag]).size, 3, 'one strong ETag per representation');

  const plain = await get(port, '/', {});
  t.equal(plain.headers['content-encoding'], undefined, 'no Accept-Encoding: the plain bytes');
  t.ok(plain.body.equals(BODY));
  t.equal(plain.headers.vary, 'Accept-Encoding');
  t.equal(plain.headers.etag, asset.identity.etag);
  t.equal(plain.headers['content-length'], String(BODY.length));
  t.equal((await get(port, '/', { 'accept-encoding': 'gzip, deflate, br, zstd' })).headers['content-encoding'], 'br', 'what Chromium sends: brotli');
  t.equal((await get(port, '/', { 'accept-encoding': 'gzip, deflate' })).headers['content-encoding'], 'gzip');
  t.equal((await get(port, '/', { 'accept-encoding': 'br;q=0, gzip' })).headers['content-encoding'], 'gzip', 'a refused coding is never sent');
  t.equal((await get(port, '/', { 'accept-encoding': 'compress, zstd' })).headers['content-encoding'], undefined, 'only unknown codings: plain');
  t.equal((await get(port, '/', { 'accept-encoding': 'identity, gzip;q=0.5' })).headers['content-encoding'], undefined, 'identity preferred: plain');
  t.equal((await get(port, '/', { 'accept-encoding': '*' })).headers['content-encoding'], 'br');
  t.equal((await get(port, '/', { 'accept-encoding': 'gzip;q=abc' })).headers['content-encoding'], undefined, 'an unreadable weight accepts nothing');

  // Any header at all: a coding the client accepts (or none), byte-exact once decoded, never a failure.
  const token = fc.constantFrom('br', 'gzip', 'x-gzip', 'GZIP', 'Br', 'deflate', 'zstd', 'identity', '*', 'compress', '');
  const param = fc.oneof(fc.constant(''), fc.constantFrom(';q=0', ';q=1', ';q=0.5', ';q=0.001', ';q=1.0', ' ; q=0.9', ';q=2', ';q=-1', ';level=1'));
  const structured = fc.array(fc.tuple(token, param).map(([a, b]) => a + b), { maxLength: 6 }).map((xs) => xs.join(', '));
  const anything = fc.string({ maxLength: 60 }).map((s) => s.replace(/[\r\n\0]/g, ''));
  await fc.assert(fc.asyncProperty(fc.oneof(structured, anything), async (ae) => {
    const r = await get(port, '/', { 'accept-encoding': ae });
    const coding = r.headers['content-encoding'];
    if (r.status !== 200) throw new Error(`${r.status} for ${JSON.stringify(ae)}`);
    if (coding !== undefined && !((weightIn(ae, coding) ?? 0) > 0)) throw new Error(`${coding} sent for ${JSON.stringify(ae)}`);
    if (!decode(coding, r.body).equals(BODY)) throw new Error(`not the bundle's bytes for ${JSON.stringify(ae)}`);
    if (r.headers.vary !== 'Accept-Encoding') throw new Error('no Vary');
    if (r.headers.etag !== asset[(coding ?? 'identity') as 'br'].etag) throw new Error('the ETag is not this representation\'s');
    return true;
  }), { numRuns: 200 });
  t.pass('200 generated Accept-Encoding headers: accepted coding, exact bytes');

  // Revalidation: the ETag a client got gives a 304 with no body, whatever its coding; a stale one the full answer.
  for (const ae of ['br', 'gzip', '']) {
    const first = await get(port, '/', { 'accept-encoding': ae });
    const again = await get(port, '/', { 'accept-encoding': ae, 'if-none-match': first.headers.etag! });
    t.equal(again.status, 304, `304 for ${ae || 'identity'}`);
    t.equal(again.body.length, 0);
    t.equal(again.headers.etag, first.headers.etag);
    t.equal(again.headers.vary, 'Accept-Encoding');
    t.equal((await get(port, '/', { 'accept-encoding': ae, 'if-none-match': `W/${first.headers.etag}, "other"` })).status, 304, 'weak comparison, in a list');
  }
  t.equal((await get(port, '/', { 'accept-encoding': 'br', 'if-none-match': '"stale"' })).status, 200, 'another ETag: the bundle');
  t.equal((await get(port, '/', { 'if-none-match': '*' })).status, 304, '*: the client has it');

  // The page, compressed per request, decodes to itself.
  for (const ae of ['br', 'gzip', 'compress', '']) {
    const r = await get(port, '/page', ae ? { 'accept-encoding': ae } : {});
    t.equal(decode(r.headers['content-encoding'], r.body).toString('utf8'), PAGE, `the page, ${r.headers['content-encoding'] ?? 'plain'}`);
    t.equal(r.headers.vary, 'Accept-Encoding');
  }
});
