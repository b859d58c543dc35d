// The hoster document: what this cattery says about itself to peers at /.well-known/cattery, signed (jws.ts). Built
// from the configuration (the same CATTERY_ORG_* the ChatonsInfos files use), the catalog with each service's
// registration mode and load (publication/chatonsinfos.ts's serviceOffer, one reading for both), and the energy per
// open account of the last complete month after statistical secrecy (publication/figures.ts). Its format is in
// docs/federation.md; the schema below is what a peer's document must match to be accepted.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import { serviceOffer } from '../publication/chatonsinfos.js';
import { monthFigures, previousMonth, published, rulesOf } from '../publication/figures.js';
import type { KeyStore } from './keys.js';

export const DOCUMENT_PATH = '/.well-known/cattery';
export const REPORTS_PATH = `${DOCUMENT_PATH}/reports`;
export const FORMAT_VERSION = 1;

const Text = (max: number) => Type.String({ maxLength: max });
const Origin = Type.String({ pattern: '^https://[^/?#@\\s]{1,300}$' });

export const DocService = Type.Object({
  /** The catalog id: how services are matched between hosters. */
  id: Type.String({ pattern: '^[a-z][a-z0-9-]{0,30}$' }),
  name: Type.Object({ fr: Text(200), en: Text(200) }),
  /** ChatonsInfos service.registration. */
  registration: Type.Union([Type.Literal('None'), Type.Literal('Free'), Type.Literal('Member'), Type.Literal('Client')]),
  /** ChatonsInfos service.registration.load. */
  load: Type.Union([Type.Literal('OPEN'), Type.Literal('FULL')]),
});

export const HosterDocumentSchema = Type.Object({
  v: Type.Literal(FORMAT_VERSION),
  /** The hoster's origin: where the document was fetched from must be this. */
  iss: Origin,
  /** Seconds since the epoch (a JWT's iat, RFC 7519 §4.1.6). */
  iat: Type.Integer({ minimum: 0 }),
  name: Text(200),
  url: Origin,
  contact: Type.Object({ email: Text(320), url: Text(500) }),
  chatons: Type.Object({
    member: Type.Boolean(), since: Type.String({ pattern: '^(\\d{4}-\\d{2}-\\d{2})?$' }), type: Text(40), status: Text(40),
  }),
  services: Type.Array(DocService, { maxItems: 200 }),
  energy: Type.Object({
    /** The last complete month, YYYY-MM. */
    month: Type.String({ pattern: '^\\d{4}-(0[1-9]|1[0-2])$' }),
    /** The services' energy over the month (Wh) divided by the accounts open at its end; null when secret or none. */
    whPerActiveAccount: Type.Union([Type.Number({ minimum: 0 }), Type.Null()]),
  }),
  /** This hoster's key rotations, oldest first, each a JWS signed by the key it replaces (keys.ts). */
  rotations: Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 }),
});
export type HosterDocument = Static<typeof HosterDocumentSchema>;
export type DocumentService = Static<typeof DocService>;

export interface DocumentDeps {
  db: Db; catalog: Catalog; config: Config; keys: KeyStore;
  /** The last energy figure read (a month's figures are the one costly part of the document), kept ten minutes;
   * the services' registration and load are read at every request, so a decision or a full instance shows at once. */
  energyMemo?: { at: number; energy: HosterDocument['energy'] };
}

const ENERGY_MEMO_MS = 600_000;

/** Energy per account open at the end of the last complete month, both figures as the open data publishes them
 * (a secret cell gives null, never a guess). */
export function energyPerAccount(d: Omit<DocumentDeps, 'keys'>, now = new Date()): HosterDocument['energy'] {
  const month = previousMonth(now);
  const f = monthFigures(d.db, d.catalog, month, rulesOf(d.config.publication.minGroup), now);
  const accounts = published(f.accounts, f.accounts.rows.length, 0);
  const kwh = published(f.energy, f.energy.rows.length, 0);
  return { month, whPerActiveAccount: accounts && kwh !== null ? Math.round((kwh * 1000 * 1000) / accounts) / 1000 : null };
}

/** Every catalog service a resident can have an account in, with how a newcomer would meet it here. */
export function offeredToResidents(d: Omit<DocumentDeps, 'keys'>): DocumentService[] {
  return [...d.catalog.services.values()].map((s) => s.manifest).filter((m) => m.accounts)
    .map((m) => ({ id: m.id, name: { fr: m.name.fr, en: m.name.en }, ...serviceOffer(d, m.id) }));
}

function memoEnergy(d: DocumentDeps, now: Date): HosterDocument['energy'] {
  const m = d.energyMemo;
  if (m && now.getTime() - m.at < ENERGY_MEMO_MS && m.energy.month === previousMonth(now)) return m.energy;
  const energy = energyPerAccount(d, now);
  d.energyMemo = { at: now.getTime(), energy };
  return energy;
}

export function hosterDocument(d: DocumentDeps, rotations: string[], now = new Date()): HosterDocument {
  const o = d.config.publication.organization;
  return {
    v: FORMAT_VERSION, iss: d.config.publicUrl, iat: Math.floor(now.getTime() / 1000),
    name: o.name || d.config.hosterId, url: d.config.publicUrl,
    contact: { email: o.contactEmail, url: o.contactUrl },
    chatons: { member: o.chatonsSince !== '', since: o.chatonsSince, type: o.type, status: o.status },
    services: offeredToResidents(d),
    energy: memoEnergy(d, now),
    rotations,
  };
}

/** Our document, signed now. */
export async function signedHosterDocument(d: DocumentDeps, now = new Date()): Promise<string> {
  const id = await d.keys.current();
  return d.keys.sign('hoster', hosterDocument(d, id.rotations, now));
}

/** A verified payload checked against the format, and against the origin it was fetched from. */
export function checkDocument(payload: unknown, origin: string): HosterDocument {
  if (!Value.Check(HosterDocumentSchema, payload)) {
    const first = [...Value.Errors(HosterDocumentSchema, payload)][0];
    throw fail('CATTERY_ERR_PEER_REFUSED', `the document does not follow the format (${first ? `${first.path || '/'}: ${first.message}` : 'invalid'})`);
  }
  if (payload.iss !== origin) throw fail('CATTERY_ERR_PEER_REFUSED', `the document is ${payload.iss}'s, not ${origin}'s`);
  return payload;
}
