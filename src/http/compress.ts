// Pages, the stylesheet and the charts' files sent compressed (brotli or gzip), as the budget of issue 13 asks
// (every page under 100 KB on the wire); docs/security.md, "Compression", says why in more words.
//
// Which answers: a text body already in memory (a string or a Buffer) of a page-like type, from 1 KiB. Never a stream:
// an export (send-export.ts) or a restic stream goes out as it is read, neither buffered nor compressed, by
// construction rather than by a list of routes to remember (@fastify/compress was not used for that reason: a type
// its filter does not name falls back to mime-db's "compressible", which says yes to application/x-tar). Never an
// answer with an ETag (the open data): its strong validator names these exact bytes and stays true.
//
// BREACH (compression as an oracle on a secret in a body that also reflects what an attacker sent): pages carry a
// CSRF token and reflect query text (`next`, form values). Compressed only when the browser says the request came
// from this very site or from the person (Sec-Fetch-Site `same-origin` or `none`: a typed address, a bookmark). The
// attack needs the victim's browser to send many requests of the attacker's making, and those say `cross-site` (or
// `same-site`, from a sibling host cattery does not trust either: cookies.ts), which a page cannot change (a
// forbidden header); a client that does not send it (an old browser, a script) gets plain bytes. Second layer: the
// CSRF token is masked, a new random salt in every answer (@fastify/csrf), so no two answers carry the same secret.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

/** Types worth compressing that cattery answers with from memory. JSON (the API) is left as it is: small answers, and
 * its clients are scripts. */
const TYPES = /^(text\/(html|css|csv|plain)|image\/svg\+xml)\s*(;|$)/i;
/** Below this, compression saves less than the headers it adds. */
const MIN_BYTES = 1024;
/** From the person's own browsing: see BREACH above. */
const OWN_SITE = new Set(['same-origin', 'none']);

/** 'br', 'gzip' or undefined (send as is), from Accept-Encoding (RFC 9110 §12.5.3): the accepted coding of highest
 * weight, brotli first among equals; a weight that cannot be read accepts nothing. */
export function pickEncoding(header: string | string[] | undefined): 'br' | 'gzip' | undefined {
  if (typeof header !== 'string' || header.length > 1024) return undefined;
  const weights = new Map<string, number>();
  for (const part of header.split(',')) {
    const [name, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (!name) continue;
    let q = 1;
    for (const p of params) if (p.startsWith('q=')) q = /^q=(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(p) ? Number(p.slice(2)) : 0;
    weights.set(name === 'x-gzip' ? 'gzip' : name, q);
  }
  const of = (c: string) => weights.get(c) ?? weights.get('*') ?? 0;
  const best = of('br') >= of('gzip') ? 'br' : 'gzip';
  // identity is acceptable unless refused; a client that ranks it above every coding gets it.
  const identity = weights.get('identity') ?? 0;
  return of(best) > 0 && of(best) >= identity ? best : undefined;
}

/** The onSend hook (app.ts): the payload compressed, or as it was. */
export async function compressReply(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
  if (!TYPES.test(String(reply.getHeader('content-type') ?? ''))) return payload;
  if (reply.getHeader('etag') !== undefined || reply.getHeader('content-encoding') !== undefined) return payload;
  if (reply.statusCode === 204 || reply.statusCode === 206 || reply.statusCode === 304 || req.method === 'HEAD') return payload;
  reply.header('vary', 'Accept-Encoding');
  const site = req.headers['sec-fetch-site'];
  if (typeof site !== 'string' || !OWN_SITE.has(site)) return payload;
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  if (body.length < MIN_BYTES) return payload;
  const coding = pickEncoding(req.headers['accept-encoding']);
  if (!coding) return payload;
  // Brotli at quality 5: within a few per cent of 11 on a page, for a small fraction of the time (the default 11
  // takes tens of milliseconds on a 50 KB page, on the request's path).
  const out = coding === 'br'
    ? await brotli(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } })
    : await gzip(body, { level: 6 });
  reply.header('content-encoding', coding).header('content-length', out.length);
  return out;
}
