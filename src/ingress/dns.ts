// The DNS records of one of the association's domains, gathered from where they come from (the configuration's
// domains and public addresses, the instances' hostnames, the mail instance's DKIM keys), and their check. What the
// API and the admin page call; the records themselves are dns-records.ts, the resolving dns-check.ts.
import net from 'node:net';
import { LETS_ENCRYPT, LETS_ENCRYPT_STAGING, type Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import { checkRecords, type CheckedRecord } from './dns-check.js';
import type { DkimKeysOf } from './dkim-keys.js';
import { domainRecords, mailHostOf, zoneSnippet, type DnsRecord } from './dns-records.js';
import { domainOf } from './hostnames.js';
import { clientPorts, mailInstanceFor } from './mail-host.js';
import { hostnamesUnder } from './store.js';

export interface DnsDeps {
  config: Pick<Config, 'domains' | 'publicUrl' | 'publicIpv4' | 'publicIpv6' | 'dnsResolvers' | 'ingress'>;
  db: Db;
  dkimKeys: DkimKeysOf;
  /** The longest one lookup of the check may take. */
  checkTimeoutMs?: number;
}

export interface DomainDns {
  domain: string;
  mailHost: string;
  records: DnsRecord[];
  snippet: string;
  /** False while the mail instance has not said which keys it signs with: no DKIM record can be written yet. */
  dkimKnown: boolean;
  /** False without CATTERY_PUBLIC_IPV4 or _IPV6: no address record can be written. */
  addressesKnown: boolean;
  /** The domain's mail instance while its standard ports are not published (orchestrator/public-ports.ts): the MX
   * then leads to no port 25, and the SRV records give its allocated ports. Null otherwise. */
  mailUnpublished: string | null;
}

/** 3 s a lookup: a resolver that takes longer is not answering, and the check stays within a page load. */
export const CHECK_TIMEOUT_MS = 3000;

/** Only a domain of the configuration has records: anything else is a 404, whatever is asked. */
function ownDomain(deps: DnsDeps, domain: string): string {
  const d = domain.toLowerCase().replace(/\.$/, '');
  if (!deps.config.domains.includes(d)) throw fail('CATTERY_ERR_NOT_FOUND', `No domain "${domain.slice(0, 253)}" in CATTERY_DOMAINS`);
  return d;
}

/** cattery's own host, when its public URL is a name under this domain. */
function ownHostUnder(publicUrl: string, domain: string): string | undefined {
  const host = new URL(publicUrl).hostname.toLowerCase();
  return net.isIP(host) === 0 && domainOf(host, [domain]) ? host : undefined;
}

/** CAA names the CA by its domain (RFC 8659 §4.2); only Let's Encrypt's is known from its directory URL (its staging
 * endpoint checks CAA for the same name). Another CA: no CAA rather than a wrong one. */
function caaIssuerOf(acmeDirectory: string): string | undefined {
  return acmeDirectory === LETS_ENCRYPT || acmeDirectory === LETS_ENCRYPT_STAGING ? 'letsencrypt.org' : undefined;
}

/** The names under a domain as the records are written from them: what the MTA-STS policy served at
 * mta-sts.<domain> is computed from too, so that its text and the id published for it agree. */
export function recordHostnames(db: DnsDeps['db'], domain: string): { name: string; service: string }[] {
  return hostnamesUnder(db, domain).map((h) => ({ name: h.hostname, service: h.service }));
}

export async function domainDns(deps: DnsDeps, domain: string): Promise<DomainDns> {
  const d = ownDomain(deps, domain);
  const hostnames = recordHostnames(deps.db, d);
  const dkim = await deps.dkimKeys(d);
  const { publicIpv4, publicIpv6 } = deps.config;
  const mail = mailInstanceFor(deps.db, d);
  const records = domainRecords({
    domain: d, hostnames, ownHost: ownHostUnder(deps.config.publicUrl, d), ipv4: publicIpv4, ipv6: publicIpv6, dkim,
    mailPorts: mail ? clientPorts(mail) : undefined,
    caaIssuer: caaIssuerOf(deps.config.ingress.acmeDirectory),
  });
  return {
    domain: d, mailHost: mailHostOf(d, hostnames), records, snippet: zoneSnippet(records),
    dkimKnown: dkim.length > 0, addressesKnown: publicIpv4 !== undefined || publicIpv6 !== undefined,
    mailUnpublished: mail && !mail.config.publicPorts ? mail.slug : null,
  };
}

export interface DomainCheck { domain: string; resolvers: string[]; checkedAt: string; dkimKnown: boolean; records: CheckedRecord[] }

/** Resolve every record of the domain; CATTERY_ERR_RESOLVER when the resolvers do not answer. */
export async function checkDomainDns(deps: DnsDeps, domain: string): Promise<DomainCheck> {
  const dns = await domainDns(deps, domain);
  const records = await checkRecords(dns.records, { resolvers: deps.config.dnsResolvers, timeoutMs: deps.checkTimeoutMs ?? CHECK_TIMEOUT_MS });
  return { domain: dns.domain, resolvers: [...deps.config.dnsResolvers], checkedAt: new Date().toISOString(), dkimKnown: dns.dkimKnown, records };
}
