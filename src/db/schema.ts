// The desired state of the hoster and the journal of what was done to reach it. Docker is converged to these rows.
import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, uniqueIndex, index } from 'drizzle-orm/sqlite-core';

const now = sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`;

export const servers = sqliteTable('servers', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  /** unix:///var/run/docker.sock, tcp://host:2376 … */
  dockerEndpoint: text('docker_endpoint').notNull(),
  site: text('site').notNull().default(''),
  /** The host address instances' ports are published on: 127.0.0.1 unless a proxy in front needs otherwise. */
  publishAddress: text('publish_address').notNull().default('127.0.0.1'),
  createdAt: text('created_at').notNull().default(now),
});

export const DESIRED = ['running', 'stopped', 'deleted'] as const;
export const OBSERVED = ['pending', 'creating', 'starting', 'running', 'healthy', 'unhealthy', 'stopped', 'deleting', 'failed'] as const;
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

export const ACCOUNT_STATES = ['pending', 'active', 'suspended', 'deleting', 'failed'] as const;
export type AccountState = (typeof ACCOUNT_STATES)[number];

/** A resident's account inside one instance. The desired state lives here; the service is converged to it by the
 * account operations (accounts/), journaled in `operations` with kind `account.*`. */
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
  pending: text('pending', { mode: 'json' }).$type<{ suspended?: boolean; quotaMb?: number }>(),
  createdAt: text('created_at').notNull().default(now),
  updatedAt: text('updated_at').notNull().default(now),
}, (t) => [uniqueIndex('accounts_instance_username_unique').on(t.instanceId, t.username)]);

export type Account = typeof accounts.$inferSelect;
