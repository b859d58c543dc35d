// Two (or three) catteries for the move tests, each with its own data folder, hoster id, subnet pool slice and HTTPS
// server on loopback with a certificate from the test CA, as tests/federation/two-catteries.test.ts does; the server
// can answer a path in the app's stead (a peer gone wrong, a cut connection) and records what it was asked.
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Test } from 'tap';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { fingerprintOf } from '../../src/federation/jws.js';
import { testCa } from '../services/test-ca.js';
import { HEALTHY_WITHIN_MS, OPERATOR, asOperator, quickHealthChecks, removeHosterObjects, subnetPoolSlice, testConfig, waitFor } from '../helpers.js';

export interface Cattery {
  rt: Runtime; url: string; dataDir: string;
  /** Bodies answered instead of the app's for a path (a peer gone wrong, a man in the middle). */
  forge: Map<string, (req: IncomingMessage, res: ServerResponse) => void>;
  /** Every request the HTTPS server saw: path and Range header. */
  seen: { url: string; range?: string }[];
}

export async function cattery(t: Test, name: string, caPem: ReturnType<typeof testCa>, caFile: string, slice: number): Promise<Cattery> {
  const withEngine = slice < 2;
  const { cert, key } = caPem.issue(['localhost']);
  let handle: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const forge: Cattery['forge'] = new Map();
  const seen: Cattery['seen'] = [];
  const server = https.createServer({ cert, key }, (req, res) => {
    seen.push({ url: req.url ?? '', ...(req.headers.range ? { range: String(req.headers.range) } : {}) });
    const forged = forge.get(req.url ?? '');
    if (forged) { forged(req, res); return; }
    handle!(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const url = `https://localhost:${(server.address() as { port: number }).port}`;
  const base = loadConfig({});
  const config = testConfig(t, {
    // Arrivals are taken by a hoster that takes newcomers without approval (an approval by hand takes none).
    publicUrl: url, federation: { peerCaFile: caFile, refreshSeconds: 3600 }, subnetPool: subnetPoolSlice(slice), signupApproval: 'auto',
    publication: { ...base.publication, organization: { ...base.publication.organization, name } },
  });
  const rt = await createRuntime(config, pino({ level: 'silent' }), { maxBackoffSeconds: 2 });
  t.teardown(async () => { await rt.close(); await removeHosterObjects(config.hosterId); });
  if (withEngine) { quickHealthChecks(rt.catalog); rt.start(config.reconcileIntervalSeconds); }
  await rt.app.ready();
  asOperator(rt.app);
  handle = (req, res) => rt.app.routing(req, res);
  return { rt, url, dataDir: config.dataDir, forge, seen };
}

export const api = async (c: Cattery, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
  const r = await c.rt.app.inject({ method, url, headers: OPERATOR, ...(payload ? { payload } : {}) });
  return { status: r.statusCode, code: r.headers['x-cattery-error'], body: r.body ? JSON.parse(r.body) : undefined };
};

/** `from` adds `to` as a peer and confirms the fingerprint `to` shows its own administrator. */
export async function pin(t: Test, from: Cattery, to: Cattery): Promise<number> {
  const added = await api(from, 'POST', '/api/federation/peers', { url: to.url });
  const fp = fingerprintOf((await to.rt.federation.keys.current()).kid);
  t.equal((await api(from, 'POST', `/api/federation/peers/${added.body.id}/confirm`, { fingerprint: fp })).body.state, 'active', `${from.url} pinned ${to.url}`);
  return added.body.id;
}


/** Two catteries A and B on the test CA, each with a healthy `files` instance "fichiers", each pinning the other:
 * the start of every move test that goes through real accounts. `home` is a 0700 temporary folder (the CA's file in
 * it) removed with the test. */
export async function twoWithFiles(t: Test, prefix: string): Promise<{
  a: Cattery; b: Cattery; home: string; caFile: string; ports: Record<string, number>; bAtA: number; aAtB: number;
}> {
  const ca = testCa(t);
  const home = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), prefix));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  const caFile = path.join(home, 'ca.pem');
  fs.writeFileSync(caFile, ca.pem);
  const [a, b] = await Promise.all([cattery(t, 'Chatons de Aville', ca, caFile, 0), cattery(t, 'Chatons de Béville', ca, caFile, 1)]);
  const ports: Record<string, number> = {};
  for (const x of [a, b]) {
    const r = await api(x, 'POST', '/api/instances', { service: 'files', slug: 'fichiers' });
    t.equal(r.status, 202, JSON.stringify(r.body));
    ports[x.url] = r.body.ports.http;
  }
  await Promise.all([a, b].map((x) => waitFor(`files healthy at ${x.url}`, async () => (await api(x, 'GET', '/api/instances/fichiers')).body.observed === 'healthy', HEALTHY_WITHIN_MS, 500)));
  const bAtA = await pin(t, a, b);
  const aAtB = await pin(t, b, a);
  return { a, b, home, caFile, ports, bAtA, aAtB };
}
