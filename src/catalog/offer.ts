// What the catalog offers residents: the services open for sign-up, and how to reach one's account in each (the
// manifest's `access` text with its placeholders filled in).
import type { Instance } from '../db/schema.js';
import type { Catalog } from './load.js';

export function openServices(catalog: Catalog) {
  return [...catalog.services.values()].filter((s) => s.manifest.openForSignup).map((s) => s.manifest);
}

/** The open services as a form lists them, in one language. */
export function openServiceChoices(catalog: Catalog, lang: 'fr' | 'en') {
  return openServices(catalog).map((m) => ({ id: m.id, name: m.name[lang], description: m.description[lang] }));
}

/** The port a client reaches each of an instance's ports on, by name: the well-known number where the instance
 * publishes its well-known ports on the public address (orchestrator/public-ports.ts), its allocated host port
 * otherwise. What the access text, the mail client documents and the SRV records announce (ingress/mail-host.ts). */
export function reachablePorts(instance: Pick<Instance, 'config'>): Record<string, number> {
  return { ...instance.config.ports, ...instance.config.publicPorts?.ports };
}

/** The access text of a service for one account, with its placeholders filled in (catalog `access`). */
export function accessText(catalog: Catalog, instance: Pick<Instance, 'service' | 'config'>, login: string, host: string, lang: 'fr' | 'en'): string {
  const m = catalog.services.get(instance.service)?.manifest;
  const template = m?.access?.[lang];
  if (!template) return '';
  const env = Object.fromEntries(Object.entries(m.environment ?? {})
    .map(([k, v]) => [k, instance.config.env[k] ?? (v as { value?: string }).value ?? '']));
  return template.replace(/\{(login|host|port\.[a-z0-9_-]+|env\.[A-Z0-9_]+)\}/g, (_all, key: string) => {
    if (key === 'login') return login;
    if (key === 'host') return host;
    if (key.startsWith('port.')) return String(reachablePorts(instance)[key.slice(5)] ?? '');
    return env[key.slice(4)] ?? '';
  });
}
