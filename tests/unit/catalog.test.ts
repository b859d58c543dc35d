// Manifests: the shipped catalog is valid, the JSON Schema file is the one the code uses, and every kind of bad
// manifest is refused with the file and the field named, by the loader and by `cattery catalog check`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { loadCatalog } from '../../src/catalog/load.js';
import { manifestJsonSchema } from '../../src/cli/main.js';
import { buildContainerSpec } from '../../src/orchestrator/docker/container-spec.js';
import { wellKnownPorts } from '../../src/orchestrator/public-ports.js';
import { ROOT } from '../helpers.js';

const probe = () => JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/services/probe/service.json'), 'utf8'));

function catalogWith(t: Parameters<Parameters<typeof tap.test>[1]>[0], id: string, manifest: unknown, raw?: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-cat-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, id));
  fs.writeFileSync(path.join(dir, id, 'service.json'), raw ?? JSON.stringify(manifest));
  fs.writeFileSync(path.join(dir, id, 'Dockerfile'), 'FROM scratch\n');
  return dir;
}
import tap from 'tap';

t.test('the shipped catalog is valid and services/schema.json is current', async (t) => {
  const cat = loadCatalog([path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')]);
  t.same(cat.errors, []);
  t.same([...cat.services.keys()].sort(), ['files', 'mail', 'pads', 'probe', 'webmail']);
  for (const id of ['mail', 'pads', 'files', 'webmail']) t.match(cat.services.get(id)!.manifest.image.production, /^(docker\.io|ghcr\.io)\//, `${id} names its upstream image`);
  t.equal(fs.readFileSync(path.join(ROOT, 'services/schema.json'), 'utf8'), manifestJsonSchema(), 'run `cattery catalog schema --out services/schema.json`');
});

const bad: [string, (m: Record<string, any>) => unknown, RegExp, RegExp][] = [
  ['privileged asked', (m) => ({ ...m, privileged: true }), /^\/$/, /"privileged" is not allowed/],
  ['host network asked', (m) => ({ ...m, networkMode: 'host' }), /^\/$/, /"networkMode" is not allowed/],
  ['SYS_ADMIN', (m) => ({ ...m, capabilities: ['SYS_ADMIN'] }), /\/capabilities\/0/, /SYS_ADMIN is not allowed/],
  ['volume over /etc', (m) => ({ ...m, volumes: [{ name: 'x', path: '/etc', sizeMb: 16 }] }), /\/volumes\/0\/path/, /system directory/],
  ['docker socket', (m) => ({ ...m, volumes: [{ name: 'x', path: '/var/run/docker.sock', sizeMb: 16 }] }), /\/volumes\/0\/path/, /system directory/],
  ['traversal', (m) => ({ ...m, volumes: [{ name: 'x', path: '/data/../etc', sizeMb: 16 }] }), /\/volumes\/0\/path/, /\.\./],
  ['missing limits', (m) => { const c = { ...m }; delete c.limits; return c; }, /\/limits/, /required/],
  ['memory as text', (m) => ({ ...m, limits: { ...m.limits, memoryMb: 'lots' } }), /\/limits\/memoryMb/, /integer/],
  ['bad env name', (m) => ({ ...m, environment: { 'bad name': { value: 'x' } } }), /\/environment/, /.+/],
  ['short secret', (m) => ({ ...m, environment: { S: { secret: { length: 4 } } } }), /\/environment\/S/, /.+/],
  ['id mismatch', (m) => ({ ...m, id: 'other' }), /\/id/, /folder name/],
  ['missing shared file', (m) => ({ ...m, image: { ...m.image, local: { ...m.image.local, shared: ['nope.cjs'] } } }), /\/image\/local\/shared/, /not found/],
  ['account operation over HTTP', (m) => ({ ...m, accounts: { adapter: 'exec', operations: { create: { http: { method: 'POST', port: 'http', path: '/' } } } } }), /\/accounts\/operations\/create/, /"http" is not allowed/],
  ['volume without size', (m) => ({ ...m, volumes: [{ name: 'd', path: '/a' }] }), /\/volumes\/0\/sizeMb/, /required/],
  ['overridable without pattern', (m) => ({ ...m, environment: { G: { value: 'x', overridable: true } } }), /\/environment\/G/, /must declare a pattern/],
  ['pattern that lets anything through', (m) => ({ ...m, environment: { G: { value: 'x', overridable: true, pattern: '.*' } } }), /\/environment\/G\/pattern/, /accepts/],
  ['pattern that lets a space through', (m) => ({ ...m, environment: { G: { value: 'x', overridable: true, pattern: '[a-z ]+' } } }), /\/environment\/G\/pattern/, /accepts/],
  ['pattern that does not compile', (m) => ({ ...m, environment: { G: { value: 'x', overridable: true, pattern: '[a-z' } } }), /\/environment\/G\/pattern/, /not a valid/],
  ['required with a default', (m) => ({ ...m, environment: { G: { value: 'x', required: true, overridable: true, pattern: '[a-z]+' } } }), /\/environment\/G/, /may not also have a default/],
  ['required but not overridable', (m) => ({ ...m, environment: { G: { required: true } } }), /\/environment\/G/, /must be overridable/],
  ['neither value nor required', (m) => ({ ...m, environment: { G: { overridable: true, pattern: '[a-z]+' } } }), /\/environment\/G/, /needs a value/],
  ['default outside its pattern', (m) => ({ ...m, environment: { G: { value: 'X1', overridable: true, pattern: '[a-z]+' } } }), /\/environment\/G/, /does not match its own pattern/],
  ['well-known number on a port kept off the host', (m) => ({ ...m, ports: [{ ...m.ports[0], publish: false, wellKnown: 25 }] }), /\/ports\/0\/wellKnown/, /not published/],
  ['well-known number of the front door', (m) => ({ ...m, ports: [{ ...m.ports[0], wellKnown: 443 }] }), /\/ports\/0\/wellKnown/, /front door/],
  ['one well-known number for two ports', (m) => ({ ...m, ports: [{ ...m.ports[0], wellKnown: 25 }, { name: 'b', container: 8081, protocol: 'tcp', publish: true, wellKnown: 25 }] }), /\/ports\/1\/wellKnown/, /two ports/],
  ['well-known number out of range', (m) => ({ ...m, ports: [{ ...m.ports[0], wellKnown: 70000 }] }), /\/ports\/0\/wellKnown/, /<= 65535/],
  ['duplicate volume', (m) => ({ ...m, volumes: [{ name: 'd', path: '/a', sizeMb: 16 }, { name: 'd', path: '/b', sizeMb: 16 }] }), /\/volumes\/1\/name/, /duplicate/],
  ['access placeholder unknown', (m) => ({ ...m, access: { fr: 'Allez sur {url}', en: 'Go to {web}' } }), /\/access\/fr/, /unknown placeholder \{url\}/],
  ['access {web} without a web port', (m) => { const c = { ...m, access: { fr: '{web}/', en: '{web}/' } }; delete c.http; return c; }, /\/access\/fr/, /needs the service to declare `http`/],
  ['access printing a secret', (m) => ({ ...m, access: { fr: '{env.PROBE_SECRET}', en: 'x' } }), /\/access\/fr/, /secret is never printed/],
  ['access naming no port', (m) => ({ ...m, access: { fr: 'x', en: 'port {port.nope}' } }), /\/access\/en/, /no port of that name/],
  ['link to a service not in the catalog', (m) => ({ ...m, links: [{ name: 'l', service: 'nowhere', ports: ['http'], env: {} }] }), /\/links\/0\/service/, /no service "nowhere"/],
];

t.test('bad manifests are refused with file and field', async (t) => {
  for (const [what, mutate, field, message] of bad) {
    const dir = catalogWith(t, 'probe', mutate(probe()));
    const cat = loadCatalog([dir]);
    t.equal(cat.services.size, 0, `${what}: not loaded`);
    t.ok(cat.errors.some((e) => field.test(e.field) && message.test(e.message) && e.file.endsWith('probe/service.json')),
      `${what}: ${JSON.stringify(cat.errors)}`);
  }
  const dir = catalogWith(t, 'probe', null, '{ "id": "probe", ');
  t.match(loadCatalog([dir]).errors[0], { field: '/', message: /not valid JSON/ });
});

t.test('cattery catalog check exits 1 and names the file and field', async (t) => {
  const dir = catalogWith(t, 'probe', { ...probe(), capabilities: ['NET_ADMIN'] });
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'catalog', 'check', '--dir', dir], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(r.stderr, /probe\/service\.json: \/capabilities\/0: capability NET_ADMIN is not allowed/);
  const good = spawnSync(process.execPath, [path.join(ROOT, 'bin/cattery.js'), 'catalog', 'check', '--dir', path.join(ROOT, 'services')], { encoding: 'utf8' });
  t.equal(good.status, 0, good.stderr);
  t.match(good.stdout, /catalog ok: files, mail, pads/);
});

t.test('the container spec is hardened whatever the manifest says', async (t) => {
  const cat = loadCatalog([path.join(ROOT, 'services')]);
  for (const svc of cat.services.values()) {
    const spec = buildContainerSpec({
      hosterId: 'h', manifest: svc.manifest, server: { publishAddress: '127.0.0.1' },
      instance: { slug: 's1', generation: 1, service: svc.manifest.id, image: 'img', config: { ports: { http: 20000, smtp: 20001, submission: 20002, imap: 20003 }, secrets: {}, env: {} } },
    });
    const h = spec.HostConfig!;
    t.same(h.CapDrop, ['ALL']);
    t.equal(h.Privileged, false);
    t.same(h.SecurityOpt, ['no-new-privileges:true']);
    t.ok(h.Memory! > 0 && h.NanoCpus! > 0 && h.PidsLimit! > 0);
    t.notOk(h.Binds);
    t.ok(Object.values(h.PortBindings ?? {}).flat().every((b) => (b as { HostIp: string }).HostIp === '127.0.0.1'));
    t.equal(spec.Labels!['cattery.hoster'], 'h');
  }
});

t.test('well-known ports are bound on the public address only once published, beside the allocated ones', async (t) => {
  const cat = loadCatalog([path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')]);
  let published = 0;
  for (const svc of cat.services.values()) {
    const ports = Object.fromEntries(svc.manifest.ports.map((p, i) => [p.name, 20000 + i]));
    const wellKnown = wellKnownPorts(svc.manifest);
    const spec = (publicPorts?: { address: string; ports: Record<string, number> }) => buildContainerSpec({
      hosterId: 'h', manifest: svc.manifest, server: { publishAddress: '127.0.0.1' },
      instance: { slug: 's1', generation: 1, service: svc.manifest.id, image: 'img', config: { ports, secrets: {}, env: {}, ...(publicPorts ? { publicPorts } : {}) } },
    }).HostConfig!.PortBindings as Record<string, { HostIp: string; HostPort: string }[]>;
    const before = spec();
    t.ok(Object.values(before).flat().every((b) => b.HostIp === '127.0.0.1'), `${svc.manifest.id}: nothing on the public address until asked`);
    const after = spec({ address: '203.0.113.7', ports: wellKnown });
    for (const p of svc.manifest.ports) {
      const key = `${p.container}/${p.protocol ?? 'tcp'}`;
      const want = [{ HostIp: '127.0.0.1', HostPort: String(ports[p.name]) }, ...(wellKnown[p.name] ? [{ HostIp: '203.0.113.7', HostPort: String(wellKnown[p.name]) }] : [])];
      t.same(after[key], want, `${svc.manifest.id}/${p.name}: ${want.map((b) => `${b.HostIp}:${b.HostPort}`).join(', ')}`);
      if (wellKnown[p.name]) published++;
    }
  }
  t.equal(published, 5, 'mail\'s five: smtp 25, submissions 465, submission 587, imaps 993, imap 143');
  t.same(wellKnownPorts(cat.services.get('mail')!.manifest), { smtp: 25, submission: 587, submissions: 465, imap: 143, imaps: 993 });
});

// The kind: every overridable variable of every catalog service, fed generated hostile values, through the same
// checks instance creation and change use (a real SQLite with the real migrations, no engine needed).
t.test('hostile values for every overridable variable of every service are refused at create and change', async (t) => {
  const fc = (await import('fast-check')).default;
  const { applyMigrations, openDb } = await import('../../src/db/connection.js');
  const { ensureDefaultServer } = await import('../../src/orchestrator/servers.js');
  const { createInstance, updateInstance } = await import('../../src/orchestrator/instances.js');
  const { isPlain } = await import('../../src/catalog/env.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-env-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const db = openDb(path.join(dir, 'cattery.db'));
  t.teardown(() => db.$client.close());
  applyMigrations(db);
  ensureDefaultServer(db, 'unix:///var/run/docker.sock', '127.0.0.1');
  const catalog = loadCatalog([path.join(ROOT, 'services'), path.join(ROOT, 'tests/fixtures/services')]);
  const deps = { db, catalog, portRange: [40000, 40999] as const, subnetPool: '10.99.0.0/16' };
  // A value every variable's pattern accepts for the service to start (the default, or a domain for MAIL_DOMAIN).
  const validFor = (decl: { value?: string | undefined }, key: string) => decl.value ?? (key === 'MAIL_DOMAIN' ? 'asso.example' : 'x');
  const META = [';', '$(id)', '`id`', ' ', '\n', '\r', '\t', '\0', '"', "'", '\\', '|', '&', '>', '<', '{', '}', '*', '#', '!', '~', '\u00a0', '\u202e', 'é', '😺', '\u0000'];
  const hostile = (good: string) => fc.oneof(
    fc.tuple(fc.nat({ max: good.length }), fc.constantFrom(...META)).map(([at, m]) => good.slice(0, at) + m + good.slice(at)),
    fc.constant('a;b$(id)'), fc.constant(''), fc.constant(`${good}\nINJECTED=1`),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((s) => /[^\x21-\x7e]|[;$`"'\\|&<>{}*#!~]/.test(s)),
    fc.string({ minLength: 254, maxLength: 600 }).map((s) => good + s),
    fc.constant('a'.repeat(254)), fc.constant(`${'a.'.repeat(127)}ab`),
  );
  let slugN = 0;
  for (const svc of catalog.services.values()) {
    const m = svc.manifest;
    const overridable = Object.entries(m.environment).filter(([, d]) => isPlain(d) && d.overridable);
    const base = Object.fromEntries(Object.entries(m.environment).filter(([, d]) => isPlain(d) && d.required).map(([k, d]) => [k, validFor(d as { value?: string }, k)]));
    const slug = `env-${m.id}`;
    createInstance(deps, { service: m.id, slug, env: base }, 'test');
    if (Object.keys(base).length) {
      t.throws(() => createInstance(deps, { service: m.id, slug: `${slug}-none`, env: {} }, 'test'), { code: 'CATTERY_ERR_VALIDATION', message: /is required/ }, `${m.id}: a required variable cannot be left out`);
      t.throws(() => updateInstance(deps, slug, { env: {} }, 'test', 'change'), { code: 'CATTERY_ERR_VALIDATION', message: /is required/ });
    }
    for (const [key, decl] of overridable) {
      const good = validFor(decl as { value?: string }, key);
      fc.assert(fc.property(hostile(good), (value) => {
        const env = { ...base, [key]: value };
        const refusedCreate = (() => { try { createInstance(deps, { service: m.id, slug: `h${slugN++}-x`, env }, 'test'); return false; } catch (e) { return (e as { code?: string }).code === 'CATTERY_ERR_VALIDATION'; } })();
        const refusedChange = (() => { try { updateInstance(deps, slug, { env }, 'test', 'change'); return false; } catch (e) { return (e as { code?: string }).code === 'CATTERY_ERR_VALIDATION'; } })();
        return refusedCreate && refusedChange;
      }), { numRuns: 300 });
      t.pass(`${m.id}.${key}: 300 hostile values refused at create and change`);
    }
  }
  // And the shape they are for still passes: generated domain names for mail.
  fc.assert(fc.property(fc.domain().filter((d) => d.length <= 253), (domain) => {
    updateInstance(deps, 'env-mail', { env: { MAIL_DOMAIN: domain } }, 'test', 'change');
    return true;
  }), { numRuns: 300 });
  t.pass('300 generated domains accepted for MAIL_DOMAIN');
  t.throws(() => createInstance(deps, { service: 'mail', slug: 'mail-upper', env: { MAIL_DOMAIN: 'Asso.Example' } }, 'test'), { code: 'CATTERY_ERR_VALIDATION' }, 'upper case refused: Postfix and the passwd file compare as written');
  t.throws(() => createInstance(deps, { service: 'mail', slug: 'mail-nodot', env: { MAIL_DOMAIN: 'localhost' } }, 'test'), { code: 'CATTERY_ERR_VALIDATION' });
  t.throws(() => createInstance(deps, { service: 'probe', slug: 'probe-secret', env: { PROBE_SECRET: 'mine' } }, 'test'), { code: 'CATTERY_ERR_VALIDATION', message: /not overridable/ });
});
