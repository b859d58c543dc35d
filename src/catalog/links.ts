// Declared links (manifest `links`): what the catalog can check of them before any instance exists, and how a link's
// variable templates are filled. A linked value reaches a config file inside the container as an overridable one
// does, so every variable a link fills must declare a pattern, and the filled value is checked against it
// (orchestrator/links.ts) exactly as an administrator's would be. A link never carries a secret across: {env.X}
// may only name a plain variable of the linked service.
import type { Manifest } from './manifest.js';
import { isPlain } from './env.js';

export type LinkDecl = NonNullable<Manifest['links']>[number];

const PLACEHOLDER = /\{([^{}]*)\}/g;
const KNOWN = /^(host|port\.[a-z][a-z0-9_-]{0,30}|env\.[A-Z_][A-Z0-9_]{0,63})$/;

export interface LinkViolation { field: string; message: string }

/** What is wrong with one manifest's links on their own (the linked service is checked by checkLinkTargets). */
export function checkLinks(m: Pick<Manifest, 'links' | 'environment' | 'id'>): LinkViolation[] {
  const out: LinkViolation[] = [];
  const names = new Set<string>();
  const filledBy = new Map<string, string>();
  (m.links ?? []).forEach((link, i) => {
    const at = `/links/${i}`;
    if (names.has(link.name)) out.push({ field: `${at}/name`, message: `duplicate link name ${link.name}` });
    names.add(link.name);
    for (const [key, template] of Object.entries(link.env)) {
      const field = `${at}/env/${key}`;
      const decl = m.environment[key];
      if (!decl) { out.push({ field, message: `${key} is not a variable of this service (declare it in environment)` }); continue; }
      if (!isPlain(decl)) { out.push({ field, message: `${key} is a generated secret: a link cannot fill it` }); continue; }
      if (decl.pattern === undefined) out.push({ field, message: `${key} is filled from a link, so it must declare a pattern (the shape the linked value must have)` });
      const other = filledBy.get(key);
      if (other !== undefined) out.push({ field, message: `${key} is already filled by link ${other}` });
      filledBy.set(key, link.name);
      for (const [, ph] of template.matchAll(PLACEHOLDER)) {
        if (!KNOWN.test(ph!)) out.push({ field, message: `unknown placeholder {${ph}} (known: {host}, {port.<name>}, {env.<NAME>})` });
        else if (ph!.startsWith('port.') && !link.ports.includes(ph!.slice(5))) {
          out.push({ field, message: `{${ph}} names a port the link does not open (ports: ${link.ports.join(', ')})` });
        }
      }
      if (/[{}]/.test(template.replace(PLACEHOLDER, ''))) out.push({ field, message: 'a lone { or } (placeholders are {host}, {port.<name>}, {env.<NAME>})' });
    }
  });
  return out;
}

/** What is wrong with the catalog's links across manifests: the linked service exists, has the ports named, and
 * the variables named are plain ones of it. */
export function checkLinkTargets(m: Pick<Manifest, 'links'>, services: ReadonlyMap<string, Pick<Manifest, 'ports' | 'environment'>>): LinkViolation[] {
  const out: LinkViolation[] = [];
  (m.links ?? []).forEach((link, i) => {
    const target = services.get(link.service);
    if (!target) { out.push({ field: `/links/${i}/service`, message: `no service "${link.service}" in the catalog` }); return; }
    link.ports.forEach((p, j) => {
      if (!target.ports.some((x) => x.name === p)) out.push({ field: `/links/${i}/ports/${j}`, message: `service ${link.service} has no port named ${p}` });
    });
    for (const [key, template] of Object.entries(link.env)) {
      for (const [, ph] of template.matchAll(PLACEHOLDER)) {
        if (!ph!.startsWith('env.')) continue;
        const decl = target.environment[ph!.slice(4)];
        if (!decl || !isPlain(decl)) {
          out.push({ field: `/links/${i}/env/${key}`, message: `{${ph}}: service ${link.service} has no such plain variable (a link never carries a secret)` });
        }
      }
    }
  });
  return out;
}

/** What the linked instance offers to templates: the name it answers to, its container ports, its plain variables. */
export interface LinkSource { host: string; ports: Record<string, number>; env: Record<string, string> }

/** A template filled from the linked instance (checked by checkLinks: every placeholder is a known one). */
export function fillLinkTemplate(template: string, from: LinkSource): string {
  return template.replace(PLACEHOLDER, (_all, ph: string) => {
    if (ph === 'host') return from.host;
    if (ph.startsWith('port.')) return String(from.ports[ph.slice(5)] ?? '');
    return from.env[ph.slice(4)] ?? '';
  });
}
