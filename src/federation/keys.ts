// This hoster's Ed25519 identity: made at first start, kept in <data>/federation/identity.json (0600, folder 0700)
// like the cookie key (identity/secret.ts), and rotatable: a new key, and a statement of it signed by the old one,
// kept so that peers who pinned the old key can follow the chain (docs/federation.md). `cattery serve` reads the file
// again when it changes, so a rotation by `cattery federation rotate-key` beside it is picked up without a restart.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { fail } from '../errors.js';
import { isPublicJwk, signDocument, thumbprint, verifyDocument, type DocKind, type PublicJwk, type Signer } from './jws.js';

interface IdentityFile {
  v: 1;
  /** PKCS #8 PEM of the current private key. */
  privateKey: string;
  publicJwk: PublicJwk;
  kid: string;
  createdAt: string;
  /** Every rotation statement, oldest first: each signed by the key it replaces. */
  rotations: string[];
}

export interface RotationStatement { iss: string; iat: number; old: string; new: PublicJwk; newKid: string }

export interface Identity extends Signer { createdAt: string; rotations: string[] }

export interface KeyStore {
  /** The current key (made on the first call if there is none). */
  current(): Promise<Identity>;
  sign(kind: DocKind, payload: unknown): Promise<string>;
}

export const identityFile = (dataDir: string) => path.join(dataDir, 'federation', 'identity.json');

async function newKeyPair(): Promise<{ privateKey: string; publicJwk: PublicJwk; kid: string }> {
  const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const { kty, crv, x } = await exportJWK(pair.publicKey);
  const publicJwk = { kty, crv, x } as PublicJwk;
  if (!isPublicJwk(publicJwk)) throw fail('CATTERY_ERR_CONFIG', 'the new federation key is not an Ed25519 key');
  return { privateKey: await exportPKCS8(pair.privateKey), publicJwk, kid: await thumbprint(publicJwk) };
}

/** Write the file whole or not at all: a new file (0600) beside it, then a rename over it. */
function writeIdentity(file: string, id: IdentityFile): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.dirname(file), 0o700);
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, `${JSON.stringify(id, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, file);
}

function readIdentity(file: string): IdentityFile | undefined {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const id = JSON.parse(text) as IdentityFile;
  if (id.v !== 1 || !isPublicJwk(id.publicJwk) || typeof id.privateKey !== 'string' || !Array.isArray(id.rotations)) {
    throw fail('CATTERY_ERR_CONFIG', `${file} is not a cattery federation identity`);
  }
  return id;
}

/** The identity of the data folder, made now if there is none (first start). */
export async function ensureIdentity(dataDir: string): Promise<void> {
  await ensureIdentityFile(identityFile(dataDir));
}

/** A key file at this path (0600, its folder 0700), made now if there is none: the hoster's, or a node's own key for
 * `cattery agent` (agent/agent.ts). */
export async function ensureIdentityFile(file: string): Promise<void> {
  if (readIdentity(file)) return;
  const k = await newKeyPair();
  const id: IdentityFile = { v: 1, ...k, createdAt: new Date().toISOString(), rotations: [] };
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.dirname(file), 0o700);
  // Written whole beside it, then linked to the final name: a reader never sees half a file, and link() fails when
  // the name exists, so two processes starting at once keep the first one's key.
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, `${JSON.stringify(id, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try { fs.linkSync(tmp, file); } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally { fs.rmSync(tmp, { force: true }); }
}

export function createKeyStore(dataDir: string): KeyStore {
  return createKeyStoreAt(identityFile(dataDir));
}

/** The key store of one key file (ensureIdentityFile). */
export function createKeyStoreAt(file: string): KeyStore {
  let cached: { mtimeMs: number; ino: number; size: number; id: Identity } | undefined;
  const stat = () => { try { return fs.statSync(file); } catch (err) { if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; throw err; } };
  const current = async (): Promise<Identity> => {
    let st = stat();
    if (!st) { await ensureIdentityFile(file); st = stat()!; }
    if (cached && cached.mtimeMs === st.mtimeMs && cached.ino === st.ino && cached.size === st.size) return cached.id;
    const raw = readIdentity(file)!;
    const key = crypto.createPrivateKey(raw.privateKey);
    const id: Identity = { kid: await thumbprint(raw.publicJwk), jwk: raw.publicJwk, key, createdAt: raw.createdAt, rotations: raw.rotations };
    cached = { mtimeMs: st.mtimeMs, ino: st.ino, size: st.size, id };
    return id;
  };
  return {
    current,
    async sign(kind, payload) { return signDocument(await current(), kind, payload); },
  };
}

/** A new key, announced by a statement the old key signs; the old private key is then forgotten (a peer needs only
 * its public half, which the statement carries). Returns the old and new thumbprints. */
export async function rotateKey(dataDir: string, publicUrl: string): Promise<{ oldKid: string; newKid: string }> {
  const file = identityFile(dataDir);
  await ensureIdentity(dataDir);
  const old = readIdentity(file)!;
  const oldSigner: Signer = { kid: await thumbprint(old.publicJwk), jwk: old.publicJwk, key: crypto.createPrivateKey(old.privateKey) };
  const k = await newKeyPair();
  const statement: RotationStatement = { iss: publicUrl, iat: Math.floor(Date.now() / 1000), old: oldSigner.kid, new: k.publicJwk, newKid: k.kid };
  const signed = await signDocument(oldSigner, 'rotation', statement);
  writeIdentity(file, { v: 1, ...k, createdAt: new Date().toISOString(), rotations: [...old.rotations, signed] });
  return { oldKid: oldSigner.kid, newKid: k.kid };
}

/** Follow a hoster's rotation statements from a key one trusts to the key `targetKid`: each statement must be signed
 * by the key trusted so far, be about that key, and name the next one by its thumbprint. Returns the keys passed
 * (the trusted one first, the target last), or undefined when the chain does not lead there. */
export async function followRotations(trusted: PublicJwk, statements: readonly string[], targetKid: string, iss: string): Promise<PublicJwk[] | undefined> {
  let key = trusted;
  let kid = await thumbprint(key);
  const path: PublicJwk[] = [key];
  for (let step = 0; step <= statements.length && kid !== targetKid; step++) {
    let next: PublicJwk | undefined;
    for (const s of statements) {
      const v = await verifyDocument(s, 'rotation', key).catch(() => undefined);
      if (!v) continue;
      const p = v.payload as Partial<RotationStatement>;
      if (p.iss !== iss || p.old !== kid || !isPublicJwk(p.new) || p.newKid !== (await thumbprint(p.new))) continue;
      next = p.new;
      break;
    }
    if (!next) return undefined;
    key = next;
    kid = await thumbprint(key);
    path.push(key);
  }
  return kid === targetKid ? path : undefined;
}
