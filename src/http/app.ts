// The Fastify app, built as a plugin tree from its dependencies; `cattery serve` (cli/main.ts) only listens and shuts
// down.
import crypto from 'node:crypto';
import path from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import websocket from '@fastify/websocket';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import csrf from '@fastify/csrf-protection';
import rateLimit from '@fastify/rate-limit';
import view from '@fastify/view';
import { Eta } from 'eta';
import AjvCompiler from '@fastify/ajv-compiler';
import type { preValidationHookHandler } from 'fastify';
import type { AccountDeps } from '../accounts/accounts.js';
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { fail, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { EventBus } from '../orchestrator/events.js';
import type { Reconciler } from '../orchestrator/reconcile.js';
import { createOidc, type Oidc } from '../identity/oidc.js';
import { createSignInThrottle } from '../identity/throttle.js';
import { setPasswordEverywhere } from '../identity/person-accounts.js';
import type { Instance, User } from '../db/schema.js';
import { certificateHostOf } from '../ingress/mail-host.js';
import { webAddressOf } from '../ingress/web-address.js';
import { checkFormOrigin, checkOwnSite, checkSocketOrigin, csrfBinding, csrfHmacKey } from './csrf.js';
import { checkBodyType, checkRoles, checkSignedRoles, createPrincipalResolver } from './auth.js';
import { cookieNames, cookieOptions } from './cookies.js';
import { DOOR_PEER, REQUEST_ID, clientKey, compileProxyTrust } from './proxy-trust.js';
import { errorHandler } from './error-handler.js';
import { compressReply } from './compress.js';
import { PERMISSIONS, permissionKey } from './permissions.js';
import { makePage } from './pages/render.js';
import { VIEWS_DIR, sessionPolicy } from './pages/deps.js';
import { publicPages } from './pages/public.js';
import { residentPages } from './pages/me.js';
import { mailClientPages } from './pages/mail-client.js';
import { mediatorPages } from './pages/mediator.js';
import { adminPages } from './pages/admin.js';
import { dashboardPages } from './pages/dashboard.js';
import { chartPages } from './pages/charts.js';
import { identityRoutes } from './routes/identity.js';
import { meteringRoutes } from './routes/metering.js';
import type { Collector } from '../metering/collector.js';
import { accountRoutes } from './routes/accounts.js';
import { catalogRoutes } from './routes/catalog.js';
import { eventRoutes } from './routes/events.js';
import { instanceRoutes } from './routes/instances.js';
import { ingressRoutes } from './routes/ingress.js';
import type { Ingress } from '../ingress/ingress.js';
import { relocateRoutes } from './routes/relocate.js';
import type { RelocateDeps } from '../orchestrator/relocate.js';
import { serverRoutes } from './routes/servers.js';
import { dnsRoutes } from './routes/dns.js';
import { governanceRoutes } from './routes/governance.js';
import { dnsPages } from './pages/dns.js';
import { namesPages } from './pages/names.js';
import type { DkimKeysOf } from '../ingress/dkim-keys.js';
import { membershipPages } from './pages/membership.js';
import { votePages } from './pages/votes.js';
import { decisionPages } from './pages/decisions.js';
import { boardPages } from './pages/board.js';
import { memberAdminPages } from './pages/members-admin.js';
import { duesPages } from './pages/dues-pages.js';
import { housekeepingRoutes } from './routes/housekeeping.js';
import { backupRoutes } from './routes/backups.js';
import { publicationRoutes } from './routes/publication.js';
import { authorityRequestRoutes } from './routes/authority-requests.js';
import { transparencyPages } from './pages/transparency.js';
import type { BackupDeps } from '../backups/backups.js';
import type { HousekeepingDeps } from '../orchestrator/housekeeping.js';
import type { Federation } from '../federation/federation.js';
import { federationRoutes } from './routes/federation.js';
import { moveRoutes } from './routes/moves.js';
import { federationPages } from './pages/federation.js';
import { agentRoutes } from './routes/agent.js';
import { createAgentIngest } from '../agent/ingest.js';
import { withdrawNoNewPrivilegesLabel } from '../agent/isolation.js';
import { listServers } from '../orchestrator/servers.js';

export interface AppDeps {
  config: Config;
  db: Db;
  catalog: Catalog;
  reconciler: Reconciler;
  events: EventBus;
  log: Logger;
  collector: Collector;
  /** What account operations need, built once (runtime.ts). */
  accounts: AccountDeps;
  /** Signs cookies (CSRF secret); made once per data folder (identity/secret.ts). */
  secret: string;
  /** The front door (ingress/), when the runtime has one. */
  ingress?: Ingress;
  /** The DKIM keys a domain's mail instance signs with (ingress/dkim-keys.ts); none known without it. */
  dkimKeys?: DkimKeysOf;
  /** Backups (backups/): the API and the admin page's section; without it (tests of other domains) neither. */
  backups?: BackupDeps;
  /** Federation (federation/): the signed documents, peers and their pages; without it (tests of other domains) none. */
  federation?: Federation;
}


declare module 'fastify' {
  interface FastifyInstance {
    /** Every route with its method, as registered: what the role matrix test walks. */
    routeTable: { method: string; url: string; page: boolean; acts: boolean; cacheable: boolean; websocket: boolean; signature: boolean }[];
  }
}

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'CATTERY_ERR_VALIDATION', 401: 'CATTERY_ERR_UNAUTHENTICATED', 403: 'CATTERY_ERR_FORBIDDEN', 404: 'CATTERY_ERR_NOT_FOUND',
  409: 'CATTERY_ERR_CONFLICT', 413: 'CATTERY_ERR_TOO_LARGE', 415: 'CATTERY_ERR_UNSUPPORTED_MEDIA', 429: 'CATTERY_ERR_THROTTLED',
};
const codeForStatus = (status: number): string => STATUS_CODES[status] ?? (status >= 500 ? 'CATTERY_ERR_INTERNAL' : 'CATTERY_ERR_VALIDATION');

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const configured = compileProxyTrust(deps.config.trustProxy);
  // The front door's socket (ingress/, runtime.ts) is one trusted hop; past it, and for every TCP peer, the
  // configured rule decides.
  const trustProxy = (addr: string | undefined, hop: number) => (addr === DOOR_PEER ? hop === 0 : addr !== undefined && configured(addr, hop));
  const app = Fastify({
    loggerInstance: deps.log.child({ domain: 'http' }) as FastifyBaseLogger,
    // Every log line of a request carries its id. The trusted reverse proxy may pass on its own (so that its logs and
    // ours match), when it is plainly an id; anyone else's, or anything stranger, is replaced by one made here.
    requestIdHeader: false,
    genReqId: (raw) => {
      const sent = raw.headers['x-request-id'];
      const peer = raw.socket?.remoteAddress ?? '';
      // Caddy passes a client's own X-Request-Id on untouched, so the front door's socket does not vouch for one.
      return typeof sent === 'string' && REQUEST_ID.test(sent) && peer !== '' && peer !== DOOR_PEER && configured(peer, 0) ? sent : crypto.randomUUID();
    },
    bodyLimit: 256 * 1024,
    // A target the router cannot even decode (`/%E0`) never reaches a route nor the error handler: it gets the
    // family's code here, like every other refusal.
    frameworkErrors: (err, _req, reply) => {
      const status = err.code !== 'FST_ERR_BAD_URL' && err.statusCode === 404 ? 404 : 400;
      const code = status === 404 ? 'CATTERY_ERR_NOT_FOUND' : 'CATTERY_ERR_VALIDATION';
      const r = reply as unknown as FastifyReply;
      r.header('x-cattery-error', code).code(status).send({ statusCode: status, code, error: 'Bad Request', message: 'The request target is not a valid URL' });
    },
    // req.ip is the client's address behind the proxies CATTERY_TRUST_PROXY names: rate limits and throttles key on it.
    trustProxy,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false, verbose: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // A JSON body is typed as sent: Ajv's type coercion, which querystrings, params and form bodies need ('5' → 5), would
  // turn `"secret": null` into false (an open ballot) or an out-of-range `0` of a nullable number into null (a
  // college's weight 0 into "equal weights"). So API bodies are checked without coercion, everything else with it.
  const compilers = AjvCompiler();
  const ajvOptions = { removeAdditional: false, allErrors: false, verbose: true } as const;
  const coercing = compilers({}, { customOptions: { ...ajvOptions, coerceTypes: 'array' } });
  const exact = compilers({}, { customOptions: { ...ajvOptions, coerceTypes: false } });
  app.setValidatorCompiler((route) => (route.httpPart === 'body' && route.url.startsWith('/api/') ? exact : coercing)(route));

  // A TCP peer that reset before Node read its address has none; whatever it queued would be read without one. Such
  // a connection is closed at once: no request is ever handled with an unknown peer.
  app.server.on('connection', (socket: { remoteAddress?: string; destroy(): void }) => { if (socket.remoteAddress === undefined) socket.destroy(); });
  app.setErrorHandler(errorHandler);
  // No route matched, so there is no route config to go by: the answer's form follows what the client accepts (a
  // browser gets a page), and it carries no authority either way (auth.ts gives no principal here).
  app.setNotFoundHandler((req, reply) => {
    reply.header('x-cattery-error', 'CATTERY_ERR_NOT_FOUND');
    if (req.headers.accept?.includes('text/html')) return reply.page('error', { code: 'CATTERY_ERR_NOT_FOUND', detail: '', requestId: req.id }, 404);
    // Only echoed in the message (no route matched, so nothing is decided from it).
    const path = (req.url.split('?')[0] ?? '').slice(0, 200);
    return reply.code(404).send({ statusCode: 404, code: 'CATTERY_ERR_NOT_FOUND', error: 'Not Found', message: `No route ${req.method} ${path}` });
  });

  const secureCookies = deps.config.publicUrl.startsWith('https://');
  app.decorate('cookieNames', cookieNames(secureCookies));
  await registerPlugins(app as unknown as FastifyInstance, deps, secureCookies);
  enforcePermissions(app as unknown as FastifyInstance, checkFormOrigin(new URL(deps.config.publicUrl).origin), checkSocketOrigin(new URL(deps.config.publicUrl).origin));
  const oidc = deps.config.oidc ? createOidc(deps.config.oidc, deps.log.child({ domain: 'identity' })) : undefined;
  guardRequests(app as unknown as FastifyInstance, deps, oidc);
  await registerRoutes(app as unknown as FastifyInstance, deps, oidc, secureCookies);
  return app as unknown as FastifyInstance;
}

/** Cookies, forms, CSRF, rate limits and the page templates. */
async function registerPlugins(app: FastifyInstance, deps: AppDeps, secureCookies: boolean): Promise<void> {
  await app.register(cookie, { secret: deps.secret });
  // Forms are small: a sign-up is a few hundred bytes. Anything past 16 KiB is refused before it is parsed. The parser
  // is the app's, but only page routes are let through with a form body (auth.ts checkBodyType): the API takes JSON.
  await app.register(formbody, { bodyLimit: 16 * 1024 });
  await app.register(csrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: cookieNames(secureCookies).csrf,
    cookieOpts: { ...cookieOptions(secureCookies), signed: true },
    getToken: (req) => (req.body as { _csrf?: string } | undefined)?._csrf,
    // Bound to the session (csrf.ts): a pair tossed in by a same-site page from its own session is refused.
    getUserInfo: csrfBinding,
    csrfOpts: { hmacKey: csrfHmacKey(deps.secret) },
  });
  await app.register(rateLimit, { global: false, keyGenerator: (req) => clientKey(req.ip), errorResponseBuilder: (_req, ctx) => fail('CATTERY_ERR_THROTTLED', String(Math.ceil(ctx.ttl / 1000))) });
  await app.register(view, { engine: { eta: new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true }) }, templates: VIEWS_DIR, layout: 'layout' });

}

/** The one table (permissions.ts) gives every route its roles; a route missing from it stops the build of the app.
 * Every form a page posts is checked for its CSRF token, and every WebSocket a page opens for its Origin, by
 * construction rather than by remembering. */
function enforcePermissions(app: FastifyInstance, formOrigin: preValidationHookHandler, socketOrigin: preValidationHookHandler): void {
  const routeTable: { method: string; url: string; page: boolean; acts: boolean; cacheable: boolean; websocket: boolean; signature: boolean }[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/documentation')) return;
    // The HEAD twin Fastify adds to each GET is cloned before this hook sees the GET: it gets the GET's roles here.
    if (route.method === 'HEAD') {
      const roles = PERMISSIONS[permissionKey('GET', route.url)];
      if (!roles?.length) throw fail('CATTERY_ERR_CONFIG', `route HEAD ${route.url} has no GET line in http/permissions.ts`);
      route.config = { ...(route.config ?? {}), roles };
      return;
    }
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const m of methods) routeTable.push({ method: m, url: route.url, page: route.config?.page === true, acts: route.config?.acts === true, cacheable: route.config?.cacheable === true, websocket: route.websocket === true, signature: route.config?.signature === true });
    for (const m of methods) {
      const roles = PERMISSIONS[permissionKey(m, route.url)];
      if (!roles?.length) throw fail('CATTERY_ERR_CONFIG', `route ${m} ${route.url} has no line in http/permissions.ts`);
      // What a cache keeps, anyone behind it may get: only an answer for everyone may be cached.
      if (route.config?.cacheable && !(roles.length === 1 && roles[0] === 'public')) throw fail('CATTERY_ERR_CONFIG', `route ${m} ${route.url} is cacheable but not public`);
      route.config = { ...(route.config ?? {}), roles };
    }
    // A node's agent is known by a signature only, and only on routes that check one: the two go together.
    const agentRole = route.config?.roles?.includes('agent') === true;
    if (agentRole !== (route.config?.signature === true)) throw fail('CATTERY_ERR_CONFIG', `route ${route.url}: the agent role and a signed body go together`);
    if (route.config?.signature) {
      if (route.config.roles?.length !== 1 || route.config.page || !route.preValidation) throw fail('CATTERY_ERR_CONFIG', `signed route ${route.url} must be the agent's alone, not a page, and check its signature in preValidation`);
      route.preValidation = [...[route.preValidation].flat(), checkSignedRoles as preValidationHookHandler];
    }
    if (route.config?.page && route.config?.acts && methods.includes('GET')) {
      route.preValidation = [checkOwnSite, ...(route.preValidation ? [route.preValidation].flat() : [])];
    }
    if (route.config?.page && route.websocket) {
      route.preValidation = [socketOrigin, ...(route.preValidation ? [route.preValidation].flat() : [])];
    }
    if (route.config?.page && methods.includes('POST')) {
      // preValidation: the token is a form field, so the body must be parsed; and the check comes before the schema's.
      const existing = route.preValidation ? [route.preValidation].flat() : [];
      route.preValidation = [formOrigin, app.csrfProtection as preValidationHookHandler, ...existing];
    }
  });
}

/** Who is calling and whether their role may (auth.ts), on every request; the headers every answer carries. */
function guardRequests(app: FastifyInstance, deps: AppDeps, oidc: Oidc | undefined): void {
  const resolve = createPrincipalResolver({
    db: deps.db, adminToken: deps.config.adminToken, session: sessionPolicy(deps.config),
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('user', null);
  app.decorateReply('page', makePage(oidc ? [new URL(deps.config.oidc!.issuer).origin] : []));
  app.addHook('onRequest', async (req, reply) => {
    resolve(req);
    await checkRoles(req, reply);
    checkBodyType(req);
  });
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-request-id', req.id);
    // A page that answers a form with its own errors (a sign-up form shown again, 400) still says, for scripts and
    // tests, which kind of refusal it was: every refusal carries a code of the family.
    if (reply.statusCode >= 400 && reply.getHeader('x-cattery-error') === undefined) {
      reply.header('x-cattery-error', codeForStatus(reply.statusCode));
    }
    // Answers carry people's data and secrets (a first password, a new token, an export): no cache keeps them unless
    // a route says otherwise (the style sheet).
    if (reply.getHeader('cache-control') === undefined) reply.header('cache-control', 'no-store');
  });
  // Pages and the stylesheet compressed for the person's own browser only (compress.ts: streams, ETags and BREACH).
  app.addHook('onSend', compressReply);
}

/** Every domain's routes and pages, each plugin handed only what it needs. */
async function registerRoutes(app: FastifyInstance, deps: AppDeps, oidc: Oidc | undefined, secureCookies: boolean): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'cattery', version: '0.1.0', description: 'Control plane of a community hoster (CHATONS)' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  app.get('/api/openapi.json', {
    schema: { hide: true },
  }, async () => app.swagger());
  app.get('/healthz', {
    schema: { tags: ['system'], summary: 'Liveness', response: { 200: Type.Object({ ok: Type.Boolean() }) } },
  }, async () => ({ ok: true }));

  const instanceDeps = {
    db: deps.db, catalog: deps.catalog, portRange: deps.config.portRange, subnetPool: deps.config.subnetPool,
    linkHostOf: (target: Instance) => certificateHostOf(deps.db, target),
  };
  await app.register(catalogRoutes, { catalog: deps.catalog, db: deps.db });
  await app.register(serverRoutes, { db: deps.db, catalog: deps.catalog, engineFor: deps.reconciler.engineFor });
  await app.register(instanceRoutes, { deps: instanceDeps, reconciler: deps.reconciler });
  if (deps.backups) await app.register(backupRoutes, { deps: deps.backups, instanceDeps, accountDeps: deps.accounts, reconciler: deps.reconciler });
  // Moves go through backups: without them (tests of other domains) neither the routes nor the admin page's actions.
  const relocate: RelocateDeps | undefined = deps.backups ? {
    db: deps.db, catalog: deps.catalog, hosterId: deps.config.hosterId, log: deps.log.child({ domain: 'orchestrator' }), instanceDeps,
    backups: deps.backups, reconciler: deps.reconciler, volumesDir: path.join(deps.config.dataDir, 'volumes'),
  } : undefined;
  if (relocate) await app.register(relocateRoutes, { deps: relocate });
  await app.register(ingressRoutes, { deps: { db: deps.db, config: deps.config, catalog: deps.catalog, reconciler: deps.reconciler, ingress: deps.ingress } });
  await app.register(accountRoutes, { deps: deps.accounts });
  await app.register(eventRoutes, { events: deps.events });
  await app.register(meteringRoutes, { db: deps.db, config: deps.config, collector: deps.collector, catalog: deps.catalog });
  const ingest = createAgentIngest({
    db: deps.db, catalog: deps.catalog, idlePolicy: deps.config.idlePolicy, log: deps.log.child({ domain: 'agent' }),
    publish: (r) => deps.collector.publish(r),
    onIsolationFailed: async (server) => {
      if (await withdrawNoNewPrivilegesLabel({ servers: () => listServers(deps.db), engineFor: deps.reconciler.engineFor }, server)) {
        deps.log.warn({ server: server.name }, 'the node\'s cattery.no-new-privileges label was withdrawn: its agent saw an instance task without it');
      }
    },
  });
  await app.register(agentRoutes, { db: deps.db, ingest, hosterId: deps.config.hosterId });
  const dnsDeps = { config: deps.config, db: deps.db, dkimKeys: deps.dkimKeys ?? (async () => []) };
  await app.register(dnsRoutes, { deps: dnsDeps });
  await app.register(governanceRoutes, { deps: { accounts: deps.accounts } });
  const housekeeping: HousekeepingDeps = {
    db: deps.db, catalog: deps.catalog, hosterId: deps.config.hosterId, engineFor: deps.accounts.engineFor,
    backupsDir: path.join(deps.config.dataDir, 'backups'), volumesDir: path.join(deps.config.dataDir, 'volumes'),
    log: deps.log.child({ domain: 'orchestrator' }),
  };
  await app.register(housekeepingRoutes, { deps: housekeeping });
  await app.register(publicationRoutes, { deps: { db: deps.db, catalog: deps.catalog, config: deps.config } });
  await app.register(authorityRequestRoutes, { db: deps.db });
  if (deps.federation) await app.register(federationRoutes, { federation: deps.federation });
  // The arrival page and API share one bucket per client (routes/moves.ts arrivalThrottle).
  const arrivalLimit = app.createRateLimit({ max: deps.config.signupPerHour, timeWindow: 3_600_000 });
  if (deps.federation) await app.register(moveRoutes, { federation: deps.federation, arrivalLimit });

  const pageDeps = {
    config: deps.config, db: deps.db, catalog: deps.catalog, oidc, throttle: createSignInThrottle(), secureCookies,
    accounts: deps.accounts,
    webAddress: (inst: Instance) => webAddressOf(deps, inst, deps.ingress?.ports(inst.serverId).https || deps.config.ingress.httpsPort),
    signIn: {
      db: deps.db, syncServicePasswords: (u: User, p: string) => setPasswordEverywhere(deps.accounts, u, p, `user:${u.login}`),
    },
  };
  await app.register(identityRoutes, { deps: pageDeps });
  await app.register(publicPages, { deps: pageDeps });
  await app.register(residentPages, { deps: pageDeps });
  await app.register(mailClientPages, { deps: pageDeps });
  await app.register(mediatorPages, { deps: pageDeps });
  await app.register(adminPages, { deps: pageDeps, housekeeping, backups: deps.backups, relocate });
  await app.register(dashboardPages, { deps: pageDeps, collector: deps.collector });
  await app.register(chartPages, { deps: pageDeps, collector: deps.collector });
  await app.register(dnsPages, { deps: dnsDeps });
  await app.register(namesPages, { deps: { db: deps.db, config: deps.config, catalog: deps.catalog, reconciler: deps.reconciler, ingress: deps.ingress } });
  await app.register(membershipPages, { deps: pageDeps });
  await app.register(votePages, { deps: pageDeps });
  await app.register(decisionPages, { deps: pageDeps });
  await app.register(boardPages, { deps: pageDeps });
  await app.register(memberAdminPages, { deps: pageDeps });
  await app.register(duesPages, { deps: pageDeps });
  await app.register(transparencyPages, { deps: pageDeps });
  if (deps.federation) await app.register(federationPages, { federation: deps.federation, arrivalLimit });
}
