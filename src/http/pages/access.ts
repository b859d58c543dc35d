// How a resident reaches an account, as /me and the mediator's printed sheet show it: the service's access text
// (catalog/offer.ts) with the instance's web address through the front door when it has one, and the access texts
// of the instances linked to it that have no accounts of their own (the webmail linked to a mail instance: the
// resident signs in there with the mail account).
import { accessText } from '../../catalog/offer.js';
import type { Instance } from '../../db/schema.js';
import { accessHostOf } from '../../ingress/mail-host.js';
import { linkedFrom } from '../../orchestrator/links.js';
import type { PageDeps } from './deps.js';

export function accessOf(deps: PageDeps, instance: Instance, login: string, lang: 'fr' | 'en'): string {
  // {host}: a mail instance's own name (its certificate's, the one autoconfig gives), cattery's host for the others.
  const host = accessHostOf(deps.db, instance, deps.config.domains, new URL(deps.config.publicUrl).hostname);
  return accessText(deps.catalog, instance, login, host, lang, deps.webAddress?.(instance));
}

export function linkedAccessOf(deps: PageDeps, instance: Instance, login: string, lang: 'fr' | 'en'): { service: string; access: string }[] {
  return linkedFrom(deps.db, instance.id).flatMap((other) => {
    const m = deps.catalog.services.get(other.service)?.manifest;
    if (!m?.access || m.accounts) return [];
    return [{ service: m.name[lang], access: accessOf(deps, other, login, lang) }];
  });
}
