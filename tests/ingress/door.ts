// One cattery with its front door and a real ACME CA (acme.ts), for the ingress tests and bench/ingress.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Test } from 'tap';
import { TEST_CATALOG, asOperator, claimSubnetPool, quickHealthChecks, removeHosterObjects, testConfig, waitFor } from '../helpers.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { ACME_DIRECTORY, startAcmeCa, wireAcmeCa, type AcmeCa } from './acme.js';

export const DOMAIN = 'asso.test';

export interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

export function get(port: number, host: string, ca: string, opts: { path?: string; headers?: Record<string, string>; method?: string; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, servername: host, ca, path: opts.path ?? '/', method: opts.method ?? 'GET',
      headers: { host, ...(opts.headers ?? {}) }, timeout: 10_000, agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function plainGet(port: number, host: string, p = '/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, headers: { host }, timeout: 10_000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' }));
    }).on('error', reject);
  });
}


export interface Door { rt: Runtime; ca: AcmeCa; ports: { http: number; https: number }; hosterId: string; clients: string[] }

/** cattery with the door on, the CA wired to answer for `names`; `clients` collects the addresses cattery's request
 * log gives to requests for /healthz?door=1. `catalogDirs`: catalog folders of the test's, beside the usual ones. */
export async function startDoor(t: Test, names: string[], opts: { catalogDirs?: string[] } = {}): Promise<Door> {
  const scratch = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'cattery-acme-'));
  t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }));
  const hosterId = `t${Math.random().toString(16).slice(2, 10)}`;
  const pool = `10.${claimSubnetPool()}.0.0/16`; // this file's pool, as testConfig gives it
  const ca = await startAcmeCa(t, hosterId, scratch, pool);
  const config = testConfig(t, {
    catalogDirs: [...TEST_CATALOG, ...(opts.catalogDirs ?? [])], hosterId, domains: [DOMAIN], publicUrl: `https://cattery.${DOMAIN}`, logLevel: 'info', subnetPool: pool,
    ingress: { enabled: true, bindAddress: '127.0.0.1', httpPort: 0, httpsPort: 0, acmeDirectory: ACME_DIRECTORY, acmeRootFile: ca.rootFile, hstsSeconds: 31536000 },
  });
  const clients: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      const rec = JSON.parse(line) as { req?: { url?: string; remoteAddress?: string } };
      if (rec.req?.url === '/healthz?door=1') clients.push(rec.req.remoteAddress ?? '');
    }
    done();
  } });
  const rt = await createRuntime(config, pino({ level: 'info' }, sink), { maxBackoffSeconds: 2 });
  quickHealthChecks(rt.catalog);
  rt.start(config.reconcileIntervalSeconds);
  asOperator(rt.app);
  t.teardown(async () => { await rt.close(); await removeHosterObjects(hosterId); });
  const ports = await waitFor('the front door', () => { const p = rt.ingress.ports(1); return p.https ? p : undefined; }, 90_000);
  await wireAcmeCa(ca, hosterId, names);
  return { rt, ca, ports, hosterId, clients };
}
