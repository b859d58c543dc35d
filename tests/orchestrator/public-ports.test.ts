// Well-known ports on the public address (orchestrator/public-ports.ts), against a real SQLite with the real
// migrations and no engine: whatever services declare and whatever administrators ask in whatever order, no two
// instances of one server ever hold the same number, a refusal changes nothing, and a change is a new generation.
// The API and a real mail instance answering on 25 and 993: tests/ingress/public-ports.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { loadCatalog, parseManifest, type Catalog } from '../../src/catalog/load.js';
import { applyMigrations, openDb, type Db } from '../../src/db/connection.js';
import { instances } from '../../src/db/schema.js';
import { createInstance, getInstance, updateInstance } from '../../src/orchestrator/instances.js';
import { listOperations } from '../../src/orchestrator/journal.js';
import { publicPortsView, setPublicPorts, wellKnownPorts } from '../../src/orchestrator/public-ports.js';
import { addServer, ensureDefaultServer } from '../../src/orchestrator/servers.js';
import { ROOT } from '../helpers.js';

const real = loadCatalog([path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')]);
const probe = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/services/probe/service.json'), 'utf8')) as Record<string, unknown>;

/** A service whose ports carry these well-known numbers, checked by the catalog's own parser. */
function serviceWith(id: string, numbers: readonly number[]) {
  const ports = numbers.map((n, i) => ({ name: `p${i}`, container: 10000 + i, protocol: 'tcp', publish: true, wellKnown: n }));
  const { manifest, errors } = parseManifest(`${id}/service.json`, JSON.stringify({ ...probe, id, ports, http: undefined }));
  if (!manifest) throw new Error(JSON.stringify(errors));
  // The probe's folder lends an image name; no image is built or run here.
  return { manifest, dir: path.join(ROOT, 'tests/fixtures/services/probe') };
}

function freshDb(): Db {
  const db = openDb(':memory:');
  applyMigrations(db);
  ensureDefaultServer(db, 'unix:///var/run/docker.sock', '127.0.0.1');
  addServer(db, { name: 'second', dockerEndpoint: 'tcp://192.0.2.1:2376' });
  return db;
}

const deps = (db: Db, catalog: Catalog) => ({ db, catalog, portRange: [20000, 20999] as const, subnetPool: '10.213.0.0/16' });
const ADDRESS = '203.0.113.7';

t.test('every well-known number any catalog service declares: a second holder on the server is refused', async (t) => {
  const declared = [...real.services.values()].flatMap((s) => Object.values(wellKnownPorts(s.manifest)));
  t.ok(declared.length >= 5, `the catalog declares well-known numbers (${declared.join(', ')})`);
  for (const n of new Set(declared)) {
    const db = freshDb();
    // Each real service that declares n, and a service with n alone: whichever holds it, every other is refused.
    const solo = `solo-${n}`;
    const catalog: Catalog = { services: new Map([...real.services, [solo, serviceWith(solo, [n])]]), errors: [] };
    const claimants = [...catalog.services.values()].filter((s) => Object.values(wellKnownPorts(s.manifest)).includes(n)).map((s) => s.manifest);
    for (const holder of claimants) {
      const mk = (slug: string, service: string) => createInstance(deps(db, catalog), { service, slug, desired: 'stopped', ...(service === 'mail' ? { env: { MAIL_DOMAIN: 'asso.example' } } : {}) }, 'test');
      const h = mk(`h-${holder.id}`, holder.id);
      setPublicPorts({ db, catalog }, h.slug, { enabled: true, address: ADDRESS }, 'test');
      for (const other of claimants) {
        const o = mk(`o-${holder.id}-${other.id}`, other.id);
        t.throws(() => setPublicPorts({ db, catalog }, o.slug, { enabled: true, address: ADDRESS }, 'test'),
          { code: 'CATTERY_ERR_PORT_TAKEN', statusCode: 409, message: new RegExp(`port \\d+ is already published on the public address by instance "${h.slug}"`) },
          `${n}: ${other.id} refused while ${holder.id} holds it`);
        t.same(publicPortsView(getInstance(db, o.slug)), { enabled: false, address: null, ports: {} }, 'and nothing written');
        // On another server the number is free.
        const elsewhere = createInstance(deps(db, catalog), { service: other.id, slug: `e-${holder.id}-${other.id}`, server: 'second', desired: 'stopped', ...(other.id === 'mail' ? { env: { MAIL_DOMAIN: 'asso.example' } } : {}) }, 'test');
        t.equal(setPublicPorts({ db, catalog }, elsewhere.slug, { enabled: true, address: ADDRESS }, 'test').config.publicPorts?.ports[Object.entries(wellKnownPorts(other)).find(([, v]) => v === n)![0]], n, `${n}: ${other.id} takes it on another server`);
        setPublicPorts({ db, catalog }, elsewhere.slug, { enabled: false, address: ADDRESS }, 'test');
      }
      setPublicPorts({ db, catalog }, h.slug, { enabled: false, address: ADDRESS }, 'test');
    }
    db.$client.close();
  }
});

t.test('one case read closely: mail on the standard ports, the journal, the generation, turning off', async (t) => {
  const db = freshDb();
  const d = deps(db, real);
  const mail = createInstance(d, { service: 'mail', slug: 'courriel', env: { MAIL_DOMAIN: 'asso.example' } }, 'test');
  const on = setPublicPorts({ db, catalog: real }, 'courriel', { enabled: true, address: ADDRESS }, 'admin:lea');
  t.same(on.config.publicPorts, { address: ADDRESS, ports: { smtp: 25, submission: 587, submissions: 465, imap: 143, imaps: 993 } });
  t.equal(on.generation, mail.generation + 1, 'a new generation: the container is made again with the bindings');
  t.equal(on.observed, 'creating', 'not taken for converged before the new container runs');
  t.same(on.config.ports, mail.config.ports, 'the allocated ports are kept');
  t.match(listOperations(db, 'courriel')[0], { kind: 'public-ports', status: 'pending', actor: 'admin:lea', detail: { enabled: true, address: ADDRESS } });
  t.equal(setPublicPorts({ db, catalog: real }, 'courriel', { enabled: true, address: ADDRESS }, 'test').generation, on.generation, 'asked again: nothing changes');
  t.equal(setPublicPorts({ db, catalog: real }, 'courriel', { enabled: true, address: '198.51.100.2' }, 'test').generation, on.generation + 1, 'another address: a new generation');

  const pads = createInstance(d, { service: 'pads', slug: 'pads' }, 'test');
  t.throws(() => setPublicPorts({ db, catalog: real }, pads.slug, { enabled: true, address: ADDRESS }, 'test'), { code: 'CATTERY_ERR_VALIDATION', message: /declares no well-known port/ });
  t.throws(() => setPublicPorts({ db, catalog: real }, 'nobody', { enabled: true, address: ADDRESS }, 'test'), { code: 'CATTERY_ERR_NOT_FOUND' });

  // The host's own numbers (the front door's) and another instance's allocated port are refused too.
  const solo = { services: new Map([...real.services, ['solo', serviceWith('solo', [8443])], ['alloc', serviceWith('alloc', [20000])]]), errors: [] };
  const s = createInstance(deps(db, solo), { service: 'solo', slug: 'solo' }, 'test');
  t.throws(() => setPublicPorts({ db, catalog: solo }, s.slug, { enabled: true, address: ADDRESS, reserved: [{ port: 8443, by: 'the front door (HTTPS)' }] }, 'test'),
    { code: 'CATTERY_ERR_PORT_TAKEN', message: /port 8443 is the front door \(HTTPS\)'s/ });
  const a = createInstance(deps(db, solo), { service: 'alloc', slug: 'alloc' }, 'test');
  t.throws(() => setPublicPorts({ db, catalog: solo }, a.slug, { enabled: true, address: ADDRESS }, 'test'),
    { code: 'CATTERY_ERR_PORT_TAKEN', message: /port 20000 is the allocated host port of instance "courriel"/ });

  const off = setPublicPorts({ db, catalog: real }, 'courriel', { enabled: false, address: ADDRESS }, 'test');
  t.notOk('publicPorts' in off.config, 'turned off: no public ports left');
  t.same(off.config.ports, mail.config.ports, 'the allocated ports as they were');
  updateInstance(d, 'courriel', { desired: 'deleted' }, 'test', 'delete');
  t.throws(() => setPublicPorts({ db, catalog: real }, 'courriel', { enabled: true, address: ADDRESS }, 'test'), { code: 'CATTERY_ERR_CONFLICT' }, 'an instance being deleted: refused');
  db.$client.close();
});

// The property: generated services (subsets of a pool of numbers), instances on two servers, and any sequence of
// turning on and off. A small model says who holds what; the database must agree after every step.
t.test('any services, any instances, any order of requests: one holder per number and server', async (t) => {
  const POOL = [25, 143, 465, 587, 993, 5222, 5269];
  const arb = fc.record({
    services: fc.array(fc.uniqueArray(fc.constantFrom(...POOL), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 4 }),
    instances: fc.array(fc.record({ service: fc.nat(), server: fc.constantFrom('local', 'second') }), { minLength: 2, maxLength: 6 }),
    ops: fc.array(fc.record({ instance: fc.nat(), enabled: fc.boolean() }), { minLength: 1, maxLength: 25 }),
  });
  let steps = 0;
  let refused = 0;
  // One database, emptied before each case (migrating a fresh one per case was most of this test's time).
  const db = freshDb();
  t.teardown(() => db.$client.close());
  fc.assert(fc.property(arb, ({ services, instances: wanted, ops }) => {
    db.delete(instances).run();
    const catalog: Catalog = { services: new Map(services.map((ns, i) => [`s${i}`, serviceWith(`s${i}`, ns)])), errors: [] };
    const rows = wanted.map((w, i) => createInstance(deps(db, catalog), { service: `s${w.service % services.length}`, slug: `i${i}-x`, server: w.server, desired: 'stopped' }, 'test'));
    const numbersOf = (slug: string) => Object.values(wellKnownPorts(catalog.services.get(getInstance(db, slug).service)!.manifest));
    const holds = new Map<string, Set<number>>(); // the model: slug → numbers it holds
    for (const op of ops) {
      steps++;
      const row = rows[op.instance % rows.length]!;
      const before = getInstance(db, row.slug);
      const conflict = op.enabled && [...holds].some(([slug, ns]) => slug !== row.slug && getInstance(db, slug).serverId === row.serverId && numbersOf(row.slug).some((n) => ns.has(n)));
      let threw: unknown;
      try { setPublicPorts({ db, catalog }, row.slug, { enabled: op.enabled, address: ADDRESS }, 'test'); } catch (err) { threw = err; }
      const after = getInstance(db, row.slug);
      if (conflict) {
        refused++;
        if ((threw as { code?: string } | undefined)?.code !== 'CATTERY_ERR_PORT_TAKEN') throw new Error(`expected a refusal, got ${String(threw)}`);
        if (after.generation !== before.generation || JSON.stringify(after.config) !== JSON.stringify(before.config)) throw new Error('a refusal changed the row');
        continue;
      }
      if (threw) throw threw;
      const was = holds.has(row.slug);
      if (op.enabled) holds.set(row.slug, new Set(numbersOf(row.slug))); else holds.delete(row.slug);
      if (after.generation !== before.generation + (was === op.enabled ? 0 : 1)) throw new Error('a change is exactly one new generation; asking again none');
      // The database agrees with the model, and no two instances of a server share a number.
      const seen = new Map<string, string>();
      for (const r of rows.map((x) => getInstance(db, x.slug))) {
        if (Boolean(r.config.publicPorts) !== holds.has(r.slug)) throw new Error(`${r.slug}: database and model differ`);
        for (const n of Object.values(r.config.publicPorts?.ports ?? {})) {
          const key = `${r.serverId}:${n}`;
          if (seen.has(key)) throw new Error(`${n} held twice on server ${r.serverId}: ${seen.get(key)} and ${r.slug}`);
          seen.set(key, r.slug);
        }
      }
    }
  }), { numRuns: 100, seed: 20261211 });
  t.ok(refused > 0, `${steps} requests over 100 generated cases, ${refused} refused`);
});
