// The desired state of the hoster and the journal of what was done to reach it. Docker is converged to these rows.
import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, real, uniqueIndex, index } from 'drizzle-orm/sqlite-core';

const now = sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`;

export const SWARM_ROLES = ['manager', 'worker'] as const;
export type SwarmRole = (typeof SWARM_ROLES)[number];

export const servers = sqliteTable('servers', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  /** unix:///var/run/docker.sock, tcp://host:2376 … */
  dockerEndpoint: text('docker_endpoint').notNull(),
  site: text('site').notNull().default(''),
  /** The host address instances' ports are published on: 127.0.0.1 unless a proxy in front needs otherwise. */
  publishAddress: text('publish_address').notNull().default('127.0.0.1'),
  createdAt: text('created_at').notNull().default(now),
  /** How this server's power is known (metering/power.ts): a meter, else its power curve. */
  energy: text('energy', { mode: 'json' }).$type<ServerEnergy>(),
  /** Its engine's place in the association's Docker Swarm (docs/swarm.md), set by `cattery servers swarm-init` and
   * `join`: its instances then run as Swarm services through the manager's engine. Null: a plain engine, as before. */
  swarmRole: text('swarm_role', { enum: SWARM_ROLES }),
  /** The Swarm node id its engine joined as (recorded by `swarm-init`/`join`): what its stateful instances are pinned
   * to. A server reinstalled joins as a new node, which never receives the old one's pinned instances (their data is
   * on the old disk): the label alone would send them there onto empty volumes. */
  swarmNodeId: text('swarm_node_id'),
  /** What its node's agent measured of the isolation its node's dockerd gives (agent/isolation.ts): null until a
   * sample listed an instance's task. A failed check keeps placement away from the server (orchestrator/placement.ts). */
  isolation: text('isolation', { mode: 'json' }).$type<ServerIsolation>(),
});

/** The node agent's check of a swarm server: every instance task's NoNewPrivs, read from /proc/<pid>/status. */
export interface ServerIsolation {
  /** ok: every instance task listed has NoNewPrivs 1; failed: one had 0 (kept until a sample lists instance tasks
   * that all have it); unknown: the agent does not say (an older agent). */
  noNewPrivs: 'ok' | 'failed' | 'unknown';
  /** The instances whose task ran without it, when failed. */
  missing: string[];
  checkedAt: string;
}

export type MeterSpec =
  | { kind: 'rapl' }
  | { kind: 'http-json'; url: string; field: string }
  | { kind: 'prometheus'; url: string; metric: string };

export interface ServerEnergy {
  /** Watts at rest and at full load (SPECpower_ssj2008 results, or a wattmeter). */
  idleWatts: number;
  maxWatts: number;
  /** SPECpower-style curve: watts at 0 %, 10 % … 100 % load (11 points); linear between idle and max when absent. */
  curve?: number[];
  meter?: MeterSpec;
  /** Manufacturing, transport and end of life, kgCO2e (manufacturer's PCF sheet or Boavizta). */
  embodiedKgCo2e: number;
  serviceLifeYears: number;
  /** The energy the association allows this server per month, in kWh (its own target, or its members' decision). */
  monthlyBudgetKwh?: number;
}

export const DESIRED = ['running', 'stopped', 'deleted'] as const;
export const OBSERVED = ['pending', 'creating', 'starting', 'running', 'healthy', 'unhealthy', 'stopped', 'deleting', 'failed', 'down'] as const;
export type Desired = (typeof DESIRED)[number];
export type Observed = (typeof OBSERVED)[number];

export interface InstanceConfig {
  /** Host port for each manifest port name, allocated once at creation. */
  ports: Record<string, number>;
  /** Generated secrets, by environment variable name; never returned by the API. */
  secrets: Record<string, string>;
  /** Operator-set environment overrides for variables the manifest declares overridable. */
  env: Record<string, string>;
  /** The instance's own /28 for its bridge network (orchestrator/subnets.ts). */
  subnet?: string;
  /** Its well-known ports (manifest `wellKnown`, by port name) published on the public address too, as the
   * administrator asked (orchestrator/public-ports.ts); absent: only the allocated ports above. */
  publicPorts?: { address: string; ports: Record<string, number> };
  /** The instances it is linked to, by the manifest's link names (orchestrator/links.ts). */
  links?: InstanceLink[];
  /** The variables its links filled in, as last resolved from the linked instances: when they change (the linked
   * instance got another name, say), the reconciler starts a new generation with the new values. */
  linkedEnv?: Record<string, string>;
}

/** A declared link (manifest `links`) made when the instance was created or changed. Part of the instance's
 * configuration, like its ports and subnet: set in the same transaction, changed with a new generation. */
export interface InstanceLink {
  /** The manifest's link name. */
  name: string;
  /** The linked instance: its id (an instance made later under the same slug is another one) and its slug then. */
  targetId: number;
  target: string;
  /** The link network's own /28 from the subnet pool (orchestrator/subnets.ts). */
  subnet: string;
}

export const instances = sqliteTable('instances', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  slug: text('slug').notNull(),
  service: text('service').notNull(),
  serverId: integer('server_id').notNull().references(() => servers.id, { onDelete: 'restrict' }),
  desired: text('desired', { enum: DESIRED }).notNull().default('running'),
  /** With desired = deleted: skip the archive of the volumes. */
  purge: integer('purge', { mode: 'boolean' }).notNull().default(false),
  /** The image reference this generation runs. */
  image: text('image').notNull(),
  generation: integer('generation').notNull().default(1),
  config: text('config', { mode: 'json' }).$type<InstanceConfig>().notNull(),
  observed: text('observed', { enum: OBSERVED }).notNull().default('pending'),
  containerId: text('container_id'),
  lastError: text('last_error'),
  attempts: integer('attempts').notNull().default(0),
  /** Retry backoff: the timer pass leaves this instance alone until then. */
  nextAttemptAt: text('next_attempt_at'),
  createdAt: text('created_at').notNull().default(now),
  updatedAt: text('updated_at').notNull().default(now),
}, (t) => [uniqueIndex('instances_slug_unique').on(t.slug), index('instances_server_idx').on(t.serverId)]);

export const OPERATION_STATUS = ['pending', 'running', 'done', 'failed'] as const;

/** Every change asked for and every action taken on Docker, kept after the instance is gone. */
export const operations = sqliteTable('operations', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  /** No foreign key: the journal outlives the instance it speaks of. */
  instanceSlug: text('instance_slug').notNull(),
  kind: text('kind').notNull(),
  status: text('status', { enum: OPERATION_STATUS }).notNull().default('pending'),
  actor: text('actor').notNull().default('system'),
  detail: text('detail', { mode: 'json' }).$type<Record<string, unknown>>(),
  error: text('error'),
  createdAt: text('created_at').notNull().default(now),
  finishedAt: text('finished_at'),
}, (t) => [index('operations_instance_idx').on(t.instanceSlug, t.id)]);

export type Server = typeof servers.$inferSelect;
export type Instance = typeof instances.$inferSelect;
export type Operation = typeof operations.$inferSelect;

// forwarding: a mail account whose resident moved to another hoster: no sign-in and no data any more, its address
// forwarded until the association's period is over (federation/moves-source.ts), then deleted.
export const ACCOUNT_STATES = ['pending', 'active', 'suspended', 'deleting', 'failed', 'forwarding'] as const;
export type AccountState = (typeof ACCOUNT_STATES)[number];

/** A resident's account inside one instance. The desired state lives here; the service is converged to it by the
 * account operations (accounts/), journaled in `operations` with kind `account.*`. */
/** `create` holds the first password of an account asked for while its instance was still starting, sealed
 * (accounts/sealed.ts), never shown by the API, only until the service has it. `password` in clear is how rows
 * queued before sealing were written: still read, never written. */
export interface PendingChange { suspended?: boolean; quotaMb?: number; create?: { sealed?: string; password?: string } }

export const accounts = sqliteTable('accounts', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  instanceId: integer('instance_id').notNull().references(() => instances.id, { onDelete: 'restrict' }),
  username: text('username').notNull(),
  state: text('state', { enum: ACCOUNT_STATES }).notNull().default('pending'),
  quotaMb: integer('quota_mb').notNull(),
  usageBytes: integer('usage_bytes'),
  usageItems: integer('usage_items'),
  usageAt: text('usage_at'),
  lastError: text('last_error'),
  /** Changes asked for and not yet applied by the service (instance stopped, engine away): retried on the timer. */
  pending: text('pending', { mode: 'json' }).$type<PendingChange>(),
  /** The person the account belongs to, when cattery knows them (sign-up); null for accounts an admin made by hand. */
  userId: integer('user_id'),
  createdAt: text('created_at').notNull().default(now),
  updatedAt: text('updated_at').notNull().default(now),
}, (t) => [uniqueIndex('accounts_instance_username_unique').on(t.instanceId, t.username)]);

export type Account = typeof accounts.$inferSelect;

// ── identity ─────────────────────────────────────────────────────────────────────────────────────────────────────

export const USER_STATUS = ['pending', 'active', 'disabled'] as const;
export type UserStatus = (typeof USER_STATUS)[number];

/** A person known to cattery: a resident, a mediator, an administrator… Signs in with a local password (scrypt) or
 * through the association's OpenID provider (issuer + subject), or both. */
export const users = sqliteTable('users', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  /** Also the username of the person's accounts in the services (accounts.USERNAME_PATTERN). */
  login: text('login').notNull().unique(),
  name: text('name').notNull(),
  email: text('email'),
  passwordHash: text('password_hash'),
  roles: text('roles', { mode: 'json' }).$type<string[]>().notNull(),
  status: text('status', { enum: USER_STATUS }).notNull().default('active'),
  oidcIssuer: text('oidc_issuer'),
  oidcSubject: text('oidc_subject'),
  /** Given a first password by a mediator or an admin: must choose their own at the next sign-in. */
  mustChangePassword: integer('must_change_password', { mode: 'boolean' }).notNull().default(false),
  /** Their service accounts were created with a random password: the next local sign-in gives them this one. */
  syncServicePassword: integer('sync_service_password', { mode: 'boolean' }).notNull().default(false),
  lang: text('lang').notNull().default('fr'),
  createdAt: text('created_at').notNull().default(now),
  lastLoginAt: text('last_login_at'),
}, (t) => [uniqueIndex('users_oidc_unique').on(t.oidcIssuer, t.oidcSubject)]);

/** Browser sessions. The cookie holds a random token; only its SHA-256 is stored, so a copy of the database opens
 * no session. */
export const sessions = sqliteTable('sessions', {
  id: text('id').primaryKey(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  createdAt: text('created_at').notNull().default(now),
  lastSeenAt: text('last_seen_at').notNull().default(now),
  expiresAt: text('expires_at').notNull(),
  /** Kept for RP-initiated logout (id_token_hint). */
  idToken: text('id_token'),
  via: text('via', { enum: ['password', 'oidc'] }).notNull(),
}, (t) => [index('sessions_user_idx').on(t.userId)]);

/** Tokens for scripts: `ct_<id>.<secret>`; the secret's SHA-256 is stored. Roles are fixed at creation. */
export const apiTokens = sqliteTable('api_tokens', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull(),
  hash: text('hash').notNull().unique(),
  roles: text('roles', { mode: 'json' }).$type<string[]>().notNull(),
  createdBy: text('created_by').notNull(),
  createdAt: text('created_at').notNull().default(now),
  expiresAt: text('expires_at'),
  revokedAt: text('revoked_at'),
  lastUsedAt: text('last_used_at'),
});

/** An OpenID login in flight: created when the browser leaves for the provider, consumed once on its return. */
export const loginFlows = sqliteTable('login_flows', {
  state: text('state').primaryKey(),
  verifier: text('verifier').notNull(),
  nonce: text('nonce').notNull(),
  returnTo: text('return_to').notNull(),
  createdAt: text('created_at').notNull().default(now),
});

export const SIGNUP_STATUS = ['pending', 'approved', 'rejected', 'failed'] as const;
export type SignupStatus = (typeof SIGNUP_STATUS)[number];

/** A request for accounts: by the resident alone, or by a mediator on their behalf (with the consent recorded). */
export const signups = sqliteTable('signups', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  services: text('services', { mode: 'json' }).$type<string[]>().notNull(),
  termsVersion: text('terms_version').notNull(),
  channel: text('channel', { enum: ['self', 'mediator'] }).notNull(),
  /** The mediator who signed the resident up and recorded their consent (no foreign key: the record outlives them). */
  mediatorLogin: text('mediator_login'),
  consentAt: text('consent_at').notNull(),
  status: text('status', { enum: SIGNUP_STATUS }).notNull().default('pending'),
  decidedBy: text('decided_by'),
  decidedAt: text('decided_at'),
  lastError: text('last_error'),
  createdAt: text('created_at').notNull().default(now),
}, (t) => [index('signups_status_idx').on(t.status)]);

export type User = typeof users.$inferSelect;
export type Session = typeof sessions.$inferSelect;
export type ApiToken = typeof apiTokens.$inferSelect;
export type Signup = typeof signups.$inferSelect;

// ── metering ─────────────────────────────────────────────────────────────────────────────────────────────────────

/** What a line of the energy accounts is: the server's total, its idle part, the share of processes outside
 * cattery's containers (the OS, dockerd, cattery itself), or one instance. total = idle + other + Σ instances. */
export const METER_SCOPES = ['server', 'idle', 'other', 'instance'] as const;
export type MeterScope = (typeof METER_SCOPES)[number];

const meterColumns = () => ({
  serverId: integer('server_id').notNull(),
  scope: text('scope', { enum: METER_SCOPES }).notNull(),
  /** The instance's slug; '' for the other scopes (no foreign key: the accounts outlive the instance). */
  slug: text('slug').notNull().default(''),
  service: text('service').notNull().default(''),
  seconds: real('seconds').notNull(),
  energyJ: real('energy_j').notNull(),
  /** Idle energy allocated to this instance by the association's policy: shown apart, never inside energyJ. */
  idleShareJ: real('idle_share_j').notNull().default(0),
  cpuSeconds: real('cpu_seconds').notNull().default(0),
  /** Memory working set × seconds: divided by seconds, the mean working set. */
  memByteSeconds: real('mem_byte_seconds').notNull().default(0),
  netRxBytes: integer('net_rx_bytes').notNull().default(0),
  netTxBytes: integer('net_tx_bytes').notNull().default(0),
  blkReadBytes: integer('blk_read_bytes').notNull().default(0),
  blkWriteBytes: integer('blk_write_bytes').notNull().default(0),
  method: text('method', { enum: ['measured', 'modelled'] }).notNull(),
  model: text('model').notNull(),
});

/** One metering pass's figures per line; kept briefly (48 h by default). */
export const meterSamples = sqliteTable('meter_samples', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  ts: text('ts').notNull(),
  ...meterColumns(),
}, (t) => [index('meter_samples_ts_idx').on(t.ts)]);

/** Hourly and daily totals, kept for years; bucket is 'YYYY-MM-DDTHH' or 'YYYY-MM-DD'. */
export const meterHourly = sqliteTable('meter_hourly', { bucket: text('bucket').notNull(), ...meterColumns() },
  (t) => [uniqueIndex('meter_hourly_key').on(t.bucket, t.serverId, t.scope, t.slug)]);
export const meterDaily = sqliteTable('meter_daily', { bucket: text('bucket').notNull(), ...meterColumns() },
  (t) => [uniqueIndex('meter_daily_key').on(t.bucket, t.serverId, t.scope, t.slug)]);

/** Running totals per line of the accounts, one row per line per hour: the totals from the first pass to the end of
 * that hour. Energy between two instants is then two lookups per line (the later total minus the earlier), whatever
 * the length of the period; meter_hourly and meter_daily remain the readable record. */
export const meterCumulative = sqliteTable('meter_cumulative', {
  ...meterColumns(),
  bucket: text('bucket').notNull(),
  measuredSeconds: real('measured_seconds').notNull().default(0),
}, (t) => [uniqueIndex('meter_cumulative_key').on(t.serverId, t.scope, t.slug, t.bucket)]);

/** Every line the accounts have ever had, with the first and last hour it was seen. */
export const meterLines = sqliteTable('meter_lines', {
  serverId: integer('server_id').notNull(),
  scope: text('scope', { enum: METER_SCOPES }).notNull(),
  slug: text('slug').notNull(),
  service: text('service').notNull(),
  firstBucket: text('first_bucket').notNull(),
  lastBucket: text('last_bucket').notNull(),
}, (t) => [uniqueIndex('meter_lines_key').on(t.serverId, t.scope, t.slug)]);

/** The names an instance answers to through the front door (ingress/). One name, one instance: the primary key is
 * the whole, lower-case name, so a name already in use is refused by the database as well as by the check. */
export const hostnames = sqliteTable('hostnames', {
  hostname: text('hostname').primaryKey(),
  instanceId: integer('instance_id').notNull().references(() => instances.id, { onDelete: 'cascade' }),
  createdAt: text('created_at').notNull().default(now),
}, (t) => [index('hostnames_instance_idx').on(t.instanceId)]);
export type Hostname = typeof hostnames.$inferSelect;

/** What the front door of each server serves now: the hash of the configuration Caddy accepted last, and what went
 * wrong with the latest one it was given (kept while the previous configuration goes on serving). */
export const ingressState = sqliteTable('ingress_state', {
  serverId: integer('server_id').primaryKey().references(() => servers.id, { onDelete: 'cascade' }),
  appliedHash: text('applied_hash'),
  appliedAt: text('applied_at'),
  lastError: text('last_error'),
  lastErrorAt: text('last_error_at'),
  updatedAt: text('updated_at').notNull().default(now),
});
export type IngressState = typeof ingressState.$inferSelect;
