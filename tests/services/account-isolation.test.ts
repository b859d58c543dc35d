// Kind: an operation on one account never changes another (issue 9, item 1). For every catalog service with account
// operations, on one real instance: generated sets of valid usernames that share prefixes and suffixes, random
// sequences of all nine operations through cattery's HTTP API, a model of what each account should be, and after
// each sequence every account checked at the service itself: it logs in with its own password and no other, a
// suspended or deleted one does not, and it keeps exactly its own data (through the service and in its export).
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import fc from 'fast-check';
import { extract } from 'tar-stream';
import { pino } from 'pino';
import { loadCatalog } from '../../src/catalog/load.js';
import { ACCOUNT_OPERATIONS, OPTIONAL_ACCOUNT_OPERATIONS } from '../../src/catalog/manifest.js';
import { connectEngine } from '../../src/orchestrator/docker/engine.js';
import { buildImages, buildWorkDir } from '../../src/orchestrator/docker/images.js';
import { HEALTHY_WITHIN_MS, ROOT, subnetPoolSlice, testRuntime, waitFor } from '../helpers.js';
import { PROBES, newMarker, signedIn, type ProbeCtx } from './probes.js';

const SEED = Number(process.env.ISOLATION_SEED ?? Date.now() % 2 ** 31);
// ISOLATION_CATALOG points at another catalog folder, e.g. a copy holding an older adapter, to see this test fail.
const catalogDir = process.env.ISOLATION_CATALOG ?? `${ROOT}/services`;
const catalog = loadCatalog([catalogDir]);
const withAccounts = [...catalog.services.values()].filter((s) => Object.keys(s.manifest.accounts?.operations ?? {}).length > 0);

t.test('every catalog service with accounts has a probe', async (t) => {
  t.ok(withAccounts.length > 0);
  for (const s of withAccounts) t.ok(PROBES[s.manifest.id], `${s.manifest.id} has a login and data probe in tests/services/probes.ts`);
  for (const s of withAccounts) {
    const required = ACCOUNT_OPERATIONS.filter((op) => !OPTIONAL_ACCOUNT_OPERATIONS.includes(op));
    const has = Object.keys(s.manifest.accounts!.operations);
    t.same(has.filter((op) => !(OPTIONAL_ACCOUNT_OPERATIONS as readonly string[]).includes(op)).sort(), [...required].sort(), `${s.manifest.id} implements all nine required operations`);
  }
});

const USERNAME = /^[a-z][a-z0-9._-]{0,30}[a-z0-9]$/;
const valid = (u: string) => USERNAME.test(u) && !u.includes('..');

/** 3 to 5 distinct valid usernames around one base: the base, longer names ending or starting with it, and a tail
 * of it (dupont, marie.dupont, dupont.m, dupont-2, jdupont, upont). */
// Object.prototype's own names and __proto__ that are valid usernames (constructor): a store indexed by a plain
// object once took them for existing accounts, so they are bases too, now and then.
const PROTO_NAMES = [...Object.getOwnPropertyNames(Object.prototype), '__proto__'].filter(valid);
const nameSet = fc.tuple(
  fc.oneof({ weight: 4, arbitrary: fc.stringMatching(/^[a-z]{3,8}$/) }, { weight: 1, arbitrary: fc.constantFrom(...PROTO_NAMES) }),
  fc.array(fc.tuple(fc.constantFrom('word.', 'letter', 'tail', '.letter', '-digit', '_word', 'digit', 'base'), fc.stringMatching(/^[a-z]{1,6}$/), fc.integer({ min: 0, max: 9 })), { minLength: 4, maxLength: 8 }),
).map(([base, vs]) => {
  const names = vs.map(([kind, w, d]) => {
    switch (kind) {
      case 'word.': return `${w}.${base}`;
      case 'letter': return `${w[0]}${base}`;
      case 'tail': return base.slice(Math.min(d % 3 + 1, base.length - 2));
      case '.letter': return `${base}.${w[0]}`;
      case '-digit': return `${base}-${d}`;
      case '_word': return `${base}_${w}`;
      case 'digit': return `${base}${d}`;
      default: return base;
    }
  });
  return [...new Set([base, ...names].filter(valid))].slice(0, 5);
}).filter((s) => s.length >= 3);

type Op =
  | { op: 'create'; who: number; quota: number }
  | { op: 'setPassword'; who: number }
  | { op: 'suspend' | 'resume' | 'usage' | 'export' | 'import' | 'delete'; who: number }
  | { op: 'setQuota'; who: number; quota: number };
const who = fc.integer({ min: 0, max: 4 });
const quota = fc.integer({ min: 1, max: 50 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('create' as const), who, quota }) },
  fc.record({ op: fc.constant('setPassword' as const), who }),
  fc.record({ op: fc.constantFrom('suspend' as const, 'resume' as const, 'usage' as const, 'export' as const, 'delete' as const), who }),
  // An import puts back the account's last export (a restore from yesterday): after a delete and a new create in
  // between, its data is the former one's.
  { weight: 2, arbitrary: fc.record({ op: fc.constant('import' as const), who }) },
  fc.record({ op: fc.constant('setQuota' as const), who, quota }),
);

interface Acc { exists: boolean; password: string; suspended: boolean; quota: number; data: string[]; formerPasswords: string[]; saved?: { tar: Buffer; data: string[] } }

async function untar(buf: Buffer): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  // tar-fs writes to disk; tar-stream (its dependency) reads entries in memory.
  const x = extract();
  x.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => { if (h.type === 'file') files.set(h.name.replace(/^\.\//, ''), Buffer.concat(chunks)); next(); });
  });
  await pipeline(Readable.from(buf), x as unknown as Writable);
  return files;
}

let passwordCounter = 0;
const newPassword = () => `pw-${(passwordCounter++).toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

// Bounded: the whole file's sequences share one time budget (the services run at the same time, each on its own
// runtime and instance); each service must finish at least one sequence (fast-check fails a property interrupted
// before its first run).
const BUDGET_MS = 300_000;
const RESERVE_MS = 40_000;
const startedAt = Date.now();

// ISOLATION_ONLY=mail runs one service's sequences (while working on it); the suite runs them all.
const chosen = withAccounts.filter((s) => !process.env.ISOLATION_ONLY || s.manifest.id === process.env.ISOLATION_ONLY);
// One service's sequences are sequential (each operation depends on the ones before), but the services share
// nothing: two run at a time (the longest, mail, mostly waits on its sign-in delays while the others run one after
// the other beside it), each with its own runtime, instance and quarter of this file's subnet pool. Not more at
// once: the Node services' health checks (a new node process every 5 or 10 s, 5 s allowed) then failed on a loaded
// machine, and an unhealthy instance refuses account operations.
t.jobs = 2;
const freeSlices = [0, 1, 2, 3];
// Image builds (normally all cached by `npm test`'s build step) one after another: concurrent builds would share
// the Debian base image's build.
let builds: Promise<unknown> = Promise.resolve();

for (const svc of chosen) {
  const id = svc.manifest.id;
  t.test(`${id}: an operation on one account never changes another`, async (t) => {
    const probe = PROBES[id];
    if (!probe) { t.fail(`no probe for ${id}`); return; }
    const log = pino({ level: 'silent' });
    const slice = freeSlices.shift()!;
    // Given back once the runtime's teardown has removed its networks: teardowns run last registered first.
    t.teardown(() => { freeSlices.push(slice); });
    const rt = await testRuntime(t, { healthTimeoutSeconds: 180, catalogDirs: [catalogDir], subnetPool: subnetPoolSlice(slice) });
    const engine = connectEngine('unix:///var/run/docker.sock', { hosterId: rt.config.hosterId, timeoutSeconds: 600, log });
    const build = builds.then(() => buildImages(engine, rt.catalog, { mirror: rt.config.debianMirror, workDir: buildWorkDir(rt.config.dataDir), only: [id], progress: () => undefined }));
    builds = build.catch(() => undefined);
    await build;
    const slug = `iso-${id}`;
    const created = await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: id, slug, ...(Object.keys(probe.env).length ? { env: probe.env } : {}) } });
    t.equal(created.statusCode, 202, created.body);
    await waitFor(`${id} healthy`, async () => (await rt.app.inject(`/api/instances/${slug}`)).json().observed === 'healthy', HEALTHY_WITHIN_MS, 500);
    const ctx: ProbeCtx = { container: `${rt.config.hosterId}-${slug}`, ports: created.json().ports, env: probe.env };
    const api = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, payload?: object) =>
      rt.app.inject({ method, url: `/api/instances/${slug}/accounts${path}`, ...(payload ? { payload } : {}) });

    let run = 0;
    const property = fc.asyncProperty(nameSet, fc.array(opArb, { minLength: 8, maxLength: 12 }), async (names, ops) => {
      run++;
      const model = new Map<string, Acc>(names.map((n) => [n, { exists: false, password: '', suspended: false, quota: 0, data: [], formerPasswords: [] }]));
      const trace: string[] = [];
      const expect = (cond: boolean, what: string) => { if (!cond) throw new Error(`${id} run ${run}: ${what}\n  names ${JSON.stringify(names)}\n  ops ${trace.join(' ; ')}`); };
      try {
        // Every sequence starts with the operations that make the accounts exist, then the random ones.
        const seq: Op[] = [...names.map((_, i) => ({ op: 'create' as const, who: i, quota: 10 })), ...ops];
        for (const o of seq) {
          const name = names[o.who % names.length]!;
          const m = model.get(name)!;
          trace.push(`${o.op}(${name}${'quota' in o ? `,${o.quota}` : ''})`);
          switch (o.op) {
            case 'create': {
              const password = newPassword();
              const r = await api('POST', '', { username: name, password, quotaMb: o.quota });
              expect(r.statusCode === (m.exists ? 200 : 201), `create ${name}: ${r.statusCode} ${r.body}`);
              if (!m.exists) {
                Object.assign(m, { exists: true, password, suspended: false, quota: o.quota, data: [] });
                const marker = newMarker();
                await probe.seed(ctx, name, password, marker);
                m.data.push(marker);
              }
              break;
            }
            case 'setPassword': {
              const password = newPassword();
              const r = await api('PATCH', `/${name}`, { password });
              expect(r.statusCode === (m.exists ? 200 : 404), `setPassword ${name}: ${r.statusCode} ${r.body}`);
              if (m.exists) { m.formerPasswords.push(m.password); m.password = password; }
              break;
            }
            case 'suspend': case 'resume': {
              const r = await api('POST', `/${name}/${o.op}`);
              expect(r.statusCode === (m.exists ? 200 : 404), `${o.op} ${name}: ${r.statusCode} ${r.body}`);
              if (m.exists) m.suspended = o.op === 'suspend';
              break;
            }
            case 'setQuota': {
              const r = await api('PATCH', `/${name}`, { quotaMb: o.quota });
              expect(r.statusCode === (m.exists ? 200 : 404), `setQuota ${name}: ${r.statusCode} ${r.body}`);
              if (m.exists) m.quota = o.quota;
              break;
            }
            case 'usage': {
              const r = await api('GET', `/${name}?usage=true`);
              expect(r.statusCode === (m.exists ? 200 : 404), `usage ${name}: ${r.statusCode} ${r.body}`);
              if (m.exists) expect(r.json().usageItems === m.data.length, `usage ${name}: ${r.json().usageItems} items, model has ${m.data.length}`);
              break;
            }
            case 'export': {
              const r = await api('GET', `/${name}/export`);
              expect(r.statusCode === (m.exists ? 200 : 404), `export ${name}: ${r.statusCode}`);
              if (m.exists) {
                const files = await untar(r.rawPayload);
                expect([...files.keys()].every((p) => p.startsWith(`${name}/`)), `export ${name} holds only its own folder: ${[...files.keys()].join(', ')}`);
                expect(same(probe.exported(files, name), m.data), `export ${name}: ${JSON.stringify(probe.exported(files, name))}, model ${JSON.stringify(m.data)}`);
                m.saved = { tar: r.rawPayload, data: [...m.data] };
              }
              break;
            }
            case 'import': {
              if (!m.saved && m.exists) {
                // Nothing exported yet: its export now is what is put back (a round trip through the service).
                const e = await api('GET', `/${name}/export`);
                expect(e.statusCode === 200, `export ${name} before its import: ${e.statusCode}`);
                m.saved = { tar: e.rawPayload, data: [...m.data] };
              }
              if (!m.saved) { trace.pop(); break; }
              const r = await rt.app.inject({ method: 'POST', url: `/api/instances/${slug}/accounts/${name}/import`, headers: { 'content-type': 'application/x-tar' }, payload: m.saved.tar });
              expect(r.statusCode === (m.exists ? 200 : 404), `import ${name}: ${r.statusCode} ${r.body}`);
              if (m.exists) {
                expect(r.json().state === (m.suspended ? 'suspended' : 'active'), `import ${name} keeps its state: ${r.body}`);
                m.data = [...m.saved.data];
              }
              break;
            }
            case 'delete': {
              const r = await api('DELETE', `/${name}`);
              expect(r.statusCode === 204, `delete ${name}: ${r.statusCode} ${r.body}`);
              if (m.exists) { m.formerPasswords.push(m.password); Object.assign(m, { exists: false, suspended: false, data: [] }); }
              break;
            }
          }
        }

        // The check: every account as the service itself sees it. First each account that may sign in, with its own
        // password, one after another; then every refusal (a password that is not its own, a suspended or a deleted
        // account) at the same time: they only read, and each costs the service's own delay for a failed sign-in
        // (Dovecot: 2 s, and more after several in a row from one address), here waited once for them all. Then the
        // exports and cattery's records, one after another (cattery stages at most EXPORTS_AT_ONCE exports at once).
        const live = [...model].filter(([, a]) => a.exists);
        for (const [name, a] of live) {
          if (a.suspended) continue;
          const got = await signedIn(probe, ctx, name, a.password, a.data);
          expect(got !== null, `${name} logs in with its own password`);
          expect(same(got!.data, a.data), `${name} sees its own data: ${JSON.stringify(got!.data)}, model ${JSON.stringify(a.data)}`);
          expect(got!.quota === undefined || got!.quota === a.quota, `${name}'s quota at the service: ${got!.quota} MB, model ${a.quota} MB`);
        }
        const refusals: Promise<void>[] = [];
        const refuses = (name: string, password: string, what: string) => refusals.push(probe.login(ctx, name, password).then((ok) => expect(!ok, what)));
        for (const [name, a] of model) {
          if (a.exists && a.suspended) refuses(name, a.password, `suspended ${name} cannot log in`);
          // A password that is not its own: another live account's (the one a collision would have given it), else
          // one it had before.
          const others = live.filter(([n]) => n !== name).map(([, b]) => b.password);
          const wrong = others[0] ?? a.formerPasswords.find((p) => p !== a.password);
          if (wrong) refuses(name, wrong, `${name} refuses a password that is not its own`);
          if (!a.exists && a.formerPasswords.length) refuses(name, a.formerPasswords.at(-1)!, `deleted ${name} cannot log in with its last password`);
        }
        const failed = (await Promise.allSettled(refusals)).find((c): c is PromiseRejectedResult => c.status === 'rejected');
        if (failed) throw failed.reason;
        for (const [name, a] of model) {
          const r = await api('GET', `/${name}/export`);
          expect(r.statusCode === (a.exists ? 200 : 404), `final export ${name}: ${r.statusCode}`);
          if (a.exists) {
            const got = probe.exported(await untar(r.rawPayload), name);
            expect(same(got, a.data), `${name}'s export holds its own data: ${JSON.stringify(got)}, model ${JSON.stringify(a.data)}`);
          }
          const db = await api('GET', `/${name}`);
          expect(db.statusCode === (a.exists ? 200 : 404), `cattery's record of ${name}: ${db.statusCode}`);
          if (a.exists) expect(db.json().state === (a.suspended ? 'suspended' : 'active') && db.json().quotaMb === a.quota, `cattery's record of ${name}: ${db.body}`);
        }
      } finally {
        for (const n of names) await api('DELETE', `/${n}`);
      }
    });
    const limit = Math.max(RESERVE_MS, BUDGET_MS - (Date.now() - startedAt));
    await fc.assert(property, { numRuns: Number(process.env.ISOLATION_RUNS ?? 2), seed: SEED, endOnFailure: true, interruptAfterTimeLimit: limit })
      .then(() => t.pass(`${id}: ${run} generated sequences (seed ${SEED})`), (err: Error) => t.fail(`${id}: seed ${SEED} (ISOLATION_SEED=${SEED} to replay)\n${(err.cause as Error | undefined)?.message ?? ''}\n${err.message}`));
  });
}

function same(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
}
