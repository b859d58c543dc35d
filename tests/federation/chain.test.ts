// The rotation chain and the verifier, as properties over generated inputs (no runtime, no network): a chain of any
// length is followed from any of its keys to the last, in any order the statements are listed; one link signed by
// a key that was not the one before, or naming another hoster, and the chain leads nowhere; a statement with any
// byte changed is refused; a document of one kind is never accepted as another.
import t from 'tap';
import fc from 'fast-check';
import { exportJWK, generateKeyPair } from 'jose';
import { signDocument, thumbprint, verifyDocument, type DocKind, type PublicJwk, type Signer } from '../../src/federation/jws.js';
import { followRotations } from '../../src/federation/keys.js';

const ISS = 'https://chatons.example';

async function newSigner(): Promise<Signer> {
  const pair = await generateKeyPair('EdDSA', { extractable: true });
  const { kty, crv, x } = await exportJWK(pair.publicKey);
  const jwk = { kty, crv, x } as PublicJwk;
  return { kid: await thumbprint(jwk), jwk, key: pair.privateKey };
}

const statement = (by: Signer, next: Signer, iss = ISS) =>
  signDocument(by, 'rotation', { iss, iat: 1, old: by.kid, new: next.jwk, newKid: next.kid });

// A pool of keys made once: generating Ed25519 pairs inside every run would only measure the generator.
const pool: Signer[] = [];

t.before(async () => { for (let i = 0; i < 8; i++) pool.push(await newSigner()); });

t.test('a chain is followed from any of its keys, whatever the order of its statements', async (t) => {
  const cases = fc.integer({ min: 2, max: 6 }).chain((n) => fc.tuple(
    fc.constant(n), fc.nat({ max: n - 2 }),
    fc.shuffledSubarray([...Array(n - 1).keys()], { minLength: n - 1, maxLength: n - 1 }),
  ));
  await fc.assert(fc.asyncProperty(cases, async ([n, start, order]) => {
    const keys = pool.slice(0, n);
    const chain = await Promise.all(keys.slice(1).map((k, i) => statement(keys[i]!, k)));
    const shuffled = order.map((i) => chain[i]!);
    const path = await followRotations(keys[start]!.jwk, shuffled, keys[n - 1]!.kid, ISS);
    if (!path || path.length !== n - start) throw new Error(`not followed from key ${start} of ${n}`);
  }), { numRuns: 60 });
  t.pass('60 generated chains followed');
});

t.test('one link signed by another key, or about another hoster, and the chain leads nowhere', async (t) => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 6 }), fc.nat(), fc.boolean(), async (n, at, otherHoster) => {
    const keys = pool.slice(0, n);
    const bad = at % (n - 1);
    const chain = await Promise.all(keys.slice(1).map((k, i) => {
      if (i !== bad) return statement(keys[i]!, k);
      // The link's payload names the right old key, but the signer is a stranger (the last key of the pool), or the
      // right key signed it for another hoster.
      return otherHoster ? statement(keys[i]!, k, 'https://ailleurs.example')
        : signDocument(pool[7]!, 'rotation', { iss: ISS, iat: 1, old: keys[i]!.kid, new: k.jwk, newKid: k.kid });
    }));
    if (await followRotations(keys[0]!.jwk, chain, keys[n - 1]!.kid, ISS)) throw new Error(`a chain broken at link ${bad} was followed`);
  }), { numRuns: 60 });
  t.pass('60 generated broken chains refused');
});

t.test('any byte changed in a statement or a report is refused; a kind is never taken for another', async (t) => {
  const [a, b] = [pool[0]!, pool[1]!];
  const signed: [DocKind, string][] = [
    ['rotation', await statement(a, b)],
    ['report', await signDocument(a, 'report', { v: 1, iss: ISS, iat: 1, month: '2026-10', licence: 'x', datasets: [] })],
  ];
  for (const [kind, jws] of signed) {
    const bytes = Buffer.from(jws);
    await fc.assert(fc.asyncProperty(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), async (i, delta) => {
      const changed = Buffer.from(bytes);
      changed[i] = (changed[i]! + delta) % 256;
      if (await verifyDocument(changed.toString('utf8'), kind, a.jwk).then(() => true, () => false)) throw new Error(`${kind}: byte ${i} +${delta} accepted`);
    }), { numRuns: 200 });
    t.ok(await verifyDocument(jws, kind, a.jwk), `${kind}: the document itself is accepted`);
    for (const other of ['hoster', 'report', 'rotation'] as const) {
      if (other !== kind) await t.rejects(verifyDocument(jws, other, a.jwk), { code: 'CATTERY_ERR_PEER_REFUSED' }, `${kind} is not a ${other}`);
    }
    await t.rejects(verifyDocument(jws, kind, b.jwk), { code: 'CATTERY_ERR_PEER_REFUSED' }, `${kind}: another pinned key refuses it`);
  }
});
