// The nodes' agents in their own tables (a separate schema file of the same database, listed in drizzle.config.ts):
// the key pinned for each server at enrolment, with the last sample accepted from it, and the one-time enrolment
// tokens an administrator issues. A token is kept as its SHA-256 only: the database never holds one that works.
import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer } from 'drizzle-orm/sqlite-core';
import { servers } from '../db/schema.js';
import type { PublicJwk } from '../federation/jws.js';

const now = sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`;

/** One row per server whose agent is enrolled: samples for that server are accepted only when signed by this key. */
export const agentNodes = sqliteTable('agent_nodes', {
  serverId: integer('server_id').primaryKey().references(() => servers.id, { onDelete: 'cascade' }),
  /** RFC 7638 thumbprint of the pinned key, and the key. */
  kid: text('kid').notNull(),
  jwk: text('jwk', { mode: 'json' }).$type<PublicJwk>().notNull(),
  enrolledAt: text('enrolled_at').notNull().default(now),
  /** The highest sequence number accepted: a sample at or below it is a replay. */
  lastSeq: integer('last_seq').notNull().default(0),
  lastSampleAt: text('last_sample_at'),
});
export type AgentNode = typeof agentNodes.$inferSelect;

/** At most one open enrolment per server: issuing a new token replaces the old one; enrolling deletes it. */
export const agentEnrolments = sqliteTable('agent_enrolments', {
  serverId: integer('server_id').primaryKey().references(() => servers.id, { onDelete: 'cascade' }),
  tokenSha256: text('token_sha256').notNull().unique(),
  expiresAt: text('expires_at').notNull(),
  createdAt: text('created_at').notNull().default(now),
});
