// Caddy's whole configuration, computed from what the database wants (pure: tested without Caddy, and the same
// input always gives the same JSON, so a hash says whether Caddy already serves it). Caddy's JSON structure is
// documented at https://caddyserver.com/docs/json/ (2.6). What cattery asks of it:
// - one HTTPS server on :443 whose routes match whole hostnames; Caddy's automatic HTTPS then obtains each name's
//   certificate and serves HTTP→HTTPS redirects and the ACME HTTP-01 answers on :80;
// - certificates from the association's ACME CA only, by HTTP-01 (TLS-ALPN off, so one challenge path is in play);
// - per service: the largest request body (`request_body.max_size`, 413 above), the time a response may take to
//   start (`response_header_timeout`, so WebSockets and long downloads are not cut), HSTS on every answer;
// - the client's address passed on: Caddy sets X-Forwarded-For from the connection and, with no `trusted_proxies`,
//   never keeps what a client wrote there (Caddy ≥ 2.5);
// - the admin API on a unix socket only, kept the same in every configuration (a /load replaces everything).
import crypto from 'node:crypto';

export const ADMIN_SOCKET = '/run/ingress/admin.sock';
export const CATTERY_SOCKET = '/run/ingress/cattery.sock';
export const ACME_ROOT_PATH = '/etc/ingress/acme-root.pem';
export const STORAGE_ROOT = '/var/lib/ingress/caddy';

export interface Site {
  hostnames: string[];
  /** host:port on a network the ingress shares with the instance, or unix//path. */
  upstream: string;
  maxBodyBytes: number;
  timeoutSeconds: number;
  websocket: boolean;
  /** Only these paths go to the upstream; any other is a 404 at the door (the mail client and MTA-STS names). */
  paths?: string[];
}

export interface IngressPlan {
  sites: Site[];
  /** Names that get a certificate and no web site (the mail host: its certificate is handed to the mail service). */
  certOnly: string[];
  acme: { directory: string; email?: string | undefined; trustRoot: boolean };
  hstsSeconds: number;
}

const seconds = (s: number) => `${s}s`;

/** A regular expression matching exactly the decimal integers above n (no sign, leading zeros allowed): Caddy 2.6
 * has no numeric comparison matcher, and `request_body` alone turns an oversized body into a 502 once the proxy
 * reads it. With this on Content-Length, a declared oversized body gets its 413 before anything is read; a chunked
 * one is still cut at the limit by `request_body`. */
export function aboveRegex(n: number): string {
  const d = String(Math.floor(n));
  const alts = [`[1-9][0-9]{${d.length},}`];
  for (let i = 0; i < d.length; i++) {
    const digit = Number(d[i]);
    if (digit === 9) continue;
    const rest = d.length - i - 1;
    alts.push(`${d.slice(0, i)}[${digit + 1}-9]${rest ? `[0-9]{${rest}}` : ''}`);
  }
  return `^0*(?:${alts.join('|')})$`;
}

function route(site: Site, hstsSeconds: number): object {
  const first: object[] = [];
  if (hstsSeconds > 0) {
    // A year by default, without includeSubDomains or preload: an association's domain may hold names it does not
    // serve over HTTPS yet, and preload cannot be taken back quickly (https://hstspreload.org/#removal).
    first.push({ handle: [{ handler: 'headers', response: { set: { 'Strict-Transport-Security': [`max-age=${hstsSeconds}`] } } }] });
  }
  const tooLarge = { match: [{ header_regexp: { 'Content-Length': { pattern: aboveRegex(site.maxBodyBytes) } } }],
    handle: [{ handler: 'static_response', status_code: 413, body: 'Request body too large\n', close: true }] };
  const handle: object[] = [{ handler: 'request_body', max_size: site.maxBodyBytes }];
  handle.push({
    handler: 'reverse_proxy',
    upstreams: [{ dial: site.upstream }],
    transport: { protocol: 'http', dial_timeout: seconds(5), response_header_timeout: seconds(site.timeoutSeconds) },
    // Failing fast when the instance is down: one upstream, nothing to retry on.
    load_balancing: { try_duration: '0s' },
  });
  const proxied = site.paths
    ? [{ match: [{ path: [...site.paths] }], handle }, { handle: [{ handler: 'static_response', status_code: 404 }] }]
    : [{ handle }];
  return { match: [{ host: [...site.hostnames] }], handle: [{ handler: 'subroute', routes: [...first, tooLarge, ...proxied] }], terminal: true };
}

/** The sites in the plan's order (ingress.ts puts cattery's own first, then the instances' by name). */
export function caddyConfig(plan: IngressPlan): object {
  const sites = plan.sites;
  const names = [...new Set([...sites.flatMap((s) => s.hostnames), ...plan.certOnly])].sort();
  const issuer: Record<string, unknown> = {
    module: 'acme',
    ca: plan.acme.directory,
    challenges: { 'tls-alpn': { disabled: true } },
  };
  if (plan.acme.email) issuer.email = plan.acme.email;
  if (plan.acme.trustRoot) issuer.trusted_roots_pem_files = [ACME_ROOT_PATH];
  return {
    // Caddy checks the Host of admin requests against `origins` (DNS rebinding); cattery's client says localhost.
    admin: { listen: `unix/${ADMIN_SOCKET}`, origins: ['localhost'], config: { persist: false } },
    storage: { module: 'file_system', root: STORAGE_ROOT },
    apps: {
      http: {
        http_port: 80,
        https_port: 443,
        servers: {
          front: {
            listen: [':443'],
            routes: sites.map((s) => route(s, plan.hstsSeconds)),
            // Every name is asked for here, and no other: an unknown name gets no certificate (no on-demand TLS).
            automatic_https: { disable: false },
            ...CLIENT_DEADLINES,
          },
          // Port 80 made here rather than by Caddy's automatic HTTPS, only so that it has the same deadlines; Caddy
          // adds its redirects to HTTPS and the ACME HTTP-01 answers to it.
          plain: { listen: [':80'], routes: [], ...CLIENT_DEADLINES },
        },
      },
      tls: {
        automation: { policies: names.length ? [{ subjects: names, issuers: [issuer] }] : [] },
        ...(plan.certOnly.length ? { certificates: { automate: [...plan.certOnly].sort() } } : {}),
      },
    },
  };
}

/** What a client may take. Caddy 2.6 sets none but a 5-minute idle_timeout by default, and Go's server then gives
 * neither the TLS handshake nor the request head a deadline: one client holding thousands of silent connections
 * (~37 KB each) took the door to its memory limit in the outside review. read_header_timeout bounds both (Go uses it
 * for the handshake too); no read_timeout, which would cut a slow upload of a large file. HTTP/1.1 and HTTP/2 only:
 * UDP 443 is not published, so announcing HTTP/3 would only make browsers try it and fall back. */
const CLIENT_DEADLINES = { read_header_timeout: '10s', idle_timeout: '2m', protocols: ['h1', 'h2'] };

/** JSON with its keys sorted, so that two equal configurations give one text and one hash. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function configHash(config: object): string {
  return crypto.createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 16);
}
