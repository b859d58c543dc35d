// Exports cannot fill the disk that holds cattery.db. Each is staged whole before it is sent (so a failure is never a
// half tar), which costs disk until the client has read it; so, whatever a resident (or a page in their browser)
// does: one staged export per account, at most EXPORTS_AT_ONCE in all, none when the disk would keep less than the
// reserve, and a client that stops reading is cut, its staged copy removed. Generated sequences of opened, abandoned
// and finished downloads over real sockets are checked against that model, on a real instance.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import Fastify from 'fastify';
import fc from 'fast-check';
import t from 'tap';
import { OK_OP, busyboxService, runtimeWithService } from '../test-service.js';
import { OPERATOR, waitFor } from '../helpers.js';
import { EXPORTS_AT_ONCE, STAGING_RESERVE_BYTES, claimExportStaging } from '../../src/accounts/accounts.js';
import { sendExport } from '../../src/http/send-export.js';

const ok = OK_OP;
const manifest = busyboxService('exporter', {
  name: { fr: 'Service exportateur', en: 'Exporting service' },
  description: { fr: 'Ses exports font 48 mégaoctets.', en: 'Its exports are 48 megabytes.' },
  accounts: {
    adapter: 'exec',
    operations: {
      create: { exec: ok }, setPassword: { exec: ok }, suspend: { exec: ok }, resume: { exec: ok }, setQuota: { exec: ok }, delete: { exec: ok }, usage: { exec: ok },
      // 48 MB: far more than loopback sockets' buffers, so an unread download stays open.
      export: { exec: ['/bin/sh', '-c', 'cat >/dev/null; head -c 48000000 /dev/zero'] },
    },
  },
});
const PEOPLE = ['ana', 'bea', 'cid', 'dan', 'eve', 'fay'];

t.test('staged exports are bounded per account, in number and by free space, whatever the downloads do', async (t) => {
  const { rt, config } = await runtimeWithService(t, manifest, { withCatalog: true });
  const { app } = rt;
  t.equal((await app.inject({ method: 'POST', url: '/api/instances?wait=true', payload: { service: 'exporter', slug: 'exp' } })).statusCode, 201);
  for (const p of PEOPLE) {
    t.equal((await app.inject({ method: 'POST', url: '/api/instances/exp/accounts', payload: { username: p, password: 'une phrase longue', quotaMb: 10 } })).statusCode, 201);
  }
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const staging = path.join(config.dataDir, 'tmp');
  const stagingName = (who: string) => `export-${crypto.createHash('sha256').update(`exp/${who}`).digest('hex').slice(0, 32)}`;
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
          // A download's copy goes once it has all been handed to the socket, even if the client has not read it
          // (kernel buffers can hold a good part of it): what is staged now is what decides, never more than live.
          const stagedNow = new Set(fs.existsSync(staging) ? fs.readdirSync(staging).filter((n) => n.startsWith('export-')) : []);
          const expected = (mine && stagedNow.has(stagingName(s.who))) || stagedNow.size >= EXPORTS_AT_ONCE ? 429 : 200;
          if (mine && !stagedNow.has(stagingName(s.who))) { mine.req.destroy(); live.delete(s.who); }
          let r = await open(s.who);
          for (let retry = 0; retry < 3 && r.status === 502 && expected === 200; retry++) {
            // An export the engine could not start (exit 126, seen in loaded runs with the busybox service's 32 MB and
            // 32 pids) is refused whole, nothing staged: the model still holds. Said with the journal's cause, and
            // tried again after a pause, three times at most.
            r.res.resume();
            const cause = rt.db.$client.prepare("select error from operations where kind = 'account.export' and status = 'failed' order by id desc limit 1").get() as { error: string } | undefined;
            t.comment(`open ${s.who}: the export failed (${cause?.error ?? 'no cause journaled'}); tried again`);
            if (staged() > live.size) throw new Error(`a failed export left a staged copy (${staged()} for ${live.size} live)`);
            await new Promise((resolve) => setTimeout(resolve, 2000));
            r = await open(s.who);
          }
          if (r.status !== expected) {
            // The answer's own message says which step failed (an operation's stderr, a limit).
            r.res.resume();
            const body = r.status === 200 ? '' : await new Promise<string>((resolve) => { let b = ''; r.res.on('data', (c: Buffer) => { b += c.toString(); }); r.res.on('end', () => resolve(b.slice(0, 400))); });
            // A 5xx answer hides its cause from the client: the journal keeps it.
            const journaled = rt.db.$client.prepare("select error from operations where kind = 'account.export' and status = 'failed' order by id desc limit 1").get() as { error: string } | undefined;
            throw new Error(`open ${s.who} with ${[...live.keys()].join(',')} live: ${r.status} ${r.code}, expected ${expected}: ${body} (journal: ${journaled?.error ?? 'no failed export'})`);
          }
          if (r.status === 200) live.set(s.who, r); else { r.res.resume(); if (r.code !== 'CATTERY_ERR_BUSY') throw new Error(`refused with ${r.code}`); }
        } else if (mine && s.act === 'abandon') {
          mine.req.destroy();
          live.delete(s.who);
          await waitFor('abandoned copy removed', () => staged() <= live.size, 10_000, 50);
        } else if (mine && s.act === 'finish') {
          mine.res.resume();
          await new Promise((resolve) => mine.res.on('end', resolve));
          live.delete(s.who);
          await waitFor('finished copy removed', () => staged() <= live.size, 10_000, 50);
        }
        if (staged() > EXPORTS_AT_ONCE || staged() > live.size) throw new Error(`${staged()} staged for ${live.size} live downloads`);
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

  // A client that reads nothing but keeps its socket busy with bytes of its own (which would reset a socket
  // timeout), and one that reads a trickle: both are cut, since neither takes the data.
  for (const how of ['sends keep-alive bytes', 'reads a trickle'] as const) {
    closed = false;
    const sock = net.connect(port, '127.0.0.1');
    sock.write('GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    sock.pause();
    const tick = setInterval(() => {
      if (how === 'sends keep-alive bytes') sock.write('\r\n');
      else { sock.read(1024); }
    }, 100);
    await waitFor(`cut when a client ${how}`, () => closed, 20_000, 50);
    clearInterval(tick);
    t.ok(closed, `a client that ${how} is cut and the copy let go`);
    sock.destroy();
  }
});

t.test('staging claims against a model: per account, per resident, in number, and by what every claim may still write', async (t) => {
  const MiB = 1024 * 1024;
  const accountsArb = fc.constantFrom('a1', 'a2', 'a3', 'b1', 'c1', 'd1');
  const actorArb = fc.constantFrom('user:ana', 'user:bea', 'operator');
  const step = fc.oneof(
    fc.record({ op: fc.constant('claim' as const), account: accountsArb, actor: actorArb, worst: fc.integer({ min: 1, max: 3000 }).map((m) => m * MiB) }),
    fc.record({ op: fc.constant('write' as const), index: fc.nat(), bytes: fc.integer({ min: 0, max: 64 }).map((k) => k * 1024) }),
    fc.record({ op: fc.constant('drop' as const), index: fc.nat() }),
  );
  let runs = 0;
  fc.assert(fc.property(fc.array(step, { maxLength: 25 }), fc.integer({ min: 1, max: 8 }).map((g) => g * 1024 * MiB), (steps, disk) => {
    runs++;
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-claims-'));
    try {
      const live: { account: string; actor: string; worst: number; dir: string; written: number }[] = [];
      // The disk: what is free now is the disk less what the staged files hold.
      const free = () => disk - live.reduce((s, c) => s + c.written, 0);
      for (const s of steps) {
        if (s.op === 'claim') {
          const owed = live.reduce((sum, c) => sum + Math.max(0, c.worst - c.written), 0);
          const expected = live.some((c) => c.account === s.account) || live.length >= EXPORTS_AT_ONCE
            || (s.actor.startsWith('user:') && live.some((c) => c.actor === s.actor)) ? 'CATTERY_ERR_BUSY'
            : free() - owed - s.worst < STAGING_RESERVE_BYTES ? 'CATTERY_ERR_INSUFFICIENT_STORAGE' : 'ok';
          let got = 'ok', dir = '';
          try { dir = claimExportStaging(root, { slug: 'inst', username: s.account }, s.actor, s.worst, free); } catch (err) { got = (err as { code: string }).code; }
          if (got !== expected) throw new Error(`claim ${JSON.stringify(s)} with ${JSON.stringify(live.map((c) => [c.account, c.actor]))}: ${got}, expected ${expected}`);
          if (got === 'ok') live.push({ account: s.account, actor: s.actor, worst: s.worst, dir, written: 0 });
        } else if (live.length) {
          const c = live[s.index % live.length]!;
          if (s.op === 'write') {
            // A staged file never grows past its claim's worst case (exec.ts cuts it there).
            c.written = Math.min(c.worst, c.written + s.bytes);
            fs.writeFileSync(path.join(c.dir, 'export.tar'), Buffer.alloc(0));
            fs.truncateSync(path.join(c.dir, 'export.tar'), c.written);
          } else {
            fs.rmSync(c.dir, { recursive: true, force: true });
            live.splice(live.indexOf(c), 1);
          }
        }
        // Whatever happens, the exports under way can never take the disk below the reserve.
        const owed = live.reduce((sum, c) => sum + (c.worst - c.written), 0);
        if (live.length && free() - owed < STAGING_RESERVE_BYTES) throw new Error('the claims could fill the disk past the reserve');
      }
      return true;
    } finally { fs.rmSync(root, { recursive: true, force: true }); }
  }), { numRuns: 300, seed: 20261202 });
  t.equal(runs, 300);
});
