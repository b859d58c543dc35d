// Mail client set-up without typing: the two documents a mail program reads to configure itself. Pure functions:
// the caller (http/pages/mail-client.ts) has already decided which domain, hosts, ports and address they speak of,
// from cattery's own configuration and database, never from the request.
// - Thunderbird's autoconfig file, clientConfig version 1.1, as Mozilla's ISPDB documents it
//   (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat). Thunderbird fetches it from
//   `autoconfig.<domain>/mail/config-v1.1.xml` and `<domain>/.well-known/autoconfig/mail/config-v1.1.xml`
//   (https://wiki.mozilla.org/Thunderbird:Autoconfiguration, "Mechanisms"). The login is written as the
//   placeholder `%EMAILADDRESS%`, which Thunderbird fills in: the document never holds what the client sent.
// - An Apple configuration profile (`.mobileconfig`): an XML property list with one `com.apple.mail.managed`
//   payload (https://developer.apple.com/documentation/devicemanagement/mail). No password inside: iOS and macOS
//   ask for it when the profile is installed.
import crypto from 'node:crypto';

/** Characters XML 1.0 allows in a document (https://www.w3.org/TR/xml/#charsets): anything else cannot be written,
 * even escaped, so it becomes U+FFFD rather than a document a parser refuses. */
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;
const XML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Text or an attribute value, safe in either place (the five predefined entities, XML 1.0 §4.6). The one escaping
 * of this file: both documents go through it. */
export function escapeXml(value: string | number): string {
  return String(value).replace(NOT_XML_CHAR, '\uFFFD').replace(/[&<>"']/g, (c) => XML_ENTITIES[c]!);
}

/** The ports a mail program may use, by kind; a kind the instance does not publish is absent. Implicit TLS comes
 * first (RFC 8314 §3.2: IMAP on 993, §3.3: submission on 465, which it prefers), STARTTLS (143, 587) after. */
export interface MailClientPorts { imaps?: number; imap?: number; submissions?: number; submission?: number }

/** The standard numbers (RFC 8314 §3.2 and §3.3 for 993 and 465, RFC 3501 §2.1 for 143, RFC 6409 §3.1 for 587):
 * what the DNS announces for a domain with no mail instance yet. */
export const STANDARD_MAIL_PORTS: Required<MailClientPorts> = { imaps: 993, imap: 143, submissions: 465, submission: 587 };

/** What a client needs to know about one domain's mail: the host it connects to and the ports. */
export interface MailSite { domain: string; host: string; ports: MailClientPorts }

/** Whether a site can be written as a working configuration: one way in and one way out, both with TLS. */
export const isUsable = (s: MailSite) => (s.ports.imaps ?? s.ports.imap) !== undefined && (s.ports.submissions ?? s.ports.submission) !== undefined;

function server(tag: 'incomingServer' | 'outgoingServer', type: 'imap' | 'smtp', host: string, port: number, socketType: 'SSL' | 'STARTTLS'): string {
  // Element order as in the ISPDB's files; `password-cleartext` is AUTH PLAIN/LOGIN, safe here because every
  // server listed is reached over TLS (SSL or a mandatory STARTTLS), never `plain`.
  return [
    `    <${tag} type="${type}">`,
    `      <hostname>${escapeXml(host)}</hostname>`,
    `      <port>${escapeXml(port)}</port>`,
    `      <socketType>${socketType}</socketType>`,
    '      <authentication>password-cleartext</authentication>',
    '      <username>%EMAILADDRESS%</username>',
    `    </${tag}>`,
  ].join('\n');
}

/** Thunderbird's autoconfig document for a domain. */
export function autoconfigXml(site: MailSite): string {
  if (!isUsable(site)) throw new Error(`mail site ${site.domain} has no incoming or no outgoing port`);
  const { host, ports } = site;
  const servers = [
    ports.imaps !== undefined ? server('incomingServer', 'imap', host, ports.imaps, 'SSL') : '',
    ports.imap !== undefined ? server('incomingServer', 'imap', host, ports.imap, 'STARTTLS') : '',
    ports.submissions !== undefined ? server('outgoingServer', 'smtp', host, ports.submissions, 'SSL') : '',
    ports.submission !== undefined ? server('outgoingServer', 'smtp', host, ports.submission, 'STARTTLS') : '',
  ].filter(Boolean);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<clientConfig version="1.1">',
    `  <emailProvider id="${escapeXml(site.domain)}">`,
    `    <domain>${escapeXml(site.domain)}</domain>`,
    `    <displayName>${escapeXml(`Courriel ${site.domain}`)}</displayName>`,
    `    <displayShortName>${escapeXml(site.domain)}</displayShortName>`,
    ...servers,
    '  </emailProvider>',
    '</clientConfig>',
    '',
  ].join('\n');
}

// ── Apple configuration profile ─────────────────────────────────────────────────────────────────────────────────

type Plist = string | number | boolean | Plist[] | { [key: string]: Plist };

/** A value as property-list XML (Apple's PropertyList-1.0 DTD: dict, array, string, integer, true/false). */
function plist(value: Plist, indent: string): string {
  if (typeof value === 'string') return `${indent}<string>${escapeXml(value)}</string>`;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error('only integers go in this profile');
    return `${indent}<integer>${value}</integer>`;
  }
  if (typeof value === 'boolean') return `${indent}<${value}/>`;
  if (Array.isArray(value)) return [`${indent}<array>`, ...value.map((v) => plist(v, `${indent}  `)), `${indent}</array>`].join('\n');
  const entries = Object.entries(value).flatMap(([k, v]) => [`${indent}  <key>${escapeXml(k)}</key>`, plist(v, `${indent}  `)]);
  return [`${indent}<dict>`, ...entries, `${indent}</dict>`].join('\n');
}

/** A name-based UUID (RFC 9562 §5.5, version 5: SHA-1 of a namespace and a name): the same address always gets the
 * same PayloadUUID, so downloading the profile again replaces the installed one instead of adding a second. */
export function nameUuid(name: string): string {
  // A namespace of cattery's own (a random UUID drawn once), so these never collide with another tool's v5 UUIDs.
  const namespace = Buffer.from('5f0c8a2e4b7d4c1a9e3f6d2b8a7c1e90', 'hex');
  const h = crypto.createHash('sha1').update(namespace).update(name, 'utf8').digest().subarray(0, 16);
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.toString('hex').toUpperCase();
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export interface MailProfileAccount {
  /** The whole address, which is also the login (services/mail/service.json's access text). */
  address: string;
  /** The person's name, shown as the sender's name. */
  name: string;
}

/** The reverse-DNS identifier Apple asks for (PayloadIdentifier), stable per domain and address. The address goes
 * in as a digest: a local part may hold characters an identifier should not. */
export function profileIdentifier(domain: string, address: string): string {
  const digest = crypto.createHash('sha256').update(address.toLowerCase(), 'utf8').digest('hex').slice(0, 16);
  return `${domain.split('.').reverse().join('.')}.cattery.mail.${digest}`;
}

/** The `.mobileconfig` for one account: IMAP and SMTP over TLS, the login, no password. */
export function appleMailProfile(site: MailSite, account: MailProfileAccount): string {
  if (!isUsable(site)) throw new Error(`mail site ${site.domain} has no incoming or no outgoing port`);
  const id = profileIdentifier(site.domain, account.address);
  const key = `${site.domain}\n${account.address.toLowerCase()}`;
  // Implicit TLS when the instance publishes it; otherwise the STARTTLS port, still with UseSSL (TLS required).
  const imapPort = site.ports.imaps ?? site.ports.imap!;
  const smtpPort = site.ports.submissions ?? site.ports.submission!;
  const mail: Plist = {
    PayloadType: 'com.apple.mail.managed',
    PayloadVersion: 1,
    PayloadIdentifier: `${id}.account`,
    PayloadUUID: nameUuid(`account\n${key}`),
    PayloadDisplayName: `Courriel ${account.address}`,
    PayloadDescription: `Compte de courriel ${account.address}`,
    EmailAccountType: 'EmailTypeIMAP',
    EmailAccountDescription: `Courriel ${site.domain}`,
    EmailAccountName: account.name,
    EmailAddress: account.address,
    IncomingMailServerHostName: site.host,
    IncomingMailServerPortNumber: imapPort,
    IncomingMailServerUseSSL: true,
    IncomingMailServerAuthentication: 'EmailAuthPassword',
    IncomingMailServerUsername: account.address,
    OutgoingMailServerHostName: site.host,
    OutgoingMailServerPortNumber: smtpPort,
    OutgoingMailServerUseSSL: true,
    OutgoingMailServerAuthentication: 'EmailAuthPassword',
    OutgoingMailServerUsername: account.address,
    // One password for both: cattery sets the same one everywhere (identity/person-accounts.ts).
    OutgoingPasswordSameAsIncomingPassword: true,
  };
  const profile: Plist = {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: id,
    PayloadUUID: nameUuid(`profile\n${key}`),
    PayloadDisplayName: `Courriel ${account.address}`,
    PayloadDescription: `Règle l’application Mail pour ${account.address} : lecture (IMAP) et envoi (SMTP) chiffrés. Votre mot de passe vous sera demandé à l’installation.`,
    PayloadOrganization: site.domain,
    PayloadRemovalDisallowed: false,
    PayloadContent: [mail],
  };
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    plist(profile, ''),
    '</plist>',
    '',
  ].join('\n');
}
