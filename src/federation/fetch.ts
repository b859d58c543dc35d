// Fetching a peer's signed documents over HTTPS, bounded: only https (a document is signed, but the fetch still
// must not tell an on-path observer or a rewriting proxy anything they could use, and TLS is what ties the URL the
// administrator typed to the server that answers on first contact), the certificate verified against the system's
// CAs plus, when configured, one more (CATTERY_PEER_CA; verification is never turned off), a deadline for the whole
// exchange, a size cap, and at most a few redirects, each to https again.
import https from 'node:https';
import tls from 'node:tls';
import { fail } from '../errors.js';
import { MAX_JWS_BYTES } from './jws.js';

export interface FetchOptions {
  /** PEM certificates trusted beside the system's (CATTERY_PEER_CA). */
  extraCa?: string;
  timeoutMs?: number;
  maxBytes?: number;
  maxRedirects?: number;
}

const unreachable = (why: string, cause?: unknown) => fail('CATTERY_ERR_PEER_UNREACHABLE', why, cause);

/** A peer's address as the administrator gives it, reduced to its origin: https, no credentials, no path, query or
 * fragment (the document is always at the origin's /.well-known/cattery). */
export function peerOrigin(input: string): string {
  let u: URL;
  try { u = new URL(input.trim()); } catch { throw fail('CATTERY_ERR_VALIDATION', 'not a URL'); }
  if (u.protocol !== 'https:') throw fail('CATTERY_ERR_VALIDATION', 'a peer is reached over https only');
  if (u.username || u.password || u.search || u.hash || (u.pathname !== '/' && u.pathname !== '')) {
    throw fail('CATTERY_ERR_VALIDATION', 'give the peer\'s address alone (https://host), without path, query or credentials');
  }
  return u.origin;
}

export async function fetchSigned(url: string, o: FetchOptions = {}): Promise<{ body: string; contentType: string }> {
  const maxBytes = o.maxBytes ?? MAX_JWS_BYTES;
  const deadline = Date.now() + (o.timeoutMs ?? 10_000);
  const ca = o.extraCa ? [...tls.rootCertificates, o.extraCa] : [...tls.rootCertificates];
  let target = new URL(url);
  for (let hop = 0; hop <= (o.maxRedirects ?? 3); hop++) {
    if (target.protocol !== 'https:') throw unreachable(`redirected to a non-https address (${target.protocol})`);
    const left = deadline - Date.now();
    if (left <= 0) throw unreachable('no answer in time');
    const r = await new Promise<{ status: number; location?: string; body: string; contentType: string }>((resolve, reject) => {
      const req = https.get(target, {
        ca, agent: false, rejectUnauthorized: true, timeout: left,
        headers: { accept: 'application/jose, application/json;q=0.5', 'user-agent': 'cattery-federation/1' },
      }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) { res.resume(); resolve({ status, location: res.headers.location, body: '', contentType: '' }); return; }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) { req.destroy(unreachable(`the answer is larger than ${maxBytes} bytes`)); return; }
          chunks.push(c);
        });
        res.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8'), contentType: String(res.headers['content-type'] ?? '') }));
        res.on('error', reject);
      });
      const timer = setTimeout(() => req.destroy(unreachable('no answer in time')), left);
      req.on('close', () => clearTimeout(timer));
      req.on('timeout', () => req.destroy(unreachable('no answer in time')));
      req.on('error', (err) => reject(err));
    }).catch((err: unknown) => {
      if ((err as { code?: string }).code === 'CATTERY_ERR_PEER_UNREACHABLE') throw err;
      // TLS failures say which check failed (an unknown CA, a name mismatch): worth showing the administrator.
      throw unreachable(`${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`.slice(0, 300), err);
    });
    if (r.status >= 300 && r.status < 400) {
      if (!r.location) throw unreachable(`a redirect (${r.status}) without a Location`);
      target = new URL(r.location, target);
      continue;
    }
    if (r.status !== 200) throw unreachable(`HTTP ${r.status} for ${target.pathname}`);
    return { body: r.body, contentType: r.contentType };
  }
  throw unreachable('too many redirects');
}
