// A part's download from a source that stops sending (a stalled peer, a link gone quiet without a reset) is cut
// after the idle time, keeps what it received, and resumes from there at the next attempt with a Range request
// (move-client.ts downloadPart; PART_IDLE_MS in production, a fraction of a second here). No Docker: a real HTTPS
// server on loopback with a certificate from a test CA.
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { downloadPart, PART_IDLE_MS } from '../../src/federation/move-client.js';
import { testCa } from '../services/test-ca.js';

t.test('a stalled part download is cut after the idle time and resumed where it stopped', async (t) => {
  t.equal(PART_IDLE_MS, 60_000, 'a minute without a byte in production');
  const ca = testCa(t);
  const { cert, key } = ca.issue(['localhost']);
  const body = crypto.randomBytes(64 * 1024);
  let stall = true;
  const ranges: (string | undefined)[] = [];
  const server = https.createServer({ cert, key }, (req, res) => {
    ranges.push(req.headers.range);
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    const rest = body.subarray(start);
    res.writeHead(start ? 206 : 200, { 'content-length': rest.length, ...(start ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
    // The first answer sends a third of the part, then nothing more, the connection left open.
    if (stall) { stall = false; res.write(rest.subarray(0, 20_000)); return; }
    res.end(rest);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const url = `https://localhost:${(server.address() as { port: number }).port}/part`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-idle-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'part-0.tar');

  const began = Date.now();
  await t.rejects(downloadPart({ extraCa: ca.pem }, url, 'x', file, body.length, 400), { code: 'CATTERY_ERR_PEER_UNREACHABLE', message: /no byte from the source/ });
  t.ok(Date.now() - began < 10_000, `cut by the idle time, not a longer deadline (${Date.now() - began} ms)`);
  t.equal(fs.statSync(file).size, 20_000, 'what came is kept');
  t.equal(await downloadPart({ extraCa: ca.pem }, url, 'x', file, body.length, 400), body.length - 20_000, 'the rest fetched');
  t.same(ranges, [undefined, 'bytes=20000-'], 'resumed with a Range request');
  t.ok(fs.readFileSync(file).equals(body), 'the part whole');
});
