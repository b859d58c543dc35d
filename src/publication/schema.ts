// The register of requests from authorities (publication/register.ts): what an administrator records when a court,
// the police, an administration or a rights holder asks the association for residents' data or for a takedown. The
// public sees counts per year and kind only; the note stays inside. A separate schema file of the same database
// (drizzle.config.ts lists it).
import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, index } from 'drizzle-orm/sqlite-core';

const now = sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`;

/** The kinds of request (French law's words in the page texts: réquisition judiciaire, demande administrative,
 * notification de contenu illicite (LCEN art. 6), autre). */
export const REQUEST_TYPES = ['judicial', 'administrative', 'takedown', 'other'] as const;
export type RequestType = (typeof REQUEST_TYPES)[number];
/** Who asked, as a kind (never a name: a service or a court named next to a date could point at a person). */
export const AUTHORITY_KINDS = ['court', 'police', 'administration', 'rights-holder', 'foreign', 'other'] as const;
export type AuthorityKind = (typeof AUTHORITY_KINDS)[number];
/** What the association answered. */
export const ANSWERS = ['handed-over', 'refused', 'partial', 'nothing-held'] as const;
export type Answer = (typeof ANSWERS)[number];

export const authorityRequests = sqliteTable('authority_requests', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  /** The day the request was received (YYYY-MM-DD): only its year is ever published. */
  receivedOn: text('received_on').notNull(),
  type: text('type', { enum: REQUEST_TYPES }).notNull(),
  authority: text('authority', { enum: AUTHORITY_KINDS }).notNull(),
  answer: text('answer', { enum: ANSWERS }).notNull(),
  /** For the administrators only (a reference, what was handed over): never on a public page nor in a public file. */
  note: text('note').notNull().default(''),
  recordedBy: text('recorded_by').notNull(),
  createdAt: text('created_at').notNull().default(now),
}, (t) => [index('authority_requests_received').on(t.receivedOn)]);

export type AuthorityRequest = typeof authorityRequests.$inferSelect;
