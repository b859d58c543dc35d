// What the catalog offers residents: the services open for sign-up, and how to reach one's account in each (the
// manifest's `access` text with its placeholders filled in).
import type { Instance } from '../db/schema.js';
import { isPlain, plainEnvOf } from './env.js';
import type { Catalog } from './load.js';
import type { Manifest } from './manifest.js';

/** What the association decided for a service over its manifest (governance/settings.ts, by an admin or a vote). */
export interface OfferSetting { openForSignup?: boolean | null; membersOnly?: boolean; defaultQuotaMb?: number | null }
export type OfferSettings = ReadonlyMap<string, OfferSetting>;

/** Whether residents may sign up for a service alone: the association's decision, else the manifest's. A service
 * for members only is never open to a sign-up by a newcomer (an admin makes members' accounts). */
export function isOpen(m: Manifest, s: OfferSetting | undefined): boolean {
  return (s?.openForSignup ?? m.openForSignup) && !s?.membersOnly;
}

export function openServices(catalog: Catalog, settings: OfferSettings = new Map()) {
  return [...catalog.services.values()].filter((s) => isOpen(s.manifest, settings.get(s.manifest.id))).map((s) => s.manifest);
}

/** The open services as a form lists them, in one language. */
export function openServiceChoices(catalog: Catalog, lang: 'fr' | 'en', settings: OfferSettings = new Map()) {
  return openServices(catalog, settings).map((m) => ({ id: m.id, name: m.name[lang], description: m.description[lang] }));
}

/** The port a client reaches each of an instance's ports on, by name: the well-known number where the instance
 * publishes its well-known ports on the public address (orchestrator/public-ports.ts), its allocated host port
 * otherwise. What the access text, the mail client documents and the SRV records announce (ingress/mail-host.ts). */
export function reachablePorts(instance: Pick<Instance, 'config'>): Record<string, number> {
  return { ...instance.config.ports, ...instance.config.publicPorts?.ports };
}

const KNOWN = '(login|host|web|port\\.[a-z0-9_-]+|env\\.[A-Z0-9_]+)';
const PLACEHOLDER = new RegExp(`\\{${KNOWN}\\}`, 'g');

/** What an access text may not say: a placeholder cattery does not fill, {web} for a service with no web port, a
 * port or variable the service does not have, or a secret (the text is printed and shown). */
export function checkAccess(m: Pick<Manifest, 'access' | 'http' | 'ports' | 'environment' | 'address'>): { field: string; message: string }[] {
  const out: { field: string; message: string }[] = [];
  if (m.address !== undefined) {
    // An address is a login and plain variables only (no host, port or web address: those are not an address).
    for (const [, ph] of m.address.matchAll(/\{([^{}]*)\}/g)) {
      if (ph !== 'login' && !/^env\.[A-Z0-9_]+$/.test(ph!)) out.push({ field: '/address', message: `unknown placeholder {${ph}} (known: {login}, {env.<NAME>})` });
      else if (ph!.startsWith('env.')) {
        const d = m.environment[ph!.slice(4)];
        if (!d || !isPlain(d)) out.push({ field: '/address', message: `{${ph}}: no plain variable of that name` });
      }
    }
    if (!m.address.includes('{login}')) out.push({ field: '/address', message: 'an address names its account: {login} is needed' });
  }
  for (const lang of ['fr', 'en'] as const) {
    const text = m.access?.[lang];
    if (!text) continue;
    const field = `/access/${lang}`;
    for (const [, ph] of text.matchAll(/\{([^{}]*)\}/g)) {
      if (!new RegExp(`^${KNOWN}$`).test(ph!)) out.push({ field, message: `unknown placeholder {${ph}} (known: {login}, {host}, {web}, {port.<name>}, {env.<NAME>})` });
      else if (ph === 'web' && !m.http) out.push({ field, message: '{web} needs the service to declare `http` (the port the front door serves)' });
      else if (ph!.startsWith('port.') && !m.ports.some((p) => p.name === ph!.slice(5))) out.push({ field, message: `{${ph}}: no port of that name` });
      else if (ph!.startsWith('env.')) {
        const d = m.environment[ph!.slice(4)];
        if (!d || !isPlain(d)) out.push({ field, message: `{${ph}}: no plain variable of that name (a secret is never printed)` });
      }
    }
  }
  return out;
}

/** The access text of a service for one account, with its placeholders filled in (catalog `access`). `web` is the
 * instance's address through the front door (https://<its first name>) when it has one; without it {web} is the
 * server's address and the instance's own web port, as {host} and {port.<name>} give them. */
export function accessText(
  catalog: Catalog, instance: Pick<Instance, 'service' | 'config'>, login: string, host: string, lang: 'fr' | 'en', web?: string,
): string {
  const m = catalog.services.get(instance.service)?.manifest;
  const template = m?.access?.[lang];
  if (!template) return '';
  const env = plainEnvOf(m, instance.config);
  const port = (name: string) => String(reachablePorts(instance)[name] ?? '');
  return template.replace(PLACEHOLDER, (_all, key: string) => {
    if (key === 'login') return login;
    if (key === 'host') return host;
    if (key === 'web') return web ?? (m.http ? `http://${host}:${port(m.http.port)}` : '');
    if (key.startsWith('port.')) return port(key.slice(5));
    return env[key.slice(4)] ?? '';
  });
}

/** An account's address (the manifest's `address` filled in), for a service whose accounts have one: what a move's
 * receipt tells the old hoster, for the forward. Undefined for a service without addresses, or when a variable it
 * names is not set. */
export function addressOf(catalog: Catalog, instance: Pick<Instance, 'service' | 'config'>, login: string): string | undefined {
  const m = catalog.services.get(instance.service)?.manifest;
  if (!m?.address) return undefined;
  const env = plainEnvOf(m, instance.config);
  let missing = false;
  const out = m.address.replace(/\{(login|env\.[A-Z0-9_]+)\}/g, (_all, key: string) => {
    if (key === 'login') return login;
    const v = env[key.slice(4)];
    if (v === undefined || v === '') missing = true;
    return v ?? '';
  });
  return missing ? undefined : out;
}
