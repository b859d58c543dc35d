// Exports cannot fill the disk that holds cattery.db. Each is staged whole before it is sent (so a failure is never a
// half tar), which costs disk until the client has read it; so, whatever a resident (or a page in their browser)
// does: one staged export per account, at most EXPORTS_AT_ONCE in all, none when the disk would keep less than the
// reserve, and a client that stops reading is cut, its staged copy removed. Generated sequences of opened, abandoned
// and finished downloads over real sockets are checked against that model, on a real instance.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import Fastify from 'fastify';
import fc from 'fast-check';
import { pino } from 'pino';
import t from 'tap';
import { OPERATOR, ROOT, asOperator, removeHosterObjects, testConfig, waitFor } from '../helpers.js';
import { createRuntime } from '../../src/runtime.js';
import { loadCatalog } from '../../src/catalog/load.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir } from '../../src/orchestrator/docker/images.js';
import { detachUnder } from '../../src/orchestrator/sized-volumes.js';
import { EXPORTS_AT_ONCE } from '../../src/accounts/accounts.js';
import { sendExport } from '../../src/http/send-export.js';

const ok = ['/bin/sh', '-c', 'cat >/dev/null; echo \'{"ok":true,"bytes":1,"items":1}\''];
const manifest = {
  id: 'exporter',
  name: { fr: 'Service exportateur', en: 'Exporting service' },
  description: { fr: 'Ses exports font 24 mégaoctets.', en: 'Its exports are 24 megabytes.' },
  openForSignup: false,
  image: { production: 'busybox:1.36.1', local: { base: 'busybox', dockerfile: 'Dockerfile' } },
  command: ['/bin/sh', '-c', 'echo ok > /tmp/index.html && exec httpd -f -p 8080 -h /tmp'],
  user: '65534:65534',
  ports: [{ name: 'http', container: 8080, protocol: 'tcp', publish: true }],
  volumes: [{ name: 'data', path: '/data', sizeMb: 16 }],
  environment: {},
  health: { command: ['/bin/wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/index.html'], intervalSeconds: 1, timeoutSeconds: 2, retries: 3, startPeriodSeconds: 0 },
  limits: { memoryMb: 32, cpus: 0.25, pids: 32 },
  capabilities: [],
  readOnlyRootfs: true,
  tmpfs: [{ path: '/tmp', sizeMb: 4 }],
  accounts: {
    adapter: 'exec',
    operations: {
      create: { exec: ok }, setPassword: { exec: ok }, suspend: { exec: ok }, resume: { exec: ok }, setQuota: { exec: ok }, delete: { exec: ok }, usage: { exec: ok },
      // 24 MB: more than loopback sockets' buffers, so an unread download stays open.
      export: { exec: ['/bin/sh', '-c', 'cat >/dev/null; head -c 24000000 /dev/zero'] },
    },
  },
};
const PEOPLE = ['ana', 'bea', 'cid', 'dan', 'eve', 'fay'];

t.test('staged exports are bounded per account, in number and by free space, whatever the downloads do', async (t) => {
  const catDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-exporter-'));
  t.teardown(() => fs.rmSync(catDir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(catDir, 'exporter'));
  fs.writeFileSync(path.join(catDir, 'exporter', 'service.json'), JSON.stringify(manifest, null, 2));
  fs.copyFileSync(path.join(ROOT, 'tests/fixtures/services/probe/Dockerfile'), path.join(catDir, 'exporter', 'Dockerfile'));
  const config = testConfig(t, { catalogDirs: [path.join(ROOT, 'services'), catDir] });
  const catalog = loadCatalog(config.catalogDirs);
  t.same(catalog.errors, []);
  const engine = connectEngine(config.dockerEndpoint, { hosterId: config.hosterId, timeoutSeconds: 60, log: pino({ level: 'silent' }) });
  await buildImages(engine, catalog, { mirror: config.debianMirror, workDir: buildWorkDir(config.dataDir), only: ['exporter'], progress: () => undefined });
  const rt = await createRuntime(config, pino({ level: config.logLevel }), { maxBackoffSeconds: 2 });
  rt.start(config.reconcileIntervalSeconds);
  asOperator(rt.app);
  t.teardown(async () => { await rt.close(); await removeHosterObjects(config.hosterId); await detachUnder(config.dataDir); });
  const { app } = rt;
  t.equal((await app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'exporter', slug: 'exp' } })).statusCode, 201);
  for (const p of PEOPLE) {
    t.equal((await app.inject({ method: 'POST', url: '/api/instances/exp/accounts', payload: { username: p, password: 'une phrase longue', quotaMb: 10 } })).statusCode, 201);
  }
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const staging = path.join(config.dataDir, 'tmp');
  const staged = () => (fs.existsSync(staging) ? fs.readdirSync(staging).filter((n) => n.startsWith('export-')).length : 0);

  /** Open a download and read nothing past the headers: the staged copy stays until it is closed. */
  const open = (who: string) => new Promise<{ status: number; code: string | undefined; req: http.ClientRequest; res: http.IncomingMessage }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/api/instances/exp/accounts/${who}/export`, headers: OPERATOR }, (res) => {
      res.pause();
      resolve({ status: res.statusCode!, code: res.headers['x-cattery-error'] as string | undefined, req, res });
    });
    req.on('error', reject);
  });

  type Step = { who: string; act: 'open' | 'abandon' | 'finish' };
  const step = fc.record({ who: fc.constantFrom(...PEOPLE), act: fc.constantFrom<Step['act']>('open', 'open', 'abandon', 'finish') });
  let runs = 0;
  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 4, maxLength: 12 }), async (steps) => {
    runs++;
    const live = new Map<string, Awaited<ReturnType<typeof open>>>();
    try {
      for (const s of steps) {
        const mine = live.get(s.who);
        if (s.act === 'open') {
          const r = await open(s.who);
          const expected = mine || live.size >= EXPORTS_AT_ONCE ? 429 : 200;
          if (r.status !== expected) throw new Error(`open ${s.who} with ${[...live.keys()].join(',')} live: ${r.status} ${r.code}, expected ${expected}`);
          if (r.status === 200) live.set(s.who, r); else { r.res.resume(); if (r.code !== 'CATTERY_ERR_BUSY') throw new Error(`refused with ${r.code}`); }
        } else if (mine && s.act === 'abandon') {
          mine.req.destroy();
          live.delete(s.who);
          await waitFor('abandoned copy removed', () => staged() === live.size, 10_000, 50);
        } else if (mine && s.act === 'finish') {
          mine.res.resume();
          await new Promise((resolve) => mine.res.on('end', resolve));
          live.delete(s.who);
          await waitFor('finished copy removed', () => staged() === live.size, 10_000, 50);
        }
        if (staged() > EXPORTS_AT_ONCE || staged() !== live.size) throw new Error(`${staged()} staged for ${live.size} live downloads`);
      }
      return true;
    } finally {
      for (const r of live.values()) r.req.destroy();
      await waitFor('all copies removed', () => staged() === 0, 10_000, 50);
    }
  }), { numRuns: 8, seed: 20261202 });
  t.equal(runs, 8, 'generated sequences of opened, abandoned and finished downloads kept the model');

  // A disk that would keep less than the reserve: refused before anything is staged (a 32 MB file system here).
  fs.mkdirSync(staging, { recursive: true, mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0700', 'tmpfs', staging]);
  t.teardown(() => { try { execFileSync('umount', ['-l', staging]); } catch { /* already gone */ } });
  const full = await app.inject('/api/instances/exp/accounts/ana/export');
  t.equal(full.statusCode, 507, full.body);
  t.equal(full.headers['x-cattery-error'], 'CATTERY_ERR_INSUFFICIENT_STORAGE');
  t.equal(staged(), 0, 'nothing staged');
});

t.test('a download nobody reads is cut after the idle time, and its source closed', async (t) => {
  const app = Fastify();
  let closed = false;
  app.get('/x', async (req, reply) => {
    let sent = 0;
    const src = new Readable({ read() { sent += 65536; this.push(sent > 200 * 1024 * 1024 ? null : Buffer.alloc(65536)); } }) as Readable & { size?: number };
    src.once('close', () => { closed = true; });
    return sendExport(req, reply, src, 'x.tar', 300);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const port = (app.server.address() as { port: number }).port;
  const res = await new Promise<http.IncomingMessage>((resolve) => http.get({ host: '127.0.0.1', port, path: '/x' }, resolve));
  t.equal(res.headers['cache-control'], 'no-store', 'a resident\'s data is never cached');
  res.pause();
  await waitFor('source closed', () => closed, 10_000, 50);
  t.ok(closed, 'the staged copy is let go once the client stops reading');
  res.destroy();
});
