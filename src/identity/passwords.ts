// Local passwords, for an association without an identity provider: scrypt from node:crypto (RFC 7914), with the
// parameters in the stored string so that they can be raised later without locking anyone out.
import crypto from 'node:crypto';
import { promisify } from 'node:util';

const scrypt = promisify(crypto.scrypt) as (pw: string, salt: Buffer, len: number, opts: crypto.ScryptOptions) => Promise<Buffer>;

// N=2^15, r=8, p=1: OWASP's Password Storage Cheat Sheet minimum for scrypt (about 50 ms and 32 MiB here).
const N = 32768, R = 8, P = 1, LEN = 32;
const MAXMEM = 64 * 1024 * 1024;

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const key = await scrypt(password.normalize('NFC'), salt, LEN, { N, r: R, p: P, maxmem: MAXMEM });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  // Without a hash (an OpenID-only person) the same work is done, so timing does not tell who has a password.
  const parts = (stored ?? `scrypt$${N}$${R}$${P}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(LEN).toString('base64')}`).split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await scrypt(password.normalize('NFC'), Buffer.from(parts[4]!, 'base64'), expected.length, { N: n, r, p, maxmem: MAXMEM });
  return stored !== null && crypto.timingSafeEqual(key, expected);
}

// No 0/O, 1/l/I: the first password is read off paper by someone who may not be used to keyboards.
const ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';

/** A first password to print on the sheet: 3 groups of 4, about 60 bits, easy to type on a phone. */
export function firstPassword(): string {
  const groups: string[] = [];
  for (let g = 0; g < 3; g++) {
    let s = '';
    for (let i = 0; i < 4; i++) s += ALPHABET[crypto.randomInt(ALPHABET.length)];
    groups.push(s);
  }
  return groups.join('-');
}

export const randomToken = (bytes = 32): string => crypto.randomBytes(bytes).toString('base64url');
export const sha256 = (s: string): string => crypto.createHash('sha256').update(s).digest('hex');
