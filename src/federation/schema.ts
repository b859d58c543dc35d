// Federation in its own tables: the peers an administrator added (their pinned key and last accepted document), what
// went wrong with them (alarms), and their signed monthly reports. A separate schema file of the same database
// (drizzle.config.ts lists it). Our own key is not here: it is a 0600 file (keys.ts), never in the database.
import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, index, primaryKey } from 'drizzle-orm/sqlite-core';
import type { PublicJwk } from './jws.js';
import type { HosterDocument } from './document.js';

const now = sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`;

/** pending: fetched, its fingerprint not confirmed yet (trusted for nothing); active: pinned; suspended: pinned but
 * refused everywhere (not fetched, not listed, not pointed to) until resumed. */
export const PEER_STATES = ['pending', 'active', 'suspended'] as const;
export type PeerState = (typeof PEER_STATES)[number];

export const fedPeers = sqliteTable('fed_peers', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  /** The peer's origin (https://host[:port]), as its document's `iss` must say. */
  url: text('url').notNull().unique(),
  name: text('name').notNull().default(''),
  state: text('state', { enum: PEER_STATES }).notNull().default('pending'),
  /** The key the administrator confirmed (its RFC 7638 thumbprint and the JWK); null while pending. */
  pinnedKid: text('pinned_kid'),
  pinnedJwk: text('pinned_jwk', { mode: 'json' }).$type<PublicJwk>(),
  /** Older keys of the peer its rotation chain passed through to the pinned one, newest first: its reports of
   * months before a rotation are still checked against them. */
  previousKeys: text('previous_keys', { mode: 'json' }).$type<PublicJwk[]>(),
  /** The key of the document fetched when the peer was added: what the fingerprint shown is of. */
  seenKid: text('seen_kid').notNull(),
  seenJwk: text('seen_jwk', { mode: 'json' }).$type<PublicJwk>().notNull(),
  /** The last document accepted (signed by the pinned key, or the seen one while pending), payload and JWS. */
  document: text('document', { mode: 'json' }).$type<HosterDocument>().notNull(),
  documentJws: text('document_jws').notNull(),
  fetchedAt: text('fetched_at').notNull(),
  /** Why the last refresh failed (unreachable, refused), empty after a good one. */
  lastError: text('last_error').notNull().default(''),
  createdAt: text('created_at').notNull().default(now),
});

export const ALARM_KINDS = ['key-changed', 'document-refused', 'report-refused', 'key-rotated'] as const;
export type AlarmKind = (typeof ALARM_KINDS)[number];

/** What a refresh refused (or a rotation it followed, for the record). Open until a later good document clears it. */
export const fedAlarms = sqliteTable('fed_alarms', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  peerId: integer('peer_id').notNull().references(() => fedPeers.id, { onDelete: 'cascade' }),
  kind: text('kind', { enum: ALARM_KINDS }).notNull(),
  detail: text('detail').notNull(),
  createdAt: text('created_at').notNull().default(now),
  clearedAt: text('cleared_at'),
}, (t) => [index('fed_alarms_peer').on(t.peerId, t.clearedAt)]);

/** A peer's monthly report as fetched: the JWS itself, checked again each time it is shown. */
export const fedReports = sqliteTable('fed_reports', {
  peerId: integer('peer_id').notNull().references(() => fedPeers.id, { onDelete: 'cascade' }),
  month: text('month').notNull(),
  jws: text('jws').notNull(),
  fetchedAt: text('fetched_at').notNull(),
}, (t) => [primaryKey({ columns: [t.peerId, t.month] })]);

export type FedPeer = typeof fedPeers.$inferSelect;
export type FedAlarm = typeof fedAlarms.$inferSelect;

// ---- resident moves (docs/migration-format.md) -------------------------------------------------------------------

/** One account of a move: what the source staged and what the manifest states of it. */
export interface MovePart { index: number; service: string; slug: string; username: string; quotaMb: number; bytes: number; sha256: string }

/** open: staged, code shown, waiting for the destination; transferring: a request with the code came (the code is
 * now the destination's); received: the destination's receipt is in (the code opens nothing any more); done: the
 * resident confirmed and the accounts were deleted here; cancelled/expired: nothing was deleted. */
export const MOVE_OUT_STATES = ['open', 'transferring', 'received', 'done', 'cancelled'] as const;

/** A move of one of our residents to a peer (we are the source). */
export const fedMovesOut = sqliteTable('fed_moves_out', {
  /** The move's public id (128 random bits, base64url): the manifest's and the receipt's `move`. */
  id: text('id').primaryKey(),
  userId: integer('user_id').notNull(),
  /** The peer the code is bound to (not a foreign key: a removed peer must not take the record of a move with it). */
  peerId: integer('peer_id').notNull(),
  peerUrl: text('peer_url').notNull(),
  /** SHA-256 of the code's hash as requests carry it (`cth`): a copy of the database does not give a usable `cth`. */
  codeHash: text('code_hash').notNull().unique(),
  expiresAt: text('expires_at').notNull(),
  state: text('state', { enum: MOVE_OUT_STATES }).notNull().default('open'),
  /** Who started it: `user:<login>`, or a mediator's actor with the resident's consent as they recorded it. */
  startedBy: text('started_by').notNull(),
  consent: text('consent').notNull().default(''),
  parts: text('parts', { mode: 'json' }).$type<MovePart[]>().notNull(),
  manifestJws: text('manifest_jws').notNull(),
  receiptJws: text('receipt_jws'),
  createdAt: text('created_at').notNull().default(now),
  updatedAt: text('updated_at').notNull().default(now),
});

/** The `jti` of every move request accepted, until its time window is over: a replayed request is refused. */
export const fedMoveJtis = sqliteTable('fed_move_jtis', {
  jti: text('jti').primaryKey(),
  expiresAt: text('expires_at').notNull(),
}, (t) => [index('fed_move_jtis_expires').on(t.expiresAt)]);

/** pulling: manifest checked, parts downloading (resumable); imported: accounts created and filled here; done: the
 * receipt was accepted by the source; failed: a part's checksum or the import failed (see lastError). */
export const MOVE_IN_STATES = ['pulling', 'imported', 'done', 'failed'] as const;

/** A resident arriving from a peer (we are the destination). */
export const fedMovesIn = sqliteTable('fed_moves_in', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  peerId: integer('peer_id').notNull(),
  sourceUrl: text('source_url').notNull(),
  /** The source's move id, from its manifest. */
  moveId: text('move_id').notNull(),
  /** base64url(SHA-256(code)): what our signed requests carry. Worth nothing without our key. */
  cth: text('cth').notNull().unique(),
  state: text('state', { enum: MOVE_IN_STATES }).notNull().default('pulling'),
  manifestJws: text('manifest_jws').notNull(),
  parts: text('parts', { mode: 'json' }).$type<MovePart[]>().notNull(),
  lastError: text('last_error').notNull().default(''),
  createdAt: text('created_at').notNull().default(now),
  updatedAt: text('updated_at').notNull().default(now),
}, (t) => [index('fed_moves_in_source').on(t.sourceUrl, t.moveId)]);

export type FedMoveOut = typeof fedMovesOut.$inferSelect;
export type FedMoveIn = typeof fedMovesIn.$inferSelect;
