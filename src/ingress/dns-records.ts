// The DNS records an association publishes for one of its domains so that its services answer under their names and
// its mail is delivered and trusted. Pure: from the names, addresses and DKIM keys given, the records, each with one
// line saying what it is for (French and English), and the master-file text to paste (RFC 1035 §5).
// What is published, and why:
// - A / AAAA for every instance hostname, the mail host, `mta-sts.` (RFC 8461 §3.3 serves the policy there),
//   `autoconfig.` (Thunderbird's autoconfiguration) and cattery's own host when it is under the domain;
// - MX to the mail host (RFC 5321 §5.1), SPF `v=spf1 mx -all` for the domain and `v=spf1 a -all` for the mail
//   host (its HELO name; RFC 7208), one DKIM key record per selector (RFC 6376 §3.6), DMARC (RFC 7489 §6), MTA-STS (RFC 8461 §3.1) and TLS-RPT (RFC 8460 §3);
// - the mail clients' SRV records (RFC 6186, RFC 8314 §5.1), POP3 said absent (cattery offers IMAP only);
// - CAA (RFC 8659) when the ACME CA is known: only the CA cattery asks may issue for the domain, and nobody a wildcard.
// Every name is lower case and absolute (trailing dot). No CNAME is ever written: the apex cannot hold one, and MX and
// SRV targets must not be aliases (RFC 2181 §10.3).
import crypto from 'node:crypto';
import { STANDARD_MAIL_PORTS, type MailClientPorts } from './mail-client.js';
import { mtaStsPolicy as writeMtaStsPolicy } from './mta-sts.js';
import { fail } from '../errors.js';

export type RecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'SRV' | 'CAA';

export interface DnsRecord {
  /** Absolute, lower case, with its trailing dot. */
  name: string;
  type: RecordType;
  /** Presentation form of the RDATA without quoting: a TXT record's strings joined into one (`txtStrings` splits
   * it again), an MX `10 mail.example.org.`, an SRV `0 1 993 mail.example.org.`, a CAA `0 issue "letsencrypt.org"`. */
  value: string;
  ttl: number;
  /** What the record is for, one line each. */
  why: { fr: string; en: string };
}

export interface DkimKey { selector: string; publicKey: string; active?: boolean }

export interface DomainRecordsInput {
  domain: string;
  hostnames: readonly { name: string; service: string }[];
  /** cattery's own host, when it is under this domain. */
  ownHost?: string | undefined;
  ipv4?: string | undefined;
  ipv6?: string | undefined;
  /** Default `mail.<domain>`; a hostname of a `mail` instance under the domain wins. */
  mailHost?: string | undefined;
  dkim: readonly DkimKey[];
  /** The ports mail programs connect to (ingress/mail-host.ts clientPorts); the standard ones when not given. A kind
   * left out is announced as not offered. */
  mailPorts?: MailClientPorts | undefined;
  /** Where DMARC and TLS-RPT reports go; `postmaster@<domain>` by default (RFC 5321 §4.5.1: it must exist anyway). */
  reportAddress?: string | undefined;
  /** The CA's domain for CAA (`letsencrypt.org`); none written when unknown. */
  caaIssuer?: string | undefined;
  ttl?: number | undefined;
}

/** An hour: a mistake corrected is seen everywhere within the hour, and resolvers are not asked too often. */
export const DEFAULT_TTL = 3600;

/** The MTA-STS policy cattery serves at https://mta-sts.<domain>/.well-known/mta-sts.txt. `enforce`: the mail host's
 * certificate comes from the same front door and the same public CA as the one the policy itself is fetched over,
 * so a sender that can read the policy can also verify the MX (RFC 8461 §4.1); TLS-RPT reports say when it cannot.
 * A week's max_age (RFC 8461 §3.2 allows up to 31557600 s): long enough to protect between visits, short enough to
 * change mail host within days. */
export const MTA_STS_DEFAULTS = { mode: 'enforce', maxAge: 604_800 } as const;

export interface MtaStsPolicyInput { mx: readonly string[]; mode: 'enforce' | 'testing'; maxAge: number }

/** RFC 8461 §3.2, written by mta-sts.ts (the one writer: the text served and the text hashed for `id=` are one);
 * here with the mx hosts sorted, so that the same hosts always give the same text. A bad policy is a 400. */
export function mtaStsPolicy(p: MtaStsPolicyInput): string {
  try {
    return writeMtaStsPolicy({ mx: [...new Set(p.mx.map(bare))].sort(), mode: p.mode, maxAgeSeconds: p.maxAge });
  } catch (err) {
    throw fail('CATTERY_ERR_VALIDATION', `MTA-STS: ${(err as Error).message}`);
  }
}

/** The `id=` of `_mta-sts` TXT: derived from the policy's text, so it changes exactly when the policy does, which is
 * what tells senders to fetch it again (RFC 8461 §3.1: 1 to 32 letters and digits). */
export function mtaStsId(policy: string): string {
  return crypto.createHash('sha256').update(policy).digest('hex').slice(0, 32);
}

/** The mail host of a domain: the given one, else a `mail` instance's name under it (`mail.<d>` first, then the
 * first in order), else `mail.<d>`. */
export function mailHostOf(domain: string, hostnames: DomainRecordsInput['hostnames'], given?: string): string {
  if (given) return bare(given);
  const mail = hostnames.filter((h) => h.service === 'mail').map((h) => bare(h.name)).sort();
  return mail.find((h) => h === `mail.${domain}`) ?? mail[0] ?? `mail.${domain}`;
}

/** The policy of a domain as cattery serves it, from the same inputs as its records. */
export function mtaStsPolicyFor(domain: string, hostnames: DomainRecordsInput['hostnames'], mailHost?: string): string {
  return mtaStsPolicy({ mx: [mailHostOf(domain, hostnames, mailHost)], ...MTA_STS_DEFAULTS });
}

const bare = (name: string) => name.toLowerCase().replace(/\.$/, '');
const fqdn = (name: string) => `${bare(name)}.`;

/** RFC 6376 §3.1: a selector is a sub-domain (dot-separated labels); kept to LDH labels here. */
const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
/** Base64 of the key (RFC 6376 §3.6.1 p=); 8 KiB covers an RSA key of 16384 bits. */
const BASE64 = /^[A-Za-z0-9+/]{16,8192}={0,2}$/;
const ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[a-z0-9.-]{1,253}$/;

/** Why a DKIM key as the mail instance lists it cannot be published, or undefined. */
export function dkimKeyProblem(k: { selector: unknown; publicKey: unknown }): string | undefined {
  if (typeof k.selector !== 'string' || !SELECTOR.test(k.selector)) return `DKIM selector "${String(k.selector).slice(0, 64)}" is not a DNS name`;
  if (typeof k.publicKey !== 'string' || !BASE64.test(k.publicKey) || k.publicKey.length % 4 !== 0) return `DKIM key of "${k.selector}" is not base64`;
  return undefined;
}

/** The canonical text of an IPv6 address (RFC 5952 §4: lower case, longest zero run compressed). */
export function canonicalIpv6(v: string): string {
  try {
    return new URL(`http://[${v}]/`).hostname.slice(1, -1);
  } catch {
    throw fail('CATTERY_ERR_VALIDATION', `"${v.slice(0, 45)}" is not an IPv6 address`);
  }
}

/** A TXT record's character-strings: at most 255 octets each (RFC 1035 §3.3, RFC 7208 §3.3 for SPF, RFC 6376
 * §3.6.2.2 for DKIM keys longer than that), cut between characters so that joined they give the value back. */
export function txtStrings(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let octets = 0;
  for (const ch of value) {
    const n = Buffer.byteLength(ch);
    if (octets + n > 255) { out.push(cur); cur = ''; octets = 0; }
    cur += ch;
    octets += n;
  }
  out.push(cur);
  return out;
}

/** One character-string quoted for a master file (RFC 1035 §5.1): `"` and `\` escaped, any octet that is not
 * printable ASCII written `\DDD`. */
export function quoteTxt(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b < 0x20 || b > 0x7e) out += `\\${String(b).padStart(3, '0')}`;
    else out += String.fromCharCode(b);
  }
  return `${out}"`;
}

/** The records of one domain, in a stable order: addresses, mail routing, mail authentication, clients, CAA. */
export function domainRecords(input: DomainRecordsInput): DnsRecord[] {
  const d = bare(input.domain);
  const ttl = input.ttl ?? DEFAULT_TTL;
  // RFC 2181 §8: a TTL is 0 to 2^31 - 1 seconds.
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2_147_483_647) throw fail('CATTERY_ERR_VALIDATION', 'TTL: 0 to 2147483647 seconds');
  const under = (name: string) => name === d || name.endsWith(`.${d}`);
  const mailHost = mailHostOf(d, input.hostnames, input.mailHost);
  const report = input.reportAddress ?? `postmaster@${d}`;
  if (!ADDRESS.test(report)) throw fail('CATTERY_ERR_VALIDATION', 'report address: not a plain mail address');
  const records: DnsRecord[] = [];
  const add = (name: string, type: RecordType, value: string, fr: string, en: string) => records.push({ name: fqdn(name), type, value, ttl, why: { fr, en } });

  // Addresses (RFC 1035 §3.4.1 A, RFC 3596 §2 AAAA). Only names under this domain: another domain's names are that
  // domain's records.
  const named = new Map<string, { fr: string; en: string }>();
  for (const h of [...input.hostnames].sort((a, b) => a.name.localeCompare(b.name))) {
    const n = bare(h.name);
    if (under(n) && !named.has(n)) named.set(n, { fr: `Adresse du service ${h.service} (${n})`, en: `Address of the ${h.service} service (${n})` });
  }
  const fixed: [string, { fr: string; en: string }][] = [
    [mailHost, { fr: 'Adresse du serveur de courriel (réception, envoi, lecture)', en: 'Address of the mail server (receiving, sending, reading)' }],
    [`mta-sts.${d}`, { fr: 'Adresse où les autres serveurs lisent la politique MTA-STS (RFC 8461)', en: 'Address where other servers read the MTA-STS policy (RFC 8461)' }],
    [`autoconfig.${d}`, { fr: 'Adresse où les logiciels de courriel trouvent leurs réglages tout seuls', en: 'Address where mail programs find their settings by themselves' }],
  ];
  if (input.ownHost) fixed.push([bare(input.ownHost), { fr: 'Adresse du site de l’association (cattery)', en: 'Address of the association’s site (cattery)' }]);
  for (const [n, why] of fixed) if (under(n) && !named.has(n)) named.set(n, why);
  const ipv6 = input.ipv6 ? canonicalIpv6(input.ipv6) : undefined;
  for (const [n, why] of [...named].sort(([a], [b]) => a.localeCompare(b))) {
    if (input.ipv4) add(n, 'A', input.ipv4, `${why.fr} (IPv4)`, `${why.en} (IPv4)`);
    if (ipv6) add(n, 'AAAA', ipv6, `${why.fr} (IPv6)`, `${why.en} (IPv6)`);
  }

  // Mail routing: one MX (RFC 5321 §5.1); its preference alone means nothing, 10 leaves room for a backup below.
  add(d, 'MX', `10 ${fqdn(mailHost)}`, `Le courriel pour @${d} est livré à ${mailHost}`, `Mail for @${d} is delivered to ${mailHost}`);
  // SPF (RFC 7208 §5.4 `mx`, §5.1 `-all`): only the MX sends for the domain; anything else fails, which DMARC turns
  // into its policy.
  add(d, 'TXT', 'v=spf1 mx -all', `SPF : seul le serveur de courriel de l’association envoie pour @${d}`, `SPF: only the association’s mail server sends for @${d}`);
  // SPF for the mail host's own name (RFC 7208 §2.3, the HELO identity): a bounce has an empty sender, and other
  // servers check it against postmaster@<the name it says HELO with> (§2.4), which is this host.
  if (mailHost !== d && under(mailHost)) {
    add(mailHost, 'TXT', 'v=spf1 a -all', `SPF : le serveur ${mailHost} envoie en son propre nom (avis de non-remise)`, `SPF: the server ${mailHost} sends in its own name (bounces)`);
  }
  // DKIM (RFC 6376 §3.6.1, §3.6.2.1 at <selector>._domainkey): every key the mail instance still lists, so that mail
  // signed with a key being retired still verifies while in transit.
  for (const k of [...input.dkim].sort((a, b) => a.selector.localeCompare(b.selector))) {
    const problem = dkimKeyProblem(k);
    if (problem) throw fail('CATTERY_ERR_VALIDATION', problem);
    const state = k.active === false ? { fr: ' (ancienne clé, gardée le temps que le courriel signé avec arrive)', en: ' (previous key, kept while mail signed with it is in transit)' } : { fr: '', en: '' };
    add(`${bare(k.selector)}._domainkey.${d}`, 'TXT', `v=DKIM1; k=rsa; p=${k.publicKey}`,
      `DKIM : la clé publique qui prouve qu’un courriel signé vient bien de @${d}${state.fr}`, `DKIM: the public key proving that signed mail comes from @${d}${state.en}`);
  }
  // DMARC (RFC 7489 §6.3). p=quarantine rather than reject: mail forwarded by lists and forwarders can lose its SPF
  // and DKIM alignment (RFC 7960 §3), and a resident's message then lands in a spam folder instead of bouncing;
  // forgeries of @domain are still set apart. Strict alignment (adkim=s, aspf=s): cattery's mail instance signs with
  // d=<domain> and sends with its envelope on the domain itself, so nothing legitimate needs relaxed alignment, and
  // a subdomain cannot be used to pass. Move to p=reject once the aggregate reports (rua) stay clean.
  add(`_dmarc.${d}`, 'TXT', `v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:${report}`,
    `DMARC : un courriel qui prétend venir de @${d} sans SPF ni DKIM valable va en indésirables ; les rapports vont à ${report}`,
    `DMARC: mail claiming to be from @${d} with neither a valid SPF nor a valid DKIM goes to spam; reports go to ${report}`);
  // MTA-STS (RFC 8461 §3.1): the id changes with the policy text, which is all that tells senders to refetch it.
  const policy = mtaStsPolicy({ mx: [mailHost], ...MTA_STS_DEFAULTS });
  add(`_mta-sts.${d}`, 'TXT', `v=STSv1; id=${mtaStsId(policy)}`,
    'MTA-STS : les autres serveurs n’envoient le courriel qu’en TLS vérifié (politique sur mta-sts.)',
    'MTA-STS: other servers send mail over verified TLS only (policy on mta-sts.)');
  // TLS-RPT (RFC 8460 §3): where senders report failures to set up TLS with the MX.
  add(`_smtp._tls.${d}`, 'TXT', `v=TLSRPTv1; rua=mailto:${report}`,
    `TLS-RPT : les autres serveurs signalent à ${report} quand ils n’arrivent pas à joindre le serveur en TLS`,
    `TLS-RPT: other servers tell ${report} when they fail to reach the mail server over TLS`);

  // Mail clients (RFC 6186 §3, RFC 2782 `priority weight port target`). Implicit TLS ports get the lower priority
  // so that clients try them first (RFC 8314 §3 prefers Implicit TLS; §5.1 lists _submissions._tcp on 465).
  // The ports are the ones clients are told everywhere else (autoconfig, profile, access text), so that all agree.
  const mh = fqdn(mailHost);
  const mailPorts = input.mailPorts ?? STANDARD_MAIL_PORTS;
  const srv = (kind: keyof MailClientPorts, priority: number, fr: string, en: string) => {
    const port = mailPorts[kind];
    if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) throw fail('CATTERY_ERR_VALIDATION', `${kind} port: 1 to 65535`);
    if (port === undefined) add(`_${kind}._tcp.${d}`, 'SRV', '0 0 0 .', `${fr} : pas offert`, `${en}: not offered`);
    else add(`_${kind}._tcp.${d}`, 'SRV', `${priority} 1 ${port} ${mh}`, `${fr}, port ${port}`, `${en}, port ${port}`);
  };
  srv('submissions', 0, 'Envoi du courriel depuis un logiciel (TLS dès la connexion)', 'Sending mail from a mail program (TLS from the start)');
  srv('submission', 10, 'Envoi du courriel depuis un logiciel (STARTTLS)', 'Sending mail from a mail program (STARTTLS)');
  srv('imaps', 0, 'Lecture du courriel (IMAP, TLS dès la connexion)', 'Reading mail (IMAP, TLS from the start)');
  srv('imap', 10, 'Lecture du courriel (IMAP, STARTTLS)', 'Reading mail (IMAP, STARTTLS)');
  // RFC 6186 §4 / RFC 2782: target "." says the service is decidedly not offered, so clients do not guess POP3.
  add(`_pop3s._tcp.${d}`, 'SRV', '0 0 0 .', 'Pas de POP3 : les logiciels n’essaient pas', 'No POP3: mail programs do not try it');
  add(`_pop3._tcp.${d}`, 'SRV', '0 0 0 .', 'Pas de POP3 : les logiciels n’essaient pas', 'No POP3: mail programs do not try it');

  // CAA (RFC 8659 §4.2-4.3): certificates for the domain only from the CA cattery asks, and no wildcard (cattery never
  // asks for one: HTTP-01 cannot validate it). It holds for every name under the domain, so an association whose
  // other sites use another CA adds that CA's line beside this one.
  if (input.caaIssuer) {
    if (!/^[a-z0-9.-]{1,253}$/.test(input.caaIssuer)) throw fail('CATTERY_ERR_VALIDATION', 'CAA issuer: not a domain name');
    add(d, 'CAA', `0 issue "${input.caaIssuer}"`, `CAA : seule l’autorité ${input.caaIssuer} peut délivrer des certificats pour ${d}`, `CAA: only the ${input.caaIssuer} authority may issue certificates for ${d}`);
    add(d, 'CAA', '0 issuewild ";"', 'CAA : aucun certificat « joker » (*.) pour ce domaine', 'CAA: no wildcard (*.) certificate for this domain');
  }
  return records;
}

/** The value in master-file form (RFC 1035 §5.1): TXT as quoted strings, the others as they are. */
export function rdataText(r: Pick<DnsRecord, 'type' | 'value'>): string {
  return r.type === 'TXT' ? txtStrings(r.value).map(quoteTxt).join(' ') : r.value;
}

/** RFC 1035 §5 master-file text: one record a line, `name TTL IN type rdata`, absolute names. */
export function zoneSnippet(records: readonly DnsRecord[]): string {
  return records.map((r) => `${r.name} ${r.ttl} IN ${r.type} ${rdataText(r)}`).join('\n') + (records.length ? '\n' : '');
}
