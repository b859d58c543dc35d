// Kind: a declared link (issue 10) is refused for every invalid combination, over the API, for every service of the
// catalog and every link it declares: an instance that does not exist (generated slugs), one of each other service,
// one on another server, one being deleted, the instance itself, a link name the service does not declare (generated
// names, and for every service without links). Each refusal is a 400 CATTERY_ERR_LINK saying why, and changes
// nothing: no instance is made, a changed instance keeps its generation and its links. The right target is accepted.
// No engine: the server's endpoint leads nowhere, so the reconciler's passes fail and nothing is started.
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import { createRuntime } from '../../src/runtime.js';
import { isPlain } from '../../src/catalog/env.js';
import { asOperator, testConfig } from '../helpers.js';

t.test('links are refused for every invalid target, on create and on change', async (t) => {
  const config = testConfig(t, { dockerEndpoint: 'unix:///nonexistent/cattery-links-test.sock' });
  const rt = await createRuntime(config, pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  asOperator(rt.app);
  const { app, catalog } = rt;
  const post = (payload: object) => app.inject({ method: 'POST', url: '/api/instances', payload });
  // What each service needs to be made: its required variables, each with a value its pattern accepts.
  const envFor = (service: string) => Object.fromEntries(Object.entries(catalog.services.get(service)!.manifest.environment)
    .filter(([, d]) => isPlain(d) && d.required).map(([k]) => [k, k === 'MAIL_DOMAIN' ? 'asso.example' : 'x.example']));
  const make = async (service: string, slug: string, server?: string) => {
    const r = await post({ service, slug, env: envFor(service), desired: 'stopped', ...(server ? { server } : {}) });
    t.equal(r.statusCode, 202, `${slug}: ${r.body.slice(0, 200)}`);
  };

  const services = [...catalog.services.keys()];
  // One instance of every service on this server; one of each on another server; one of each being deleted.
  const other = await app.inject({ method: 'POST', url: '/api/servers', payload: { name: 'ailleurs', dockerEndpoint: 'unix:///nonexistent/cattery-links-other.sock' } });
  t.equal(other.statusCode, 201, other.body);
  for (const s of services) {
    await make(s, `ici-${s}`);
    await make(s, `ailleurs-${s}`, 'ailleurs');
    await make(s, `parti-${s}`);
    const del = await app.inject({ method: 'DELETE', url: `/api/instances/parti-${s}` });
    t.equal(del.statusCode, 202, del.body);
  }
  const existing = new Set(services.flatMap((s) => [`ici-${s}`, `ailleurs-${s}`, `parti-${s}`]));

  const refused = (r: { statusCode: number; json(): { code?: string; message?: string } }, why: RegExp, what: string) => {
    t.equal(r.statusCode, 400, what);
    t.equal(r.json().code, 'CATTERY_ERR_LINK', what);
    t.match(r.json().message, why, what);
  };
  let n = 0;
  const unchanged = async (slug: string, before: { generation: number; links: Record<string, string> }) => {
    const now = (await app.inject(`/api/instances/${slug}`)).json();
    return now.generation === before.generation && JSON.stringify(now.links) === JSON.stringify(before.links);
  };
  const slugArb = fc.stringMatching(/^[a-z][a-z0-9-]{1,20}[a-z0-9]$/).filter((s) => !existing.has(s));
  const nameArb = fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/);

  for (const source of services) {
    const decls = catalog.services.get(source)!.manifest.links ?? [];
    // A service that declares no link, or a name the service does not declare: refused, whatever the target.
    await fc.assert(fc.asyncProperty(nameArb.filter((x) => !decls.some((d) => d.name === x)), async (name) => {
      const slug = `new-${n++}`;
      const r = await post({ service: source, slug, env: envFor(source), links: { [name]: `ici-${source}` } });
      refused(r, /declares no link named/, `${source}: undeclared link ${name}`);
      return (await app.inject(`/api/instances/${slug}`)).statusCode === 404;
    }), { numRuns: 10 });

    for (const decl of decls) {
      const link = (target: string) => ({ [decl.name]: target });
      const cases: [string, RegExp][] = [
        ...services.filter((s) => s !== decl.service).map((s) => [`ici-${s}`, new RegExp(`needs an instance of service ${decl.service}`)] as [string, RegExp]),
        [`ailleurs-${decl.service}`, /on another server/],
        [`parti-${decl.service}`, /being deleted/],
      ];
      for (const [target, why] of cases) {
        const slug = `new-${n++}`;
        refused(await post({ service: source, slug, env: envFor(source), links: link(target) }), why, `${source}.${decl.name} → ${target} (create)`);
        t.equal((await app.inject(`/api/instances/${slug}`)).statusCode, 404, 'nothing made');
        if (target === `ici-${source}`) continue; // changing it to itself: the self case below
        const before = (await app.inject(`/api/instances/ici-${source}`)).json();
        refused(await app.inject({ method: 'PATCH', url: `/api/instances/ici-${source}`, payload: { links: link(target) } }), why, `${source}.${decl.name} → ${target} (change)`);
        t.ok(await unchanged(`ici-${source}`, before), 'nothing changed');
      }
      await fc.assert(fc.asyncProperty(slugArb, async (target) => {
        const slug = `new-${n++}`;
        const r = await post({ service: source, slug, env: envFor(source), links: link(target) });
        refused(r, new RegExp(`no instance "${target}"`), `${source}.${decl.name} → unknown ${target}`);
        return (await app.inject(`/api/instances/${slug}`)).statusCode === 404;
      }), { numRuns: 20 });
      const self = (await app.inject(`/api/instances/ici-${source}`)).json();
      refused(await app.inject({ method: 'PATCH', url: `/api/instances/ici-${source}`, payload: { links: link(`ici-${source}`) } }), /itself/, `${source} linked to itself`);
      t.ok(await unchanged(`ici-${source}`, self), 'nothing changed');
      // The right target is accepted, on create and on change, and shown.
      const ok = await post({ service: source, slug: `lie-${source}`, desired: 'stopped', links: link(`ici-${decl.service}`) });
      t.equal(ok.statusCode, 202, ok.body);
      t.same(ok.json().links, link(`ici-${decl.service}`));
      const changed = await app.inject({ method: 'PATCH', url: `/api/instances/ici-${source}`, payload: { links: link(`ici-${decl.service}`) } });
      t.equal(changed.statusCode, 200, changed.body);
      t.same(changed.json().links, link(`ici-${decl.service}`));
    }
  }
  // Malformed requests stop at the schema: a slug that is no slug, too many links.
  const bad = await post({ service: 'webmail', slug: 'mal-forme', env: envFor('webmail'), links: { mail: 'Not A Slug' } });
  t.equal(bad.statusCode, 400);
  t.equal(bad.json().code, 'CATTERY_ERR_VALIDATION');
});
