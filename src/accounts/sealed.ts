// A first password asked for while its instance is still starting waits in the database until the upkeep timer can
// give it to the service (accounts.ts). It waits sealed: AES-256-GCM under a key derived from cattery's secret
// (data/secret.key, 0600, never in the database), so the database file, its WAL or a copy of them taken meanwhile
// does not hold a resident's password in clear. It is dropped once the service has it.
import crypto from 'node:crypto';

/** HKDF (RFC 5869) from cattery's secret, for this use only: the cookie key is not reused as it is. */
export const sealKeyFrom = (secret: string): Buffer =>
  Buffer.from(crypto.hkdfSync('sha256', secret, 'cattery', 'queued account passwords', 32));

/** base64url(nonce 12 | tag 16 | ciphertext). */
export function seal(key: Buffer, text: string): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(text, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
}

/** The text, or null when it was sealed under another key (a secret changed) or altered. */
export function unseal(key: Buffer, sealed: string): string | null {
  try {
    const raw = Buffer.from(sealed, 'base64url');
    const d = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
  } catch { return null; }
}
