// The pieces of a move both sides agree on (docs/migration-format.md): the transfer code and its hashes, the
// destination's signed requests, and the manifest's and receipt's payloads. Pure, apart from the clock and randomness.
import crypto from 'node:crypto';
import { QUOTA_MAX_MB } from '../accounts/accounts.js';
import { fail } from '../errors.js';
import { isReservedLogin } from '../identity/users.js';
import { verifyDocument, type PublicJwk, type Signer } from './jws.js';
import { signDocument } from './jws.js';
import type { MovePart } from './schema.js';

export const MOVE_FORMAT_VERSION = 1;
/** How long a code opens its move: two days to go from one hoster's page to the other's. */
export const CODE_TTL_MS = 48 * 3600_000;
/** A request is accepted this long either side of its `iat` (hosters' clocks are NTP-synchronised); its jti is kept
 * as long, so a replay inside the window is refused and one after it is refused by its age. */
export const REQUEST_WINDOW_S = 60;
/** The header a destination's signed request travels in (not Authorization: that one carries API tokens here). */
export const REQUEST_HEADER = 'cattery-move-request';

const refuse = (why: string): never => { throw fail('CATTERY_ERR_MOVE_REFUSED', why); };

// Crockford's base32: no I, L, O, U, so a code read aloud or copied by hand is not misread.
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** 160 random bits as 32 base32 characters in groups of four (the issue asks for at least 128). */
export function newTransferCode(): string {
  const bytes = crypto.randomBytes(20);
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let out = '';
  for (let i = 31; i >= 0; i--) out += CROCKFORD[Number((bits >> BigInt(i * 5)) & 31n)];
  return out.match(/.{4}/g)!.join('-');
}

/** What a person typed, back to the code's 32 characters: case, spaces and dashes aside, and Crockford's own
 * readings of the letters it leaves out (O is 0, I and L are 1). Undefined when it cannot be a code. */
export function normalizeCode(typed: string): string | undefined {
  const s = typed.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  return /^[0-9A-HJKMNP-TV-Z]{32}$/.test(s) ? s.match(/.{4}/g)!.join('-') : undefined;
}

/** The code's hash as requests carry it: the code itself never travels after the person typed it. */
export const codeTokenHash = (code: string) => crypto.createHash('sha256').update(code).digest('base64url');
/** What the source stores: a hash of that hash, so a copy of its database gives no usable `cth`. */
export const storedCodeHash = (cth: string) => crypto.createHash('sha256').update(cth).digest('hex');

export interface MoveRequest { iss: string; aud: string; cth: string; iat: number; jti: string }

export async function signMoveRequest(signer: Signer, r: { iss: string; aud: string; cth: string }, now = Date.now()): Promise<string> {
  const payload: MoveRequest = { ...r, iat: Math.floor(now / 1000), jti: crypto.randomBytes(16).toString('base64url') };
  return signDocument(signer, 'moveRequest', payload);
}

/** The origin a request says it comes from, read before anything is verified: only to find which pinned key must
 * have signed it. */
export function claimedIssuer(jws: string): string {
  try {
    const p = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown };
    if (typeof p.iss === 'string' && p.iss.length <= 300) return p.iss;
  } catch { /* refused below */ }
  return refuse('the request is not a signed move request');
}

/** A request checked against the key pinned for its issuer: signature, audience, time window, shape. The jti's
 * freshness is the caller's (it needs the database). */
export async function checkMoveRequest(jws: string, pinned: PublicJwk, iss: string, ownUrl: string, now = Date.now()): Promise<MoveRequest> {
  const v = await verifyDocument(jws, 'moveRequest', pinned).catch((err: Error) => refuse(`the request's signature: ${err.message}`));
  const p = v.payload as Partial<MoveRequest>;
  if (p.iss !== iss) refuse('the request names another issuer');
  if (p.aud !== ownUrl) refuse('the request is meant for another hoster');
  if (typeof p.cth !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(p.cth)) refuse('the request carries no code');
  if (typeof p.jti !== 'string' || !/^[A-Za-z0-9_-]{22,64}$/.test(p.jti)) refuse('the request has no usable jti');
  if (typeof p.iat !== 'number' || !Number.isInteger(p.iat) || Math.abs(Math.floor(now / 1000) - p.iat) > REQUEST_WINDOW_S) refuse('the request is too old or from the future');
  return p as MoveRequest;
}

export interface Manifest {
  v: number; iss: string; aud: string; iat: number; exp: number; move: string;
  resident: { name: string };
  parts: Omit<MovePart, 'slug'>[];
}

/** The latest a source's code can open its move, whatever the manifest's `exp` says: a code lives CODE_TTL_MS from
 * when its manifest was signed (and a request's clock may be REQUEST_WINDOW_S off). What the destination sweeps by. */
export const manifestDeadline = (m: Pick<Manifest, 'iat' | 'exp'>): number => Math.min(m.exp, m.iat + CODE_TTL_MS / 1000 + REQUEST_WINDOW_S);

/** A manifest's payload, checked for its shape and for being ours to take, every field bounded: a pinned peer signs
 * it, but what it asks of us (how long we keep its downloads, which names and quotas we give) is ours to decide.
 * Sizes and hashes are the source's word, checked again on every part. */
export function checkManifest(payload: unknown, source: string, ownUrl: string, now = Date.now()): Manifest {
  const m = payload as Partial<Manifest>;
  if (!m || typeof m !== 'object') refuse('the manifest is not an object');
  if (m.v !== MOVE_FORMAT_VERSION) refuse(`manifest version ${String(m.v)} is not one this hoster reads`);
  if (m.iss !== source) refuse('the manifest was not issued by the source');
  if (m.aud !== ownUrl) refuse('the manifest is meant for another hoster');
  if (typeof m.move !== 'string' || !/^[A-Za-z0-9_-]{22}$/.test(m.move)) refuse('the manifest has no move id');
  // A code opens its move CODE_TTL_MS from its signature: an `exp` beyond would keep our downloads past any use.
  const nowS = Math.floor(now / 1000);
  if (!Number.isSafeInteger(m.iat) || !Number.isSafeInteger(m.exp) || m.iat! > nowS + REQUEST_WINDOW_S) refuse('the manifest\'s dates are malformed or in the future');
  if (m.exp! <= m.iat! || m.exp! > m.iat! + CODE_TTL_MS / 1000 + REQUEST_WINDOW_S) refuse(`the manifest's code would live longer than ${CODE_TTL_MS / 3600_000} hours`);
  if (m.exp! * 1000 <= now) refuse('this code has expired');
  if (m.resident !== undefined && (typeof m.resident !== 'object' || m.resident === null || (m.resident.name !== undefined && typeof m.resident.name !== 'string'))) refuse('the manifest\'s resident is malformed');
  if (!Array.isArray(m.parts) || m.parts.length === 0 || m.parts.length > 64) refuse('the manifest lists no parts, or too many');
  const seen = new Set<string>();
  m.parts!.forEach((p, i) => {
    if (!p || typeof p !== 'object' || p.index !== i || typeof p.service !== 'string' || !/^[a-z][a-z0-9-]{0,39}$/.test(p.service)
      || typeof p.username !== 'string' || !/^[a-z][a-z0-9._-]{0,30}[a-z0-9]$/.test(p.username) || p.username.includes('..')
      || !Number.isSafeInteger(p.bytes) || p.bytes < 0 || !Number.isSafeInteger(p.quotaMb) || p.quotaMb < 1 || p.quotaMb > QUOTA_MAX_MB
      || typeof p.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(p.sha256)) refuse(`part ${i} of the manifest is malformed`);
    // Role addresses (RFC 2142's postmaster@, abuse@, the CA/B Forum's admin@…) are no newcomer's, moved or not.
    if (isReservedLogin(p.username)) refuse(`part ${i} names ${p.username}, an address this hoster keeps for its own roles`);
    // Two parts into one account would import one over the other.
    if (seen.has(`${p.service}/${p.username}`)) refuse(`part ${i} names an account another part names`);
    seen.add(`${p.service}/${p.username}`);
  });
  return { v: m.v!, iss: m.iss!, aud: m.aud!, iat: m.iat!, exp: m.exp!, move: m.move!,
    resident: { name: String(m.resident?.name ?? '').slice(0, 200) }, parts: m.parts! };
}

/** `address`: the account's address at the destination, for a service whose accounts have one (the catalog's
 * `address`: mail): the source forwards the old address there for the association's period. Signed with the rest. */
export interface ReceiptPart { index: number; service: string; username: string; sha256: string; address?: string }
export interface Receipt { v: number; iss: string; aud: string; move: string; iat: number; parts: ReceiptPart[] }
