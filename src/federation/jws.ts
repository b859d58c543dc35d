// Signed documents between hosters: JWS compact serialization (RFC 7515) with EdDSA over Ed25519 (RFC 8037), keys
// named by their JWK thumbprint (RFC 7638), through the `jose` library. The verifier is strict on purpose: what it
// accepts is exactly one byte string per signed content, so that "any byte changed is refused" holds (a property
// tests/federation/ checks with generated changes).
import crypto from 'node:crypto';
import { CompactSign, calculateJwkThumbprint, compactVerify, importJWK, type CryptoKey } from 'jose';
import { fail } from '../errors.js';

/** A public Ed25519 key as a JWK: exactly these three members (RFC 8037 §2), never a private `d`. */
export interface PublicJwk { kty: 'OKP'; crv: 'Ed25519'; x: string }

/** The `typ` of each kind of document (RFC 7515 §4.1.9): a document of one kind is never taken for another. */
export const TYP = {
  hoster: 'cattery-hoster+jwt',
  report: 'cattery-report+jwt',
  rotation: 'cattery-rotation+jwt',
  // A resident's move (docs/migration-format.md): the source's manifest, the destination's requests and receipt.
  moveManifest: 'cattery-move-manifest+jwt',
  moveRequest: 'cattery-move-request+jwt',
  moveReceipt: 'cattery-move-receipt+jwt',
  // A node's `cattery agent` (agent/): its enrolment (signed by the new key itself, with the one-time token) and its
  // metering samples (signed by the key pinned at enrolment).
  agentEnrolment: 'cattery-agent-enrolment+jwt',
  agentSample: 'cattery-agent-sample+jwt',
} as const;
export type DocKind = keyof typeof TYP;

/** A whole document is small: the hoster document is a few kilobytes, a month's report tens. */
export const MAX_JWS_BYTES = 512 * 1024;

const B64URL = /^[A-Za-z0-9_-]*$/;

export function isPublicJwk(v: unknown): v is PublicJwk {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  // 32 bytes of key: 43 base64url characters, canonical (RFC 8037 §2: x is the public key, no padding).
  return keys === 'crv,kty,x' && o.kty === 'OKP' && o.crv === 'Ed25519' && typeof o.x === 'string' && /^[A-Za-z0-9_-]{43}$/.test(o.x)
    && Buffer.from(o.x, 'base64url').toString('base64url') === o.x;
}

/** RFC 7638 thumbprint (SHA-256, base64url): the key's name (`kid`). */
export const thumbprint = (jwk: PublicJwk): Promise<string> => calculateJwkThumbprint(jwk, 'sha256');

/** The thumbprint as a person reads it aloud over the phone: its 32 bytes in upper-case hex, 16 groups of 4. It is
 * already a SHA-256 of the key (RFC 7638 §3), so it is shown as it is rather than hashed again. */
export function fingerprintOf(kid: string): string {
  return Buffer.from(kid, 'base64url').toString('hex').toUpperCase().match(/.{4}/g)!.join(' ');
}

/** What an administrator typed or confirmed, back to the form fingerprintOf writes (spaces, case and colons aside). */
export const normalizeFingerprint = (s: string) => s.replace(/[\s:]/g, '').toUpperCase().match(/.{1,4}/g)?.join(' ') ?? '';

export interface Signer { kid: string; jwk: PublicJwk; key: CryptoKey | crypto.KeyObject }

/** Sign a JSON payload: protected header alg EdDSA, the kind's typ, the key's thumbprint as kid and the public key
 * itself as jwk (so that a first contact can show its fingerprint; trust comes from pinning, never from it). */
export async function signDocument(signer: Signer, kind: DocKind, payload: unknown): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'EdDSA', typ: TYP[kind], kid: signer.kid, jwk: signer.jwk })
    .sign(signer.key);
}

export interface Verified { payload: unknown; jwk: PublicJwk; kid: string }

const refuse = (why: string): never => { throw fail('CATTERY_ERR_PEER_REFUSED', why); };

/** Check a compact JWS of one kind. With `key`, only that key may have signed it (a pinned peer); without, the key
 * it names is used and returned (first contact: the caller shows its fingerprint and pins nothing yet). Refused:
 * anything but three canonical base64url parts (a base64url text whose unused low bits differ decodes to the same
 * bytes, so a lax decoder would accept a changed signature), another alg or typ, a `crit` or unencoded payload
 * (RFC 7797), a kid that is not the thumbprint of the jwk beside it, a bad signature, a payload that is not JSON. */
export async function verifyDocument(jws: string, kind: DocKind, key?: PublicJwk): Promise<Verified> {
  if (typeof jws !== 'string' || Buffer.byteLength(jws) > MAX_JWS_BYTES) refuse('not a document of a reasonable size');
  const parts = jws.split('.');
  if (parts.length !== 3) refuse('not a compact JWS (three parts)');
  for (const p of parts) {
    if (!p || !B64URL.test(p) || Buffer.from(p, 'base64url').toString('base64url') !== p) refuse('a part is not canonical base64url');
  }
  let header: Record<string, unknown>;
  try { header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as Record<string, unknown>; } catch { return refuse('the header is not JSON'); }
  if (!header || typeof header !== 'object' || Array.isArray(header)) refuse('the header is not an object');
  const allowed = new Set(['alg', 'typ', 'kid', 'jwk']);
  if (Object.keys(header).some((k) => !allowed.has(k))) refuse('the header has members this format does not use');
  if (header.alg !== 'EdDSA') refuse('the algorithm is not EdDSA');
  if (header.typ !== TYP[kind]) refuse(`the type is not ${TYP[kind]}`);
  if (!isPublicJwk(header.jwk)) refuse('the header has no Ed25519 public key');
  const named = header.jwk as PublicJwk;
  const kid = await thumbprint(named);
  if (header.kid !== kid) refuse('the kid is not the thumbprint of the key');
  if (key) {
    if (!isPublicJwk(key)) refuse('the pinned key is not an Ed25519 key');
    if ((await thumbprint(key)) !== kid) refuse('signed by another key than the pinned one');
  }
  let payloadBytes: Uint8Array;
  try {
    const r = await compactVerify(jws, await importJWK(key ?? named, 'EdDSA'), { algorithms: ['EdDSA'] });
    payloadBytes = r.payload;
  } catch { return refuse('the signature does not verify'); }
  let payload: unknown;
  try { payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payloadBytes)); } catch { return refuse('the payload is not JSON'); }
  return { payload, jwk: key ?? named, kid };
}

/** The header's key and kid, read without verifying anything: only to say which key a refused document named. */
export function namedKid(jws: string): string | undefined {
  try {
    const h = JSON.parse(Buffer.from(jws.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid?: unknown };
    return typeof h.kid === 'string' && /^[A-Za-z0-9_-]{43}$/.test(h.kid) ? h.kid : undefined;
  } catch { return undefined; }
}
