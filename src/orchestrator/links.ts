// Declared links between instances (manifest `links`): which instance an instance is linked to, checked when it is
// asked for, and the variables the link fills in from the linked instance. The network that carries a link is the
// reconciler's (link-pass.ts); this file only decides and records. All synchronous: it runs inside the creation
// and change transactions (instances.ts).
import { eq } from 'drizzle-orm';
import type { Catalog } from '../catalog/load.js';
import { compilePattern, isPlain, plainEnvOf } from '../catalog/env.js';
import { fillLinkTemplate, type LinkDecl } from '../catalog/links.js';
import type { Manifest } from '../catalog/manifest.js';
import type { Db } from '../db/connection.js';
import { instances, type Instance, type InstanceLink } from '../db/schema.js';
import { fail } from '../errors.js';
import { allocateSubnet } from './subnets.js';

/** The name a linked instance answers to on its link: the name on its certificate, so that the linking service
 * verifies TLS against it as any client would. The ingress domain knows it (ingress/mail-host.ts certificateHostOf);
 * runtime.ts hands it down. */
export type LinkHostOf = (target: Instance) => string;

export interface LinkDeps { db: Db; catalog: Catalog; subnetPool: string; linkHostOf?: LinkHostOf | undefined }

/** The links asked for an instance: link name → the slug of the instance to link to (POST/PATCH `links`). */
export type LinkRequest = Record<string, string>;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

const refuse = (why: string) => fail('CATTERY_ERR_LINK', why);

/** Every /28 the pool has handed out: instances' networks and links' networks alike. */
export function usedSubnets(db: Db): string[] {
  return db.select({ config: instances.config }).from(instances).all()
    .flatMap((r) => [...(r.config.subnet ? [r.config.subnet] : []), ...(r.config.links ?? []).map((l) => l.subnet)]);
}

interface Source { service: string; slug: string; serverId: number; id?: number }

/** The instances a request links to, each checked: a link the manifest declares, an instance that exists, is not
 * being deleted, is not the instance itself, is of the declared service and lives on the same server (a link is a
 * network on one engine). Required links must be there. Throws CATTERY_ERR_LINK naming what is wrong. */
export function checkLinkRequest(db: Db, catalog: Catalog, source: Source, request: LinkRequest): { decl: LinkDecl; target: Instance }[] {
  const decls = catalog.services.get(source.service)?.manifest.links ?? [];
  const out: { decl: LinkDecl; target: Instance }[] = [];
  for (const [name, slug] of Object.entries(request)) {
    const decl = decls.find((d) => d.name === name);
    if (!decl) {
      throw refuse(`service ${source.service} declares no link named "${name}"${decls.length ? ` (its links: ${decls.map((d) => d.name).join(', ')})` : ' (it has none)'}`);
    }
    const target = db.select().from(instances).where(eq(instances.slug, slug)).get();
    if (!target) throw refuse(`link "${name}": no instance "${slug}"`);
    if (target.slug === source.slug || (source.id !== undefined && target.id === source.id)) throw refuse(`link "${name}": an instance cannot be linked to itself`);
    if (target.desired === 'deleted') throw refuse(`link "${name}": instance "${slug}" is being deleted`);
    if (target.service !== decl.service) {
      throw refuse(`link "${name}" needs an instance of service ${decl.service}; "${slug}" is of service ${target.service}`);
    }
    if (target.serverId !== source.serverId) {
      throw refuse(`link "${name}": instance "${slug}" is on another server (a link joins two instances of one server)`);
    }
    out.push({ decl, target });
  }
  const missing = decls.filter((d) => d.required && request[d.name] === undefined);
  if (missing.length) throw refuse(`service ${source.service} needs a link ${missing.map((d) => `"${d.name}" (an instance of ${d.service})`).join(', ')}`);
  return out;
}

/** The variables one link fills in from its linked instance, each checked against the variable's own pattern (a
 * linked value reaches a config file as an administrator's does); a value that does not fit is a problem, not a
 * value. */
export function linkValues(catalog: Catalog, source: Manifest, decl: LinkDecl, target: Instance, host: string): { env: Record<string, string>; problems: string[] } {
  const tm = catalog.services.get(target.service)?.manifest;
  if (!tm) return { env: {}, problems: [`link "${decl.name}": service ${target.service} is no longer in the catalog`] };
  const from = {
    host,
    ports: Object.fromEntries(tm.ports.map((p) => [p.name, p.container])),
    env: plainEnvOf(tm, target.config),
  };
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const [key, template] of Object.entries(decl.env)) {
    const value = fillLinkTemplate(template, from);
    const d = source.environment[key];
    const re = d && isPlain(d) && d.pattern !== undefined ? compilePattern(d.pattern) : null;
    if (!re || CONTROL.test(value) || !re.test(value)) {
      problems.push(`link "${decl.name}": ${key} from instance "${target.slug}" (${JSON.stringify(value.slice(0, 80))}) does not have the expected shape`);
    } else env[key] = value;
  }
  return { env, problems };
}

function hostOf(deps: Pick<LinkDeps, 'linkHostOf'>): LinkHostOf {
  if (!deps.linkHostOf) throw fail('CATTERY_ERR_CONFIG', 'links need the name a linked instance answers to (linkHostOf): this cattery was built without it');
  return deps.linkHostOf;
}

/** A checked request made into the instance's links (a link kept from before keeps its network's subnet) and the
 * variables they fill in. Throws CATTERY_ERR_LINK when a link is refused or gives a value that does not fit. */
export function makeLinks(
  deps: LinkDeps, db: Db, source: Source, request: LinkRequest, keep: readonly InstanceLink[] = [], taken: readonly string[] = [],
): { links: InstanceLink[]; linkedEnv: Record<string, string> } {
  const pairs = checkLinkRequest(db, deps.catalog, source, request);
  if (!pairs.length) return { links: [], linkedEnv: {} };
  const manifest = deps.catalog.services.get(source.service)!.manifest;
  const used = [...usedSubnets(db), ...taken];
  const links: InstanceLink[] = [];
  const linkedEnv: Record<string, string> = {};
  for (const { decl, target } of pairs) {
    const { env, problems } = linkValues(deps.catalog, manifest, decl, target, hostOf(deps)(target));
    if (problems.length) throw refuse(problems.join('; '));
    Object.assign(linkedEnv, env);
    const same = keep.find((l) => l.name === decl.name && l.targetId === target.id);
    const subnet = same?.subnet ?? allocateSubnet(deps.subnetPool, used);
    used.push(subnet);
    links.push({ name: decl.name, targetId: target.id, target: target.slug, subnet });
  }
  return { links, linkedEnv };
}

/** How an instance's links stand now, for a reconcile pass: the variables they fill in today (a broken link keeps
 * the values it last gave, so the instance is not remade for it) and what is wrong with each broken one. */
export function linkStatus(deps: Pick<LinkDeps, 'catalog' | 'linkHostOf'>, inst: Instance, targets: ReadonlyMap<number, Instance>): { linkedEnv: Record<string, string>; problems: string[] } {
  const links = inst.config.links ?? [];
  const manifest = deps.catalog.services.get(inst.service)?.manifest;
  if (!links.length || !manifest) return { linkedEnv: inst.config.linkedEnv ?? {}, problems: [] };
  const linkedEnv = { ...(inst.config.linkedEnv ?? {}) };
  const problems: string[] = [];
  for (const l of links) {
    const decl = manifest.links?.find((d) => d.name === l.name);
    const target = targets.get(l.targetId);
    if (!decl) { problems.push(`link "${l.name}" is no longer declared by service ${inst.service}`); continue; }
    if (!target) { problems.push(`link "${l.name}": instance "${l.target}" was deleted; link another ${decl.service} instance (PATCH links)`); continue; }
    if (target.desired === 'deleted') { problems.push(`link "${l.name}": instance "${l.target}" is being deleted`); continue; }
    if (!deps.linkHostOf) { problems.push(`link "${l.name}": this cattery cannot name linked instances (no linkHostOf)`); continue; }
    const { env, problems: bad } = linkValues(deps.catalog, manifest, decl, target, deps.linkHostOf(target));
    problems.push(...bad);
    Object.assign(linkedEnv, env);
  }
  return { linkedEnv, problems };
}

/** Same variables, same values. */
export function sameEnv(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const x = Object.entries(a ?? {}).sort(([k], [l]) => k.localeCompare(l));
  const y = Object.entries(b ?? {}).sort(([k], [l]) => k.localeCompare(l));
  return JSON.stringify(x) === JSON.stringify(y);
}

/** The instances linked to this one (a webmail linked to a mail instance), not being deleted. */
export function linkedFrom(db: Db, targetId: number): Instance[] {
  return db.select().from(instances).all()
    .filter((i) => i.desired !== 'deleted' && (i.config.links ?? []).some((l) => l.targetId === targetId));
}

/** What the API shows of an instance's links: link name → the linked instance's slug. */
export function linkView(inst: Pick<Instance, 'config'>): Record<string, string> {
  return Object.fromEntries((inst.config.links ?? []).map((l) => [l.name, l.target]));
}
