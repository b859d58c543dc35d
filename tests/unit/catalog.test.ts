// Manifests: the shipped catalog is valid, the JSON Schema file is the one the code uses, and every kind of bad
// manifest is refused with the file and the field named, by the loader and by `cattery catalog check`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { loadCatalog } from '../../src/catalog/load.js';
import { manifestJsonSchema } from '../../src/cli/main.js';
import { buildContainerSpec } from '../../src/orchestrator/container-spec.js';
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
  t.same([...cat.services.keys()].sort(), ['files', 'mail', 'pads', 'probe']);
  for (const id of ['mail', 'pads', 'files']) t.match(cat.services.get(id)!.manifest.image.production, /^(docker\.io|ghcr\.io)\//, `${id} names its upstream image`);
  t.equal(fs.readFileSync(path.join(ROOT, 'services/schema.json'), 'utf8'), manifestJsonSchema(), 'run `cattery catalog schema --out services/schema.json`');
});

const bad: [string, (m: Record<string, any>) => unknown, RegExp, RegExp][] = [
  ['privileged asked', (m) => ({ ...m, privileged: true }), /^\/$/, /"privileged" is not allowed/],
  ['host network asked', (m) => ({ ...m, networkMode: 'host' }), /^\/$/, /"networkMode" is not allowed/],
  ['SYS_ADMIN', (m) => ({ ...m, capabilities: ['SYS_ADMIN'] }), /\/capabilities\/0/, /SYS_ADMIN is not allowed/],
  ['volume over /etc', (m) => ({ ...m, volumes: [{ name: 'x', path: '/etc' }] }), /\/volumes\/0\/path/, /system directory/],
  ['docker socket', (m) => ({ ...m, volumes: [{ name: 'x', path: '/var/run/docker.sock' }] }), /\/volumes\/0\/path/, /system directory/],
  ['traversal', (m) => ({ ...m, volumes: [{ name: 'x', path: '/data/../etc' }] }), /\/volumes\/0\/path/, /\.\./],
  ['missing limits', (m) => { const c = { ...m }; delete c.limits; return c; }, /\/limits/, /required/],
  ['memory as text', (m) => ({ ...m, limits: { ...m.limits, memoryMb: 'lots' } }), /\/limits\/memoryMb/, /integer/],
  ['bad env name', (m) => ({ ...m, environment: { 'bad name': { value: 'x' } } }), /\/environment/, /.+/],
  ['short secret', (m) => ({ ...m, environment: { S: { secret: { length: 4 } } } }), /\/environment\/S/, /.+/],
  ['id mismatch', (m) => ({ ...m, id: 'other' }), /\/id/, /folder name/],
  ['missing shared file', (m) => ({ ...m, image: { ...m.image, local: { ...m.image.local, shared: ['nope.cjs'] } } }), /\/image\/local\/shared/, /not found/],
  ['account operation over HTTP', (m) => ({ ...m, accounts: { adapter: 'exec', operations: { create: { http: { method: 'POST', port: 'http', path: '/' } } } } }), /\/accounts\/operations\/create/, /"http" is not allowed/],
  ['duplicate volume', (m) => ({ ...m, volumes: [{ name: 'd', path: '/a' }, { name: 'd', path: '/b' }] }), /\/volumes\/1\/name/, /duplicate/],
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
