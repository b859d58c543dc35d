// A fresh Ed25519 key as a node's agent holds one (its public half as pinned at enrolment), for the agent tests.
import { exportJWK, generateKeyPair } from 'jose';
import { thumbprint, type PublicJwk, type Signer } from '../../src/federation/jws.js';

export async function newSigner(): Promise<Signer> {
  const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const { kty, crv, x } = await exportJWK(pair.publicKey);
  const jwk = { kty, crv, x } as PublicJwk;
  return { jwk, kid: await thumbprint(jwk), key: pair.privateKey };
}
