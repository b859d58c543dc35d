// A resident with mail (messages), files and a private pad moves from A to B, every part written by the real
// `export` of A's instances and read by the real `import` of B's (issue 14: "on B the same messages over IMAP, the
// same files over WebDAV, the same pad text through a Yjs client"). Markers are put in and read back through each
// service as the resident's own client does (tests/services/probes.ts), under the password chosen at B. Both
// hosters serve the same mail domain here (the probes' one), so A's association sets no forward (forwardDays 0)
// and every account is deleted at the confirmation; the forward of the old address between two domains is
// tests/federation/move-mail-forward.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { assignAccount, getAccount } from '../../src/accounts/accounts.js';
import { createUser } from '../../src/identity/users.js';
import { updateSettings } from '../../src/governance/settings.js';
import { testCa } from '../services/test-ca.js';
import { PROBES, newMarker, type ProbeCtx } from '../services/probes.js';
import { HEALTHY_WITHIN_MS, waitFor } from '../helpers.js';
import { api, cattery, pin, type Cattery } from './move-catteries.js';

const SERVICES = ['mail', 'files', 'pads'] as const;
const PASS_A = 'alice-secret-at-a';
const PASS_B = 'alice-new-secret-at-b';

t.test('mail, files and a pad move from A to B, read back through each service at B', async (t) => {
  const ca = testCa(t);
  const caDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-move-ca-'));
  t.teardown(() => fs.rmSync(caDir, { recursive: true, force: true }));
  const caFile = path.join(caDir, 'ca.pem');
  fs.writeFileSync(caFile, ca.pem);
  const [a, b] = await Promise.all([cattery(t, 'Chatons de Aville', ca, caFile, 0), cattery(t, 'Chatons de Béville', ca, caFile, 1)]);
  const started = Date.now();
  const ctx = new Map<string, ProbeCtx>();
  for (const x of [a, b]) {
    for (const svc of SERVICES) {
      const r = await api(x, 'POST', '/api/instances', { service: svc, slug: `m-${svc}`, env: PROBES[svc]!.env });
      t.equal(r.status, 202, JSON.stringify(r.body));
      ctx.set(`${x.url} ${svc}`, { container: `${x.rt.config.hosterId}-m-${svc}`, ports: r.body.ports, env: PROBES[svc]!.env });
    }
  }
  await Promise.all([a, b].flatMap((x) => SERVICES.map((svc) => waitFor(`${svc} healthy at ${x.url}`,
    async () => (await api(x, 'GET', `/api/instances/m-${svc}`)).body.observed === 'healthy', HEALTHY_WITHIN_MS, 500))));
  t.comment(`six instances healthy in ${Date.now() - started} ms`);
  const bAtA = await pin(t, a, b);
  await pin(t, b, a);

  updateSettings(a.rt.db, { forwardDays: 0 }, 'test');
  const alice = await createUser(a.rt.db, { login: 'alice', name: 'Alice Martin', roles: ['resident'] });
  const markers: Record<string, string[]> = {};
  const at = (x: Cattery, svc: string) => ctx.get(`${x.url} ${svc}`)!;
  for (const svc of SERVICES) {
    t.equal((await api(a, 'POST', `/api/instances/m-${svc}/accounts`, { username: 'alice', password: PASS_A, quotaMb: 20 })).status, 201, `${svc} account at A`);
    assignAccount(a.rt.db, getAccount(a.rt.db, `m-${svc}`, 'alice').id, alice.id);
    markers[svc] = [newMarker(), newMarker()];
    for (const m of markers[svc]!) await PROBES[svc]!.seed(at(a, svc), 'alice', PASS_A, m);
    t.same((await PROBES[svc]!.data(at(a, svc), 'alice', PASS_A, markers[svc]!)).sort(), [...markers[svc]!].sort(), `${svc}: the markers are in at A`);
  }

  const start = await api(a, 'POST', '/api/moves', { peerId: bAtA, userId: alice.id, consent: 'Alice asked at the office, signed form kept' });
  t.equal(start.status, 201, JSON.stringify(start.body));
  t.same(start.body.move.parts.map((p: { service: string }) => p.service).sort(), [...SERVICES].sort(), 'one part per account');
  const moved = Date.now();
  const arrived = await api(b, 'POST', '/api/moves/arrivals', { source: a.url, code: start.body.code, password: PASS_B });
  t.equal(arrived.status, 200, JSON.stringify(arrived.body));
  t.comment(`pulled, verified and imported in ${Date.now() - moved} ms`);
  for (const svc of SERVICES) {
    t.same((await PROBES[svc]!.data(at(b, svc), 'alice', PASS_B, markers[svc]!)).sort(), [...markers[svc]!].sort(), `${svc}: the same data at B, as the resident's client reads it`);
    t.equal(getAccount(a.rt.db, `m-${svc}`, 'alice').state, 'active', `${svc}: still at A before the confirmation`);
  }
  t.equal((await api(a, 'POST', `/api/moves/${start.body.move.id}/confirm`, { userId: alice.id, consent: 'Alice checked her accounts at B and asked' })).body.state, 'done');
  for (const svc of SERVICES) {
    t.equal((await api(a, 'GET', `/api/instances/m-${svc}/accounts/alice`)).status, 404, `${svc}: deleted at A after the confirmation`);
    t.notOk(await PROBES[svc]!.login(at(a, svc), 'alice', PASS_A), `${svc}: A lets nobody in as alice any more`);
  }
});
