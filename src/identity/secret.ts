// The key that signs cookies: CATTERY_SECRET when given, else made once and kept in the data folder (mode 0600),
// so that sessions and forms survive a restart.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export function loadOrCreateSecret(dataDir: string, given?: string): string {
  if (given) return given;
  const file = path.join(dataDir, 'secret.key');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = crypto.randomBytes(32).toString('base64url');
  // wx: two processes starting at once keep the first one's key.
  try { fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' }); } catch { return fs.readFileSync(file, 'utf8').trim(); }
  return secret;
}
