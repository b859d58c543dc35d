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
    if (key.startsWith('port.')) return String(instance.config.ports[key.slice(5)] ?? '');
    return env[key.slice(4)] ?? '';
  });
}
