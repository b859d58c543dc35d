// `cattery federation …`: this hoster's key from a shell. Works beside a running `cattery serve`, which reads the
// key file again when it changes (federation/keys.ts).
import type { Config } from '../config.js';
import { createKeyStore, rotateKey } from '../federation/keys.js';
import { fingerprintOf } from '../federation/jws.js';

const USAGE = `usage:
  cattery federation fingerprint   print this hoster's key fingerprint (to read to a peer's administrator)
  cattery federation rotate-key    make a new key, announced by a statement the old key signs (peers that pinned
                                   the old key follow it); the old private key is then forgotten`;

function out(line: string) {
  process.stdout.write(`${line}\n`);
}

export async function federationCommand(sub: string | undefined, config: Config): Promise<number> {
  if (sub === 'fingerprint') {
    const id = await createKeyStore(config.dataDir).current();
    out(`${fingerprintOf(id.kid)}  (kid ${id.kid}, made ${id.createdAt}, ${id.rotations.length} rotation(s))`);
    return 0;
  }
  if (sub === 'rotate-key') {
    const r = await rotateKey(config.dataDir, config.publicUrl);
    out(`key rotated: ${fingerprintOf(r.oldKid)} -> ${fingerprintOf(r.newKid)}`);
    out('give the new fingerprint to your peers\' administrators; their catteries accept it through the signed statement');
    return 0;
  }
  process.stderr.write(`${USAGE}\n`);
  return sub === undefined ? 0 : 2;
}
