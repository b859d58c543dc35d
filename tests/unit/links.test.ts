// Declared links, without an engine: every kind of bad `links` declaration is refused at load with the file and the
// field named; a linked value reaches an instance only when the variable's own pattern accepts it (generated hostile
// values from the linked instance); a required link cannot be left out; the precedence override > link > default.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { loadCatalog } from '../../src/catalog/load.js';
import { checkLinks, fillLinkTemplate } from '../../src/catalog/links.js';
import { plainEnvOf } from '../../src/catalog/env.js';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import type { Instance } from '../../src/db/schema.js';
import { ensureDefaultServer } from '../../src/orchestrator/servers.js';
import { createInstance, updateInstance } from '../../src/orchestrator/instances.js';
import { linkStatus, linkValues } from '../../src/orchestrator/links.js';
import { environmentOf } from '../../src/orchestrator/docker/container-spec.js';

const base = (id: string) => ({
  id, name: { fr: id, en: id }, description: { fr: id, en: id }, openForSignup: false,
  image: { production: 'busybox:1.36.1', local: { base: 'busybox', dockerfile: 'Dockerfile' } },
  ports: [] as object[], volumes: [], environment: {} as Record<string, object>, limits: { memoryMb: 32, cpus: 0.25, pids: 32 },
  capabilities: [], readOnlyRootfs: true, tmpfs: [],
});
const HOST = '(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*';
const dst = () => ({
  ...base('dst'),
  ports: [{ name: 'a', container: 993, protocol: 'tcp', publish: true }, { name: 'b', container: 25, protocol: 'tcp', publish: true }],
  environment: {
    DST_NAME: { required: true, overridable: true, pattern: '[A-Za-z0-9.-]{1,100}' },
    DST_KEY: { secret: { length: 16 } },
  },
});
const src = (link: object = {}, env: Record<string, object> = {}) => ({
  ...base('src'),
  environment: {
    SRC_HOST: { required: true, overridable: true, pattern: HOST },
    SRC_PORT: { value: '1', overridable: true, pattern: '[1-9][0-9]{0,4}' },
    SRC_NAME: { value: 'none', pattern: '[a-z]{1,20}' },
    SRC_KEY: { secret: { length: 16 } },
    ...env,
  },
  links: [{ name: 'peer', service: 'dst', required: false, ports: ['a'], env: { SRC_HOST: '{host}', SRC_PORT: '{port.a}', SRC_NAME: '{env.DST_NAME}' }, ...link }],
});

function catalogOf(t: Parameters<Parameters<typeof t.test>[1]>[0], manifests: object[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-links-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const m of manifests) {
    const id = (m as { id: string }).id;
    fs.mkdirSync(path.join(dir, id));
    fs.writeFileSync(path.join(dir, id, 'service.json'), JSON.stringify(m));
    fs.writeFileSync(path.join(dir, id, 'Dockerfile'), 'FROM scratch\n');
  }
  return loadCatalog([dir]);
}

t.test('a good declaration loads; every kind of bad one is refused with its field', async (t) => {
  const good = catalogOf(t, [dst(), src()]);
  t.same(good.errors, []);
  const bad: [string, object, Record<string, object> | undefined, RegExp, RegExp][] = [
    ['unknown service', { service: 'nowhere' }, undefined, /\/links\/0\/service/, /no service "nowhere"/],
    ['unknown port', { ports: ['a', 'zz'] }, undefined, /\/links\/0\/ports\/1/, /no port named zz/],
    ['undeclared variable', { env: { NOPE: '{host}' } }, undefined, /\/links\/0\/env\/NOPE/, /not a variable of this service/],
    ['a secret filled', { env: { SRC_KEY: '{host}' } }, undefined, /\/links\/0\/env\/SRC_KEY/, /generated secret/],
    ['a variable without pattern', { env: { LOOSE: '{host}' } }, { LOOSE: { value: 'x' } }, /\/links\/0\/env\/LOOSE/, /must declare a pattern/],
    ['unknown placeholder', { env: { SRC_HOST: '{secret.DST_KEY}' } }, undefined, /\/links\/0\/env\/SRC_HOST/, /unknown placeholder/],
    ['a port the link does not open', { env: { SRC_PORT: '{port.b}' } }, undefined, /\/links\/0\/env\/SRC_PORT/, /does not open/],
    ['a lone brace', { env: { SRC_HOST: '{host' } }, undefined, /\/links\/0\/env\/SRC_HOST/, /lone/],
    ['the linked service\'s secret', { env: { SRC_NAME: '{env.DST_KEY}' } }, undefined, /\/links\/0\/env\/SRC_NAME/, /never carries a secret/],
    ['an unknown variable of the linked service', { env: { SRC_NAME: '{env.NOPE}' } }, undefined, /\/links\/0\/env\/SRC_NAME/, /no such plain variable/],
    ['no port', { ports: [] }, undefined, /\/links\/0\/ports/, /fewer than 1/],
  ];
  for (const [what, link, env, field, message] of bad) {
    const cat = catalogOf(t, [dst(), src(link, env)]);
    t.ok(cat.errors.some((e) => field.test(e.field) && message.test(e.message) && e.file.endsWith(path.join('src', 'service.json'))),
      `${what}: ${JSON.stringify(cat.errors)}`);
    t.notOk(cat.services.has('src'), `${what}: the service is not offered`);
  }
  const twice = checkLinks({ id: 'x', environment: { A: { value: 'a', pattern: 'a' } }, links: [
    { name: 'p', service: 'dst', required: false, ports: ['a'], env: { A: '{host}' } },
    { name: 'p', service: 'dst', required: false, ports: ['a'], env: { A: '{host}' } },
  ] });
  t.match(twice.map((v) => v.message).join('\n'), /duplicate link name p[\s\S]*already filled by link p/);
});

t.test('linked values reach the instance only in the shape its variable accepts; precedence; required links', async (t) => {
  const catalog = catalogOf(t, [dst(), src(), { ...src({ required: true }), id: 'needy' }]);
  t.same(catalog.errors, []);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cattery-links-db-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const db = openDb(path.join(dir, 'cattery.db'));
  t.teardown(() => db.$client.close());
  applyMigrations(db);
  ensureDefaultServer(db, 'unix:///nonexistent.sock', '127.0.0.1');
  let hostOfTarget = 'peer.asso.example';
  const deps = { db, catalog, portRange: [40000, 40999] as const, subnetPool: '10.98.0.0/16', linkHostOf: () => hostOfTarget };
  const target = createInstance(deps, { service: 'dst', slug: 'cible', env: { DST_NAME: 'quartier' }, desired: 'stopped' }, 'test');
  const made = createInstance(deps, { service: 'src', slug: 'source', links: { peer: 'cible' }, desired: 'stopped' }, 'test');
  t.same(made.config.linkedEnv, { SRC_HOST: 'peer.asso.example', SRC_PORT: '993', SRC_NAME: 'quartier' }, 'host, container port and variable of the linked instance');
  t.not(made.config.links![0]!.subnet, made.config.subnet, 'the link has its own /28');
  const env = Object.fromEntries(environmentOf(catalog.services.get('src')!.manifest, made).map((e) => e.split(/=(.*)/s).slice(0, 2)));
  t.equal(env.SRC_HOST, 'peer.asso.example', 'the container gets the linked value');
  const overridden = updateInstance(deps, 'source', { env: { SRC_HOST: 'autre.example' } }, 'test', 'change');
  t.equal(plainEnvOf(catalog.services.get('src')!.manifest, overridden.config).SRC_HOST, 'autre.example', 'an administrator\'s value wins where overridable');
  t.equal(plainEnvOf(catalog.services.get('src')!.manifest, overridden.config).SRC_NAME, 'quartier', 'the link\'s value for the rest');

  t.throws(() => createInstance(deps, { service: 'needy', slug: 'seul', desired: 'stopped' }, 'test'), { code: 'CATTERY_ERR_LINK', message: /needs a link "peer"/ }, 'a required link cannot be left out');
  t.throws(() => createInstance(deps, { service: 'src', slug: 'sans-lien', desired: 'stopped' }, 'test'), { code: 'CATTERY_ERR_VALIDATION', message: /SRC_HOST is required/ },
    'without the link, its variables must be given by hand');

  // Whatever the linked instance holds (its name, its variables: values its own looser patterns accept), a value
  // reaches this instance only if this instance's pattern accepts it; otherwise the link is refused or reported.
  const manifest = catalog.services.get('src')!.manifest;
  const decl = manifest.links![0]!;
  const patterns = Object.fromEntries(['SRC_HOST', 'SRC_PORT', 'SRC_NAME'].map((k) => [k, new RegExp(`^(?:${(manifest.environment[k] as { pattern: string }).pattern})$`, 'u')]));
  const hostile = fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('a;b$(id)', 'x\ny', 'a b', "quo'te", '${IFS}', 'é', '../..', ''), fc.domain());
  fc.assert(fc.property(hostile, hostile, (host, name) => {
    const fake = { ...target, config: { ...target.config, env: { DST_NAME: name } } } as Instance;
    const { env: got, problems } = linkValues(catalog, manifest, decl, fake, host);
    for (const [k, v] of Object.entries(got)) if (!patterns[k]!.test(v) || /[\u0000-\u001f]/.test(v)) return false;
    return Object.keys(got).length + problems.length === 3;
  }), { numRuns: 500 });
  t.pass('500 generated linked values: each either fits its variable\'s pattern or is reported, never passed on');
  hostOfTarget = 'bad host;$(id)';
  t.throws(() => createInstance(deps, { service: 'src', slug: 'source-2', links: { peer: 'cible' }, desired: 'stopped' }, 'test'),
    { code: 'CATTERY_ERR_LINK', message: /SRC_HOST .* does not have the expected shape/ }, 'a linked value that does not fit refuses the link');

  // A pass: today's values, and a deleted linked instance reported with the values kept.
  hostOfTarget = 'nouveau.asso.example';
  const now = linkStatus(deps, made, new Map([[target.id, target]]));
  t.same(now, { linkedEnv: { SRC_HOST: 'nouveau.asso.example', SRC_PORT: '993', SRC_NAME: 'quartier' }, problems: [] }, 'a new name is seen');
  const orphan = linkStatus(deps, made, new Map());
  t.same(orphan.linkedEnv, made.config.linkedEnv, 'the last values are kept');
  t.match(orphan.problems.join(), /instance "cible" was deleted/);
  t.equal(fillLinkTemplate('imaps://{host}:{port.a}/{env.X}', { host: 'h', ports: { a: 993 }, env: { X: 'y' } }), 'imaps://h:993/y');
});
