// The destination's side of the wire during a move: HTTPS requests to the source, each carrying a freshly signed
// request (a jti is good once), verified TLS as for documents (fetch.ts: system CAs plus CATTERY_PEER_CA, never
// turned off), bounded in time; parts written to a file and resumed with an HTTP Range request from what is on disk.
import fs from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import { fail } from '../errors.js';
import type { FetchOptions } from './fetch.js';
import { REQUEST_HEADER } from './move-protocol.js';

const unreachable = (why: string, cause?: unknown) => fail('CATTERY_ERR_PEER_UNREACHABLE', why, cause);

interface Call { url: string; method?: 'GET' | 'POST'; header: string; body?: string; range?: number; timeoutMs?: number; idleMs?: number }

/** A part's download with no byte for this long is cut (and resumed at the next attempt from what is on disk): a
 * source that stalls holds no connection and no arrival lock. */
export const PART_IDLE_MS = 60_000;
/** The slowest average a part's download is given time for (1 MB/s), over ten minutes at least: a 20 GB bundle at
 * 100 Mbit/s takes about half an hour; slower, it is cut and resumed. */
const PART_MIN_RATE_BYTES_PER_MS = 1000;

/** One request; the answer's body goes to `sink` (bounded by `maxBytes`), or is refused when the status is not 2xx
 * (its error code and message, as the source's error handler gives them, are kept to say why). */
function call(o: FetchOptions, c: Call, sink: (chunk: Buffer) => void, maxBytes: number): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const ca = o.extraCa ? [...tls.rootCertificates, o.extraCa] : [...tls.rootCertificates];
  const target = new URL(c.url);
  if (target.protocol !== 'https:') return Promise.reject(unreachable('a move is pulled over https only'));
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { [REQUEST_HEADER]: c.header, 'user-agent': 'cattery-federation/1' };
    if (c.range !== undefined && c.range > 0) headers.range = `bytes=${c.range}-`;
    if (c.body !== undefined) { headers['content-type'] = 'application/json'; headers['content-length'] = String(Buffer.byteLength(c.body)); }
    const req = https.request(target, { method: c.method ?? 'GET', ca, agent: false, rejectUnauthorized: true, headers }, (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => { if (chunks.reduce((n, x) => n + x.length, 0) < 4096) chunks.push(b); });
        res.on('end', () => {
          let why = `HTTP ${status}`;
          try { const j = JSON.parse(Buffer.concat(chunks).toString()) as { code?: string; message?: string }; why = `${j.code ?? status}: ${j.message ?? ''}`; } catch { /* not JSON */ }
          const code = res.headers['x-cattery-error'] === 'CATTERY_ERR_MOVE_REFUSED' ? 'CATTERY_ERR_MOVE_REFUSED' : 'CATTERY_ERR_PEER_UNREACHABLE';
          reject(fail(code, `the source answered ${why}`.slice(0, 400)));
        });
        return;
      }
      // A resumed download appended to what is on disk: only the range asked for may be written there.
      if (c.range !== undefined && c.range > 0 && status !== 206) { res.resume(); reject(unreachable('the source ignored the Range request')); return; }
      let size = 0;
      res.on('data', (b: Buffer) => {
        size += b.length;
        if (size > maxBytes) { req.destroy(unreachable(`the answer is larger than ${maxBytes} bytes`)); return; }
        sink(b);
      });
      res.on('end', () => resolve({ status, headers: res.headers }));
      res.on('error', (err) => reject(unreachable(`cut: ${err.message}`, err)));
      res.on('aborted', () => reject(unreachable('the connection was cut')));
    });
    const timer = setTimeout(() => req.destroy(unreachable('no answer in time')), c.timeoutMs ?? 600_000);
    if (c.idleMs) req.setTimeout(c.idleMs, () => req.destroy(unreachable(`no byte from the source for ${c.idleMs! / 1000} s: cut, to be resumed`)));
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err) => reject((err as { code?: string }).code?.startsWith('CATTERY_') ? err : unreachable(`${(err as { code?: string }).code ?? 'error'}: ${err.message}`.slice(0, 300), err)));
    req.end(c.body);
  });
}

export async function getText(o: FetchOptions, url: string, header: string, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  await call(o, { url, header, timeoutMs: 10_000 }, (b) => chunks.push(b), maxBytes);
  return Buffer.concat(chunks).toString('utf8');
}

export async function postJson(o: FetchOptions, url: string, header: string, body: unknown): Promise<string> {
  const chunks: Buffer[] = [];
  await call(o, { url, method: 'POST', header, body: JSON.stringify(body), timeoutMs: 30_000 }, (b) => chunks.push(b), 64 * 1024);
  return Buffer.concat(chunks).toString('utf8');
}

/** Bring `file` to `bytes` long from `url`: what is already on disk is kept and the rest asked for with a Range
 * request, so a download cut half-way resumes where it stopped. A source that answers the whole part (200) to a
 * Range request has it written from the start. Returns the bytes fetched by this call. */
export async function downloadPart(o: FetchOptions, url: string, header: string, file: string, bytes: number, idleMs = PART_IDLE_MS): Promise<number> {
  let have = 0;
  try { have = fs.statSync(file).size; } catch { /* not started */ }
  if (have > bytes) { fs.rmSync(file); have = 0; }
  if (have === bytes) return 0;
  const fd = fs.openSync(file, 'a', 0o600);
  let fetched = 0;
  try {
    await call(o, { url, header, range: have, idleMs, timeoutMs: Math.max(600_000, (bytes - have) / PART_MIN_RATE_BYTES_PER_MS) }, (b) => {
      fs.writeSync(fd, b);
      fetched += b.length;
    }, bytes - have);
  } finally { fs.closeSync(fd); }
  return fetched;
}
