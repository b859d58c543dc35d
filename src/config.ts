// The only file that reads process.env. It validates once, at start, and hands a frozen object to the rest.
import net from 'node:net';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { fail } from './errors.js';
import { FRENCH_GRID_GCO2E_PER_KWH } from './metering/energy-model.js';

const Slug = Type.String({ pattern: '^[a-z][a-z0-9-]{0,30}$' });
// The names a backup repository may have (backups.ts NAME: 1–32 characters), so every one can be declared.
const RepositoryName = Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' });

/** INSEE's threshold for counts of persons (docs/publication.md): configurable upward only. */
export const MIN_GROUP_FLOOR = 11;
// ChatonsInfos' enumerations (organization.type, organization.status.level, host.server.type, host.provider.type).
export const ORG_TYPES = ['ASSOCIATION', 'INFORMAL', 'COOPERATIVE', 'MICROCOMPANY', 'COMPANY', 'INDIVIDUAL', 'OTHER'] as const;
export const ORG_STATUSES = ['ACTIVE', 'IDLE', 'AWAY'] as const;
export const SERVER_TYPES = ['NANO', 'PHYSICAL', 'VIRTUAL', 'SHARED', 'CLOUD'] as const;
export const PROVIDER_TYPES = ['HOME', 'HOSTEDBAY', 'HOSTEDSERVER', 'OUTSOURCED'] as const;
const DATE_OR_EMPTY = '^(\\d{4}-\\d{2}-\\d{2})?$';

// A domain or hostname as the association writes it: lower-case LDH labels (ingress/hostnames.ts checks the rest).
const DomainName = Type.String({ pattern: '^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$' });
const Port = Type.Integer({ minimum: 0, maximum: 65535 });

const CountryCode = Type.String({ pattern: '^[A-Z]{2}$' });
const Subcontractor = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  /** What they do for the association ("server hosting", "domain names", "off-site backups"). */
  role: Type.String({ minLength: 1, maxLength: 200 }),
  /** ISO 3166-1 alpha-2: where they process the data. */
  country: CountryCode,
  website: Type.String({ pattern: '^(https?://[^\\s|;]{1,300})?$' }),
});
const BackupSite = Type.Object({
  repository: RepositoryName,
  country: CountryCode,
  /** A short, public description of the place ("a member's home in Lyon", "Hetzner, Falkenstein"). */
  place: Type.String({ minLength: 1, maxLength: 200 }),
});

export const ConfigSchema = Type.Object({
  dataDir: Type.String({ minLength: 1 }),
  dbFile: Type.String({ minLength: 1 }),
  catalogDirs: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  host: Type.String({ minLength: 1 }),
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  hosterId: Slug,
  dockerEndpoint: Type.String({ pattern: '^(unix://|tcp://|http://|https://)' }),
  publishAddress: Type.String({ pattern: '^(\\d{1,3}\\.){3}\\d{1,3}$' }),
  portRange: Type.Tuple([Type.Integer({ minimum: 1024, maximum: 65535 }), Type.Integer({ minimum: 1024, maximum: 65535 })]),
  reconcileIntervalSeconds: Type.Number({ minimum: 1 }),
  concurrency: Type.Integer({ minimum: 1, maximum: 64 }),
  dockerTimeoutSeconds: Type.Number({ minimum: 1 }),
  healthTimeoutSeconds: Type.Number({ minimum: 1 }),
  adminToken: Type.Optional(Type.String({ minLength: 16 })),
  logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l))),
  debianMirror: Type.String({ pattern: '^https?://' }),
  subnetPool: Type.String({ pattern: '^(\\d{1,3}\\.){3}\\d{1,3}/\\d{1,2}$' }),
  /** Where residents reach cattery; its scheme decides Secure cookies, and the OpenID redirect URL derives from it. */
  publicUrl: Type.String({ pattern: '^https?://[^/]+$' }),
  /** Files with secrets made on first start (the cookie key) live here unless given. */
  secret: Type.Optional(Type.String({ minLength: 32 })),
  sessionIdleMinutes: Type.Number({ minimum: 1 }),
  /** A mediator works at a public internet point: a session left open there ends sooner. */
  mediatorIdleMinutes: Type.Number({ minimum: 1 }),
  sessionMaxHours: Type.Number({ minimum: 0.01 }),
  oidc: Type.Optional(Type.Object({
    issuer: Type.String({ pattern: '^https?://' }),
    clientId: Type.String({ minLength: 1 }),
    clientSecret: Type.Optional(Type.String({ minLength: 1 })),
    redirectUrl: Type.String({ pattern: '^https?://' }),
    scopes: Type.String({ minLength: 1 }),
    /** The claim holding the person's groups or roles (a list or a space-separated string). */
    rolesClaim: Type.String({ minLength: 1 }),
    /** Provider group → cattery role: the only way a group grants a role (a group named `admin` grants nothing unless listed here). */
    roleMap: Type.Record(Type.String(), Type.String()),
    /** The label on the sign-in button ("Compte de la ville"…). */
    label: Type.String({ minLength: 1 }),
  })),
  /** `admin`: a resident's sign-up waits for an administrator; `auto`: it is approved at once. */
  signupApproval: Type.Union([Type.Literal('admin'), Type.Literal('auto')]),
  /** The version of the terms and charter that residents accept now; recorded with every consent. */
  termsVersion: Type.String({ pattern: '^[A-Za-z0-9._-]{1,32}$' }),
  /** Sign-in attempts and sign-ups allowed per address and per minute (a public internet point shares one address). */
  loginPerMinute: Type.Integer({ minimum: 1 }),
  signupPerHour: Type.Integer({ minimum: 1 }),
  defaultQuotaMb: Type.Integer({ minimum: 1 }),
  /** Metering: seconds between passes, hours raw samples are kept, days hourly totals are kept (daily ones stay). */
  meterIntervalSeconds: Type.Number({ minimum: 1 }),
  meterRetentionHours: Type.Number({ minimum: 1 }),
  meterHourlyDays: Type.Number({ minimum: 1 }),
  /** How idle power is allocated to instances (always shown apart): by reserved memory, equally, or not at all. */
  idlePolicy: Type.Union([Type.Literal('reserved'), Type.Literal('equal'), Type.Literal('none')]),
  /** Grid carbon intensity, gCO2e/kWh (metering/energy-model.ts cites the default). */
  gridGCo2ePerKwh: Type.Number({ minimum: 0, maximum: 2000 }),
  /** Who may say, in X-Forwarded-For and X-Request-Id, who the client is: nobody (false), the first n hops, or the
   * listed addresses and CIDRs (and proxy-addr's names loopback, linklocal, uniquelocal). */
  /** The association's own domains: service hostnames, mail addresses and the DNS records cattery writes live under
   * these, and nothing else is accepted as a hostname. */
  domains: Type.Array(DomainName, { maxItems: 32, uniqueItems: true }),
  /** The addresses the association's DNS points its names at (the A and AAAA records cattery generates). */
  publicIpv4: Type.Optional(Type.String({ pattern: '^(\\d{1,3}\\.){3}\\d{1,3}$' })),
  publicIpv6: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F:.]{2,45}$' })),
  /** Resolvers the DNS check asks ("ip" or "ip:port"); empty: the system's. */
  dnsResolvers: Type.Array(Type.String({ pattern: '^[0-9a-fA-F:.\\[\\]]{2,64}$' }), { maxItems: 4 }),
  /** The front door (src/ingress/): Caddy in a container, owning ports 80 and 443. */
  ingress: Type.Object({
    enabled: Type.Boolean(),
    /** Where 80 and 443 are published on the host; 0 lets Docker pick (tests). */
    bindAddress: Type.String({ pattern: '^(\\d{1,3}\\.){3}\\d{1,3}$' }),
    httpPort: Port,
    httpsPort: Port,
    /** The ACME directory certificates come from (Let's Encrypt unless set; `staging` names its staging endpoint). */
    acmeDirectory: Type.String({ pattern: '^https://' }),
    acmeEmail: Type.Optional(Type.String({ pattern: '^[^@\\s]{1,64}@[^@\\s]{1,253}$' })),
    /** A private ACME CA's root (PEM file), trusted for the directory only: tests and closed networks. */
    acmeRootFile: Type.Optional(Type.String({ minLength: 1 })),
    /** Strict-Transport-Security max-age; 0 sends none. */
    hstsSeconds: Type.Integer({ minimum: 0, maximum: 63072000 }),
  }),
  /** Where cattery's own mail (dues reminders) leaves from: an SMTP submission URL (smtps://user:pass@host:465 or
   * smtp://…:587, STARTTLS required) and the From address. Without it, reminders are shown on pages only. */
  mail: Type.Optional(Type.Object({
    smtpUrl: Type.String({ pattern: '^smtps?://[^\\s]+$', maxLength: 500 }),
    from: Type.String({ pattern: '^[^@\\s<>]{1,64}@[^@\\s<>]{1,253}$' }),
    /** A PEM file of the CA the SMTP server's certificate chains to, when it is a private one (tests). */
    caFile: Type.Optional(Type.String({ minLength: 1 })),
  })),
  /** What the association publishes (src/publication/): open data, ChatonsInfos. */
  publication: Type.Object({
    /** INSEE's statistical secrecy: a cell with fewer persons than this is not published (docs/publication.md). 11 is
     * the floor; an association may only raise it. */
    minGroup: Type.Integer({ minimum: MIN_GROUP_FLOOR, maximum: 1000 }),
    /** Who publishes: the organization file of ChatonsInfos and the open data's `administration_rattachement`. */
    organization: Type.Object({
      name: Type.String({ maxLength: 200 }),
      description: Type.String({ maxLength: 2000 }),
      website: Type.String({ pattern: '^(https?://[^\\s]{1,500})?$' }),
      /** ChatonsInfos organization.type. */
      type: Type.Union(ORG_TYPES.map((t) => Type.Literal(t))),
      /** ChatonsInfos organization.status.level. */
      status: Type.Union(ORG_STATUSES.map((t) => Type.Literal(t))),
      /** The day the association was founded, and the day it joined the CHATONS (ISO 8601 dates, or empty). */
      startDate: Type.String({ pattern: DATE_OR_EMPTY }),
      chatonsSince: Type.String({ pattern: DATE_OR_EMPTY }),
      contactEmail: Type.String({ pattern: '^([^@\\s]{1,64}@[^@\\s]{1,253})?$' }),
      contactUrl: Type.String({ pattern: '^(https?://[^\\s]{1,500})?$' }),
      legalUrl: Type.String({ pattern: '^(https?://[^\\s]{1,500})?$' }),
      /** Latitude,longitude in decimal degrees, or empty. */
      geolocation: Type.String({ pattern: '^(-?\\d{1,2}(\\.\\d{1,8})?,-?\\d{1,3}(\\.\\d{1,8})?)?$' }),
      address: Type.String({ maxLength: 300 }),
      /** The city's INSEE code (Code officiel géographique), written in the open data's `code_insee`; or empty. */
      inseeCode: Type.String({ pattern: '^([0-9][0-9AB][0-9]{3})?$' }),
    }),
    /** Where the services run (ChatonsInfos host.*). */
    host: Type.Object({
      name: Type.String({ maxLength: 200 }),
      serverType: Type.Union(SERVER_TYPES.map((t) => Type.Literal(t))),
      providerType: Type.Union(PROVIDER_TYPES.map((t) => Type.Literal(t))),
      countryName: Type.String({ maxLength: 100 }),
      /** ISO 3166-1 alpha-2. */
      countryCode: Type.String({ pattern: '^[A-Z]{2}$' }),
    }),
    /** Who else handles the association's machines or data (the transparency page): CATTERY_SUBCONTRACTORS. */
    subcontractors: Type.Array(Subcontractor, { maxItems: 32 }),
    /** Where each remote backup repository is, by repository name (CATTERY_BACKUP_SITES): a folder on the server
     * needs none, it is where the server is. */
    backupSites: Type.Array(BackupSite, { maxItems: 32 }),
  }),
  /** The Chromium that prints the yearly report as PDF (publication/transparency-report.ts). */
  chromium: Type.String({ minLength: 1 }),
  /** Federation (src/federation/): how peers' documents are fetched. */
  federation: Type.Object({
    /** A PEM file of a CA trusted for peers' HTTPS beside the system's (a private CA, or tests); verification is
     * never turned off. */
    peerCaFile: Type.Optional(Type.String({ minLength: 1 })),
    /** How often peers' documents and reports are fetched again. */
    refreshSeconds: Type.Number({ minimum: 1, maximum: 604800 }),
    /** The largest bundle a resident moving here may bring (docs/migration-format.md), refused before download;
     * 20 GiB when not set. */
    moveMaxMb: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024 })),
  }),
  trustProxy: Type.Union([
    Type.Literal(false),
    Type.Integer({ minimum: 1, maximum: 16 }),
    Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 64 }),
  ]),
});
export type Config = Static<typeof ConfigSchema>;

type Env = Record<string, string | undefined>;

function num(v: string | undefined, dflt: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  return Number.isFinite(n) ? n : NaN;
}

/** `group=role,group2=role2` → { group: role, group2: role2 }. */
function parseMap(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (v ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const [k, r] = pair.split('=');
    out[k ?? ''] = r ?? '';
  }
  return out;
}

const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

/** Let's Encrypt's directories (https://letsencrypt.org/docs/staging-environment/). */
export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';
function acmeDirectory(v: string | undefined): string {
  if (!v || v === 'letsencrypt') return LETS_ENCRYPT;
  return v === 'staging' ? LETS_ENCRYPT_STAGING : v;
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** One entry of CATTERY_TRUST_PROXY: an address, a CIDR with a prefix its family allows, or a proxy-addr name. */
export function isProxyEntry(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true;
  const [addr = '', prefix, ...rest] = entry.split('/');
  const family = net.isIP(addr);
  if (!family || rest.length) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/** `` or `false` → nobody; `2` → two hops; `127.0.0.1,10.0.0.0/8` → those. Everything else stops the start. */
function parseTrustProxy(v: string | undefined): Config['trustProxy'] {
  const text = (v ?? '').trim();
  if (text === '' || text === 'false' || text === '0') return false;
  if (/^\d+$/.test(text)) return Number(text);
  const entries = text.split(',').map((e) => e.trim());
  const bad = entries.find((e) => !isProxyEntry(e));
  // `true` (trust everyone) is refused on purpose: any client could then pick its own address.
  if (bad !== undefined) throw fail('CATTERY_ERR_CONFIG', `CATTERY_TRUST_PROXY: "${bad.slice(0, 64)}" is not an address, a CIDR, loopback, linklocal, uniquelocal or a hop count`);
  return entries;
}

/** CATTERY_SECRET_MIN_GROUP: a whole number of persons, never below INSEE's 11 (it may only be raised). */
function minGroup(v: string | undefined): number {
  if (v === undefined || v.trim() === '') return MIN_GROUP_FLOOR;
  const n = Number(v);
  if (!Number.isInteger(n)) throw fail('CATTERY_ERR_CONFIG', `CATTERY_SECRET_MIN_GROUP: "${v.slice(0, 20)}" is not a whole number of persons`);
  if (n < MIN_GROUP_FLOOR) throw fail('CATTERY_ERR_CONFIG', `CATTERY_SECRET_MIN_GROUP: ${n} is below ${MIN_GROUP_FLOOR}, INSEE's threshold of statistical secrecy; it may only be raised`);
  return n;
}

/** `a|b|c;d|e|f` → [[a,b,c],[d,e,f]]: one record per `;`, fields by `|` (neither appears in what they hold). Each
 * record is checked here, so that a mistake names its variable, its place in the list and its field. */
function records(name: string, v: string | undefined, fields: string[], min: number, check: (f: string[]) => string | null): string[][] {
  const out: string[][] = [];
  const entries = (v ?? '').split(';').map((e) => e.trim()).filter(Boolean);
  entries.forEach((entry, i) => {
    const f = entry.split('|').map((x) => x.trim());
    if (f.length < min || f.length > fields.length) throw fail('CATTERY_ERR_CONFIG', `${name}: entry ${i + 1} has ${f.length} fields; write ${fields.join('|')} (entries separated by ;)`);
    const problem = check(f);
    if (problem) throw fail('CATTERY_ERR_CONFIG', `${name}: entry ${i + 1}: ${problem}`);
    out.push(f);
  });
  return out;
}
const country = (c: string | undefined) => (/^[A-Z]{2}$/.test(c ?? '') ? null : `country "${(c ?? '').slice(0, 10)}" is not an ISO 3166-1 alpha-2 code (FR, DE…)`);

/** CATTERY_SUBCONTRACTORS=`name|role|country|website;…` (website may be left out). */
function subcontractors(v: string | undefined): Config['publication']['subcontractors'] {
  return records('CATTERY_SUBCONTRACTORS', v, ['name', 'role', 'country', 'website'], 3, ([name = '', role = '', c, web = '']) => {
    if (!name || name.length > 100) return 'a name of 1 to 100 characters';
    if (!role || role.length > 200) return 'what they do, in 1 to 200 characters';
    if (!/^(https?:\/\/\S{1,300})?$/.test(web)) return `website "${web.slice(0, 40)}" is not an http(s) address`;
    return country(c);
  }).map(([name = '', role = '', c = '', website = '']) => ({ name, role, country: c, website }));
}

/** CATTERY_BACKUP_SITES=`repository|country|place;…`. */
function backupSites(v: string | undefined): Config['publication']['backupSites'] {
  const seen = new Set<string>();
  return records('CATTERY_BACKUP_SITES', v, ['repository', 'country', 'place'], 3, ([repo = '', c, place = '']) => {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(repo)) return `"${repo.slice(0, 40)}" is not a repository name`;
    if (seen.has(repo)) return `repository ${repo} is listed twice`;
    seen.add(repo);
    if (!place || place.length > 200) return 'the place, in 1 to 200 characters';
    return country(c);
  }).map(([repository = '', c = '', place = '']) => ({ repository, country: c, place }));
}

/** Read the configuration from an environment (process.env by default) and validate it. */
export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const dataDir = path.resolve(env.CATTERY_DATA_DIR ?? 'data');
  const range = (env.CATTERY_PORT_RANGE ?? '20000-29999').split('-').map((s) => Number(s));
  const candidate: Config = {
    dataDir,
    dbFile: path.resolve(env.CATTERY_DB ?? path.join(dataDir, 'cattery.db')),
    catalogDirs: (env.CATTERY_CATALOG ?? 'services').split(':').filter(Boolean).map((d) => path.resolve(d)),
    host: env.CATTERY_HOST ?? '127.0.0.1',
    port: num(env.CATTERY_PORT, 8080),
    hosterId: env.CATTERY_HOSTER_ID ?? 'cattery',
    dockerEndpoint: env.CATTERY_DOCKER ?? (env.DOCKER_HOST || 'unix:///var/run/docker.sock'),
    publishAddress: env.CATTERY_PUBLISH_ADDRESS ?? '127.0.0.1',
    portRange: [range[0] ?? NaN, range[1] ?? NaN],
    reconcileIntervalSeconds: num(env.CATTERY_RECONCILE_INTERVAL_S, 30),
    concurrency: num(env.CATTERY_CONCURRENCY, 4),
    dockerTimeoutSeconds: num(env.CATTERY_DOCKER_TIMEOUT_S, 30),
    healthTimeoutSeconds: num(env.CATTERY_HEALTH_TIMEOUT_S, 120),
    adminToken: env.CATTERY_ADMIN_TOKEN || undefined,
    logLevel: (env.CATTERY_LOG_LEVEL ?? 'info') as Config['logLevel'],
    debianMirror: env.CATTERY_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian',
    // Outside Docker's own default pools (172.17-31/16, 192.168/16), so neither allocates what the other holds.
    subnetPool: env.CATTERY_SUBNET_POOL ?? '10.213.0.0/16',
    publicUrl: (env.CATTERY_PUBLIC_URL ?? '').replace(/\/$/, '') || `http://127.0.0.1:${num(env.CATTERY_PORT, 8080)}`,
    secret: env.CATTERY_SECRET || undefined,
    sessionIdleMinutes: num(env.CATTERY_SESSION_IDLE_MIN, 120),
    mediatorIdleMinutes: num(env.CATTERY_MEDIATOR_IDLE_MIN, 15),
    sessionMaxHours: num(env.CATTERY_SESSION_MAX_H, 12),
    oidc: env.CATTERY_OIDC_ISSUER ? {
      issuer: env.CATTERY_OIDC_ISSUER,
      clientId: env.CATTERY_OIDC_CLIENT_ID ?? '',
      ...(env.CATTERY_OIDC_CLIENT_SECRET ? { clientSecret: env.CATTERY_OIDC_CLIENT_SECRET } : {}),
      redirectUrl: env.CATTERY_OIDC_REDIRECT_URL ?? '',
      scopes: env.CATTERY_OIDC_SCOPES ?? 'openid profile email',
      rolesClaim: env.CATTERY_OIDC_ROLES_CLAIM ?? 'groups',
      roleMap: parseMap(env.CATTERY_OIDC_ROLE_MAP),
      label: env.CATTERY_OIDC_LABEL ?? 'OpenID Connect',
    } : undefined,
    signupApproval: (env.CATTERY_SIGNUP_APPROVAL ?? 'admin') as Config['signupApproval'],
    termsVersion: env.CATTERY_TERMS_VERSION ?? '2026-11',
    loginPerMinute: num(env.CATTERY_LOGIN_PER_MINUTE, 20),
    signupPerHour: num(env.CATTERY_SIGNUP_PER_HOUR, 30),
    defaultQuotaMb: num(env.CATTERY_DEFAULT_QUOTA_MB, 1024),
    meterIntervalSeconds: num(env.CATTERY_METER_INTERVAL_S, 10),
    meterRetentionHours: num(env.CATTERY_METER_RETENTION_H, 48),
    meterHourlyDays: num(env.CATTERY_METER_HOURLY_DAYS, 730),
    idlePolicy: (env.CATTERY_IDLE_POLICY ?? 'reserved') as Config['idlePolicy'],
    gridGCo2ePerKwh: num(env.CATTERY_GRID_GCO2E_PER_KWH, FRENCH_GRID_GCO2E_PER_KWH),
    trustProxy: parseTrustProxy(env.CATTERY_TRUST_PROXY),
    chromium: path.resolve(env.CATTERY_CHROMIUM || '/usr/bin/chromium'),
    publication: {
      minGroup: minGroup(env.CATTERY_SECRET_MIN_GROUP),
      organization: {
        name: env.CATTERY_ORG_NAME ?? '',
        description: env.CATTERY_ORG_DESCRIPTION ?? '',
        website: env.CATTERY_ORG_WEBSITE ?? '',
        type: (env.CATTERY_ORG_TYPE || 'ASSOCIATION') as Config['publication']['organization']['type'],
        status: (env.CATTERY_ORG_STATUS || 'ACTIVE') as Config['publication']['organization']['status'],
        startDate: env.CATTERY_ORG_START_DATE ?? '',
        chatonsSince: env.CATTERY_ORG_CHATONS_SINCE ?? '',
        contactEmail: env.CATTERY_ORG_CONTACT_EMAIL ?? '',
        contactUrl: env.CATTERY_ORG_CONTACT_URL ?? '',
        legalUrl: env.CATTERY_ORG_LEGAL_URL ?? '',
        geolocation: env.CATTERY_ORG_GEOLOCATION ?? '',
        address: env.CATTERY_ORG_ADDRESS ?? '',
        inseeCode: env.CATTERY_ORG_INSEE_CODE ?? '',
      },
      host: {
        name: env.CATTERY_HOST_NAME ?? '',
        serverType: (env.CATTERY_HOST_SERVER_TYPE || 'PHYSICAL') as Config['publication']['host']['serverType'],
        providerType: (env.CATTERY_HOST_PROVIDER_TYPE || 'HOSTEDSERVER') as Config['publication']['host']['providerType'],
        countryName: env.CATTERY_HOST_COUNTRY_NAME ?? 'France',
        countryCode: env.CATTERY_HOST_COUNTRY_CODE || 'FR',
      },
      subcontractors: subcontractors(env.CATTERY_SUBCONTRACTORS),
      backupSites: backupSites(env.CATTERY_BACKUP_SITES),
    },
    domains: list(env.CATTERY_DOMAINS).map((d) => d.toLowerCase().replace(/\.$/, '')),
    ...(env.CATTERY_PUBLIC_IPV4 ? { publicIpv4: env.CATTERY_PUBLIC_IPV4 } : {}),
    ...(env.CATTERY_PUBLIC_IPV6 ? { publicIpv6: env.CATTERY_PUBLIC_IPV6 } : {}),
    dnsResolvers: list(env.CATTERY_DNS_RESOLVERS),
    ingress: {
      // On by default once the association has a domain: without one there is no name to get a certificate for.
      enabled: env.CATTERY_INGRESS ? env.CATTERY_INGRESS === 'on' : list(env.CATTERY_DOMAINS).length > 0,
      bindAddress: env.CATTERY_INGRESS_ADDRESS ?? '0.0.0.0',
      httpPort: num(env.CATTERY_INGRESS_HTTP_PORT, 80),
      httpsPort: num(env.CATTERY_INGRESS_HTTPS_PORT, 443),
      acmeDirectory: acmeDirectory(env.CATTERY_ACME_CA),
      ...(env.CATTERY_ACME_EMAIL ? { acmeEmail: env.CATTERY_ACME_EMAIL } : {}),
      ...(env.CATTERY_ACME_ROOT ? { acmeRootFile: path.resolve(env.CATTERY_ACME_ROOT) } : {}),
      hstsSeconds: num(env.CATTERY_HSTS_S, 31536000),
    },
    federation: {
      ...(env.CATTERY_PEER_CA ? { peerCaFile: path.resolve(env.CATTERY_PEER_CA) } : {}),
      refreshSeconds: num(env.CATTERY_FEDERATION_REFRESH_S, 3600),
      ...(env.CATTERY_MOVE_MAX_MB ? { moveMaxMb: num(env.CATTERY_MOVE_MAX_MB, 20480) } : {}),
    },
    ...(env.CATTERY_SMTP_URL ? { mail: {
      smtpUrl: env.CATTERY_SMTP_URL, from: env.CATTERY_MAIL_FROM ?? '',
      ...(env.CATTERY_SMTP_CA ? { caFile: path.resolve(env.CATTERY_SMTP_CA) } : {}),
    } } : {}),
    ...overrides,
  };
  if (candidate.oidc && !candidate.oidc.redirectUrl) candidate.oidc = { ...candidate.oidc, redirectUrl: `${candidate.publicUrl}/auth/callback` };
  if (candidate.oidc === undefined) delete candidate.oidc;
  if (candidate.secret === undefined) delete candidate.secret;
  if (candidate.adminToken === undefined) delete candidate.adminToken;
  // Before the schema's own check, so that a threshold below INSEE's says why in words.
  if (candidate.publication.minGroup < MIN_GROUP_FLOOR) throw fail('CATTERY_ERR_CONFIG', `publication.minGroup: ${candidate.publication.minGroup} is below ${MIN_GROUP_FLOOR}, INSEE's threshold of statistical secrecy; it may only be raised`);
  const first = [...Value.Errors(ConfigSchema, candidate)][0];
  if (first) throw fail('CATTERY_ERR_CONFIG', `${first.path || '/'}: ${first.message}`);
  // A date's form is the schema's; that it is a day of the calendar (not 2015-13-45) is checked here.
  for (const [name, v] of [['CATTERY_ORG_START_DATE', candidate.publication.organization.startDate], ['CATTERY_ORG_CHATONS_SINCE', candidate.publication.organization.chatonsSince]] as const) {
    const day = new Date(`${v}T00:00:00Z`);
    if (v && (Number.isNaN(day.getTime()) || day.toISOString().slice(0, 10) !== v)) throw fail('CATTERY_ERR_CONFIG', `${name}: ${v} is not a day of the calendar`);
  }
  if (Array.isArray(candidate.trustProxy)) {
    const bad = candidate.trustProxy.find((e) => !isProxyEntry(e));
    if (bad !== undefined) throw fail('CATTERY_ERR_CONFIG', `trustProxy: "${bad.slice(0, 64)}" is not an address, a CIDR or a proxy-addr name`);
  }
  for (const [key, family] of [['publicIpv4', 4], ['publicIpv6', 6]] as const) {
    const v = candidate[key];
    if (v !== undefined && net.isIP(v) !== family) throw fail('CATTERY_ERR_CONFIG', `${key}: "${v}" is not an IPv${family} address`);
  }
  if (candidate.ingress.enabled && candidate.domains.length === 0) throw fail('CATTERY_ERR_CONFIG', 'CATTERY_INGRESS=on needs CATTERY_DOMAINS: the front door serves the association\'s own names only');
  if (candidate.portRange[0] > candidate.portRange[1]) throw fail('CATTERY_ERR_CONFIG', 'CATTERY_PORT_RANGE: start is above end');
  return Object.freeze(candidate);
}

/** `cattery agent` on a node (agent/agent.ts): a configuration of its own, since a node runs no manager. Flags of
 * the command line override these. */
export const AgentConfigSchema = Type.Object({
  /** The manager's address: https, or http on a loopback address only (the enrolment token travels in it once). */
  manager: Type.Optional(Type.String({ pattern: '^https?://[^\\s/]+$' })),
  /** The one-time enrolment token, or a file holding it (a Swarm secret): either one token, or lines `NODE TOKEN`
   * of which the line whose first field is `node` (the Swarm node's hostname) is this node's. */
  token: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  tokenFile: Type.Optional(Type.String({ minLength: 1 })),
  node: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
  /** Where the node's key (0600) and its enrolment are kept (0700). */
  stateDir: Type.String({ minLength: 1 }),
  intervalSeconds: Type.Number({ minimum: 1, maximum: 3600 }),
  dockerEndpoint: Type.String({ pattern: '^(unix://|tcp://|http://|https://)' }),
  /** The host's /sys/fs/cgroup, /proc and /sys/class/powercap, as mounted in the agent's container. */
  cgroupRoot: Type.String({ minLength: 1 }),
  procRoot: Type.String({ minLength: 1 }),
  powercapRoot: Type.String({ minLength: 1 }),
  logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l))),
});
export type AgentConfig = Static<typeof AgentConfigSchema>;

export function loadAgentConfig(env: Env = process.env, overrides: Partial<AgentConfig> = {}): AgentConfig {
  const candidate: AgentConfig = {
    ...(env.CATTERY_AGENT_MANAGER ? { manager: env.CATTERY_AGENT_MANAGER.replace(/\/$/, '') } : {}),
    ...(env.CATTERY_AGENT_TOKEN ? { token: env.CATTERY_AGENT_TOKEN.trim() } : {}),
    ...(env.CATTERY_AGENT_TOKEN_FILE ? { tokenFile: path.resolve(env.CATTERY_AGENT_TOKEN_FILE) } : {}),
    ...(env.CATTERY_AGENT_NODE ? { node: env.CATTERY_AGENT_NODE } : {}),
    stateDir: path.resolve(env.CATTERY_AGENT_DIR ?? '/var/lib/cattery-agent'),
    intervalSeconds: num(env.CATTERY_AGENT_INTERVAL_S, 10),
    dockerEndpoint: env.CATTERY_DOCKER ?? (env.DOCKER_HOST || 'unix:///var/run/docker.sock'),
    cgroupRoot: env.CATTERY_AGENT_CGROUP_ROOT ?? '/sys/fs/cgroup',
    procRoot: env.CATTERY_AGENT_PROC_ROOT ?? '/proc',
    powercapRoot: env.CATTERY_AGENT_POWERCAP_ROOT ?? '/sys/class/powercap',
    logLevel: (env.CATTERY_LOG_LEVEL ?? 'info') as AgentConfig['logLevel'],
    ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)),
  };
  const first = [...Value.Errors(AgentConfigSchema, candidate)][0];
  if (first) throw fail('CATTERY_ERR_CONFIG', `agent ${first.path || '/'}: ${first.message}`);
  return Object.freeze(candidate);
}
