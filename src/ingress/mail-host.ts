// Where a domain's mail lives, as mail clients and sending servers must be told: the mail instance for the domain,
// the names it answers to, and the ports a client connects to. Read from the database; the documents themselves
// are written by mail-client.ts and mta-sts.ts.
import { reachablePorts } from '../catalog/offer.js';
import type { Db } from '../db/connection.js';
import type { Instance } from '../db/schema.js';
import { listInstances } from '../orchestrator/instances.js';
import { domainOf } from './hostnames.js';
import type { MailClientPorts, MailSite } from './mail-client.js';
import { mailCertificateName } from './mail-certificates.js';
import { hostnamesOf } from './store.js';

const MAIL_SERVICE = 'mail';

/** The ports a mail client must use for an instance, by the manifest's port names (services/mail/service.json):
 * the standard ones once the administrator published them on the public address (orchestrator/public-ports.ts),
 * its allocated host ports until then (catalog/offer.ts reachablePorts). The one place that decides it for the
 * autoconfig document, the Apple profile and the SRV records. */
export function clientPorts(instance: Pick<Instance, 'config'>): MailClientPorts {
  const p = reachablePorts(instance);
  const out: MailClientPorts = {};
  for (const name of ['imaps', 'imap', 'submissions', 'submission'] as const) if (p[name] !== undefined) out[name] = p[name];
  return out;
}

/** The mail instance serving a domain: the one whose MAIL_DOMAIN it is (its mailboxes are `…@<domain>`; a name
 * under the domain alone does not make an instance hold that domain's mail). An instance being deleted serves
 * nobody; the oldest wins if two claim one domain. */
export function mailInstanceFor(db: Db, domain: string): Instance | undefined {
  return listInstances(db, { service: MAIL_SERVICE }).find((i) => i.desired !== 'deleted' && i.config.env.MAIL_DOMAIN === domain);
}

/** The names a mail instance answers to under its domain (the MX hosts), in name order; `mail.<domain>` when it has
 * none yet and the domain is the association's; `fallback` (cattery's own host) otherwise, as the access text does. */
export function mailHostsOf(db: Db, instance: Instance, domains: readonly string[], fallback: string): { domain: string; hosts: string[] } {
  const domain = instance.config.env.MAIL_DOMAIN ?? '';
  const own = domainOf(domain, domains) === domain;
  const hosts = own ? hostnamesOf(db, instance.id).filter((h) => domainOf(h, domains) === domain) : [];
  return { domain, hosts: hosts.length ? hosts : [own ? `mail.${domain}` : fallback] };
}

/** What a client is told for an instance: one host (`mail.<domain>` when it is one of the names) and the ports. */
export function mailSiteOf(db: Db, instance: Instance, domains: readonly string[], fallback: string): MailSite {
  const { domain, hosts } = mailHostsOf(db, instance, domains, fallback);
  return { domain, host: hosts.includes(`mail.${domain}`) ? `mail.${domain}` : hosts[0]!, ports: clientPorts(instance) };
}

/** The host a resident is told to reach an instance at (the access text's {host}): a mail instance's own name, the
 * one its certificate and the autoconfig document give; cattery's host for the other services. */
export function accessHostOf(db: Db, instance: Instance, domains: readonly string[], fallback: string): string {
  return instance.service === MAIL_SERVICE ? mailSiteOf(db, instance, domains, fallback).host : fallback;
}

/** The name an instance answers to on a link (orchestrator/links.ts): the name on its certificate, so that the
 * linking service (webmail) verifies TLS against it as any mail client would. A mail instance's certificate is the
 * one the front door obtains for its name (mail-certificates.ts: `mail.<domain>` when it has that name, else its
 * first), or before it has any name, the one it makes itself for `mail.<domain>` (services/mail/entrypoint.sh).
 * Another service's is its first front-door name; without one, its slug (no certificate to match). */
export function certificateHostOf(db: Db, instance: Instance): string {
  const names = hostnamesOf(db, instance.id);
  const domain = instance.service === MAIL_SERVICE ? instance.config.env.MAIL_DOMAIN : undefined;
  return mailCertificateName(names, domain) ?? (domain ? `mail.${domain}` : instance.slug);
}
