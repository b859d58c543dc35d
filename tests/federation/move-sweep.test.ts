// Arrivals that can no longer finish (docs/migration-format.md, NOTES 4): their code expired at the source, so their
// downloads (up to a whole bundle each) are removed, and the row stays, failed, with why, an imported one whose receipt
// the source refused included. Arrivals still in time, one being pulled right now, and finished ones are left alone. Generated states and expiries; no Docker, no peer.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { sweepExpiredArrivals } from '../../src/federation/moves-destination.js';
import { fedMovesIn } from '../../src/federation/schema.js';
import { testConfig } from '../helpers.js';

t.test('expired arrivals: downloads swept, rows kept with why', async (t) => {
  const rt = await createRuntime(testConfig(t), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  const d = rt.federation.moves;
  const now = Date.now();
  const jwsWith = (exp: number) => `e30.${Buffer.from(JSON.stringify({ v: 1, exp })).toString('base64url')}.sig`;
  const rows = fc.sample(fc.record({
    state: fc.constantFrom('pulling', 'failed', 'imported', 'done'),
    expiredBy: fc.integer({ min: -48 * 3600, max: 48 * 3600 }).filter((s) => Math.abs(s) > 5),
    busy: fc.boolean(),
  }), { numRuns: 40 }).map((r) => {
    const cth = crypto.randomBytes(32).toString('base64url');
    const row = rt.db.insert(fedMovesIn).values({
      peerId: 1, sourceUrl: 'https://a.example', moveId: crypto.randomBytes(16).toString('base64url'), cth, state: r.state as never,
      manifestJws: jwsWith(Math.floor(now / 1000) - r.expiredBy), parts: [], lastError: r.state === 'failed' ? 'part 0 does not match' : '',
    }).returning().get();
    const dir = path.join(d.dir, `in-${row.id}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'part-0.tar'), 'half a part', { mode: 0o600 });
    if (r.busy) d.arriving.add(cth);
    return { ...r, id: row.id, dir };
  });
  const swept = sweepExpiredArrivals(d, new Date(now));
  const gone = (r: (typeof rows)[number]) => r.state !== 'done' && r.expiredBy > 0 && !r.busy;
  t.equal(swept, rows.filter(gone).length, `${swept} of ${rows.length} swept`);
  for (const r of rows) {
    const after = rt.db.select().from(fedMovesIn).all().find((x) => x.id === r.id)!;
    if (gone(r)) {
      t.notOk(fs.existsSync(r.dir), `${r.state}, expired ${r.expiredBy}s ago: its downloads removed`);
      t.equal(after.state, 'failed');
      t.match(after.lastError, /expired at the source/, 'with why');
    } else {
      t.ok(fs.existsSync(r.dir), `${r.state}, ${r.expiredBy > 0 ? 'expired' : 'in time'}${r.busy ? ', being pulled' : ''}: left alone`);
      t.equal(after.state, r.state);
    }
  }
  t.equal(sweepExpiredArrivals(d, new Date(now)), 0, 'a second pass has nothing left to do');
});
