// Caddy's admin API, reached only through its unix socket in cattery's data folder (never a TCP port): read the
// configuration it runs, and replace it whole with POST /load (https://caddyserver.com/docs/api#post-load). A
// configuration Caddy refuses is not applied: Caddy keeps the one it had, and the refusal is its 4xx answer.
import http from 'node:http';
import { fail } from '../errors.js';

const TIMEOUT_MS = 30_000;

function request(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath, method, path,
      // Caddy checks the Host of admin requests against its `origins` (caddy-config.ts and deploy/ingress/boot.json).
      headers: { host: 'localhost', ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) },
      timeout: TIMEOUT_MS,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (err) => reject(fail('CATTERY_ERR_INGRESS', `admin socket: ${err.message}`)));
    req.end(body);
  });
}

/** Caddy's error answers are `{"error": "..."}`; the text is kept short for the journal and the admin page. */
function caddyError(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error.slice(0, 600);
  } catch { /* not JSON: the text itself */ }
  return text.slice(0, 600);
}

export async function currentConfig(socketPath: string): Promise<unknown> {
  const res = await request(socketPath, 'GET', '/config/');
  if (res.status !== 200) throw fail('CATTERY_ERR_INGRESS', `reading the configuration: ${res.status} ${caddyError(res.text)}`);
  return JSON.parse(res.text || 'null') as unknown;
}

export async function loadCaddyConfig(socketPath: string, config: object): Promise<void> {
  const res = await request(socketPath, 'POST', '/load', JSON.stringify(config));
  if (res.status !== 200) throw fail('CATTERY_ERR_INGRESS', caddyError(res.text));
}
