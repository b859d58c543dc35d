// The pure pieces of a move (src/federation/move-protocol.ts), as kinds: every code generated reads back from any
// way a person may type it and only then; a signed request is refused for any other issuer, audience, code hash,
// jti shape or time outside the window; a manifest is refused for any malformed part (names a service or account
// could not have, traversal, sizes and hashes of the wrong shape, a quota beyond any given, a role's address, two parts
// into one account), for another issuer or audience, another version, and for dates that would outlive any code.
import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import { exportJWK, generateKeyPair } from 'jose';
import { signDocument, thumbprint, type PublicJwk } from '../../src/federation/jws.js';
import { QUOTA_MAX_MB } from '../../src/accounts/accounts.js';
import { RESERVED_LOGINS } from '../../src/identity/users.js';
import {
  CODE_TTL_MS, REQUEST_WINDOW_S, checkManifest, checkMoveRequest, codeTokenHash, newTransferCode, normalizeCode, signMoveRequest, storedCodeHash,
} from '../../src/federation/move-protocol.js';

const A = 'https://a.example';
const B = 'https://b.example';

async function signer() {
  const k = await generateKeyPair('EdDSA', { extractable: true });
  const jwk = { ...(await exportJWK(k.publicKey)) } as PublicJwk;
  return { kid: await thumbprint(jwk), jwk, key: k.privateKey };
}

t.test('transfer codes: 160 bits, typed any way they may be, nothing else taken for one', async (t) => {
  const codes = Array.from({ length: 200 }, newTransferCode);
  t.equal(new Set(codes).size, codes.length, 'no two alike');
  fc.assert(fc.property(fc.constantFrom(...codes), fc.array(fc.boolean(), { minLength: 39, maxLength: 39 }), fc.boolean(), (code, lower, spaces) => {
    // As a person may type it: lower case here and there, spaces instead of dashes, O for 0 and I or L for 1.
    const typed = [...code].map((ch, i) => (lower[i] ? ch.toLowerCase() : ch)).join('').replace(/-/g, spaces ? ' ' : '')
      .replace(/0/g, 'O').replace(/1/g, 'l');
    return normalizeCode(typed) === code;
  }));
  fc.assert(fc.property(fc.string({ maxLength: 50 }), (s) => {
    const n = normalizeCode(s);
    return n === undefined || /^([0-9A-HJKMNP-TV-Z]{4}-){7}[0-9A-HJKMNP-TV-Z]{4}$/.test(n);
  }));
  t.equal(normalizeCode(codes[0]!.slice(0, -1)), undefined, 'one character short');
  t.equal(normalizeCode(`${codes[0]}0`), undefined, 'one character more');
  t.equal(normalizeCode(codes[0]!.replace(/^./, 'U')), undefined, 'U is not in the alphabet');
  t.not(storedCodeHash(codeTokenHash(codes[0]!)), codeTokenHash(codes[0]!), 'the source keeps a hash of what requests carry');
});

t.test('signed requests: refused for anything but this issuer, this audience, a code hash, a jti and the time now', async (t) => {
  const b = await signer();
  const cth = codeTokenHash(newTransferCode());
  const now = Date.now();
  const good = await signMoveRequest(b, { iss: B, aud: A, cth }, now);
  t.match(await checkMoveRequest(good, b.jwk, B, A, now), { iss: B, aud: A, cth });
  const other = await signer();
  await t.rejects(checkMoveRequest(good, other.jwk, B, A, now), { code: 'CATTERY_ERR_MOVE_REFUSED' }, 'another pinned key');
  await t.rejects(checkMoveRequest(good, b.jwk, 'https://c.example', A, now), { code: 'CATTERY_ERR_MOVE_REFUSED' }, 'another issuer than the peer');
  await t.rejects(checkMoveRequest(good, b.jwk, B, 'https://c.example', now), { code: 'CATTERY_ERR_MOVE_REFUSED' }, 'meant for another hoster');
  await fc.assert(fc.asyncProperty(fc.oneof(fc.integer({ min: -3600, max: 3600 }), fc.constantFrom(-61, -60, 60, 61)), async (skew) => {
    const ok = await checkMoveRequest(good, b.jwk, B, A, now + skew * 1000).then(() => true, () => false);
    return ok === (Math.abs(skew) <= REQUEST_WINDOW_S);
  }), { numRuns: 60 });
  // Payloads of the wrong shape, signed by the right key: refused all the same.
  const shapes = fc.record({
    iss: fc.oneof(fc.constant(B), fc.string()), aud: fc.oneof(fc.constant(A), fc.string()),
    cth: fc.oneof(fc.constant(cth), fc.string(), fc.integer()), jti: fc.oneof(fc.constant(crypto.randomBytes(16).toString('base64url')), fc.string(), fc.constant(null)),
    iat: fc.oneof(fc.constant(Math.floor(now / 1000)), fc.double(), fc.string()),
  });
  await fc.assert(fc.asyncProperty(shapes, async (p) => {
    const jws = await signDocument(b, 'moveRequest', p);
    const ok = await checkMoveRequest(jws, b.jwk, B, A, now).then(() => true, () => false);
    const wellFormed = p.iss === B && p.aud === A && p.cth === cth && typeof p.jti === 'string' && /^[A-Za-z0-9_-]{22,64}$/.test(p.jti) && p.iat === Math.floor(now / 1000);
    return ok === wellFormed;
  }), { numRuns: 150 });
  // A manifest or receipt is never taken for a request, nor the reverse.
  await t.rejects(checkMoveRequest(await signDocument(b, 'moveReceipt', { iss: B, aud: A, cth, iat: Math.floor(now / 1000), jti: 'x'.repeat(22) }), b.jwk, B, A, now), { code: 'CATTERY_ERR_MOVE_REFUSED' });
});

t.test('manifests: every malformed part refused, the well-formed ones taken', async (t) => {
  const part = (i: number) => ({ index: i, service: 'files', username: 'alice', quotaMb: 20, bytes: 10240, sha256: 'a'.repeat(64) });
  const iat = Math.floor(Date.now() / 1000);
  const manifest = { v: 1, iss: A, aud: B, iat, exp: iat + 3600, move: crypto.randomBytes(16).toString('base64url'), resident: { name: 'Alice' }, parts: [part(0)] };
  t.match(checkManifest(manifest, A, B), { move: manifest.move, parts: [{ service: 'files' }] });
  for (const [what, m] of [
    ['version 2', { ...manifest, v: 2 }], ['another issuer', { ...manifest, iss: B }], ['meant for another', { ...manifest, aud: A }],
    ['no parts', { ...manifest, parts: [] }], ['no move id', { ...manifest, move: '../x' }],
  ] as const) t.throws(() => checkManifest(m, A, B), { code: 'CATTERY_ERR_MOVE_REFUSED' }, what);
  const bad = fc.oneof(
    fc.record({ username: fc.constantFrom('..', 'a..b', '../alice', 'Alice', 'a', 'alice/x', '-alice', 'alice-', '', 'a'.repeat(33)) }),
    fc.record({ service: fc.constantFrom('../files', 'Files', '', 'files/x', 'a'.repeat(41)) }),
    fc.record({ bytes: fc.constantFrom(-1, 1.5, Number.MAX_SAFE_INTEGER + 2, '10' as unknown as number) }),
    fc.record({ quotaMb: fc.constantFrom(0, -5, 1.5, QUOTA_MAX_MB + 1, Number.MAX_SAFE_INTEGER, 2 ** 60) }),
    fc.record({ username: fc.constantFrom(...RESERVED_LOGINS, 'post.master', 'admin2', 'abuse-desk', 'webmaster.x') }),
    fc.record({ sha256: fc.constantFrom('A'.repeat(64), 'a'.repeat(63), 'g'.repeat(64), '') }),
    fc.record({ index: fc.constantFrom(1, -1, 0.5) }),
  );
  fc.assert(fc.property(bad, (change) => {
    try { checkManifest({ ...manifest, parts: [{ ...part(0), ...change }] }, A, B); return false; } catch (err) { return (err as { code?: string }).code === 'CATTERY_ERR_MOVE_REFUSED'; }
  }), { numRuns: 100 });
});

t.test('manifests: any date a code cannot have is refused, any it can is taken', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const ttl = CODE_TTL_MS / 1000 + REQUEST_WINDOW_S;
  const part = { index: 0, service: 'files', username: 'alice', quotaMb: 20, bytes: 10, sha256: 'a'.repeat(64) };
  const at = (iat: unknown, exp: unknown) => ({ v: 1, iss: A, aud: B, iat, exp, move: crypto.randomBytes(16).toString('base64url'), resident: { name: 'A' }, parts: [part] });
  const taken = (m: unknown) => {
    try { checkManifest(m, A, B, now * 1000); return true; } catch (err) { if ((err as { code?: string }).code === 'CATTERY_ERR_MOVE_REFUSED') return false; throw err; }
  };
  fc.assert(fc.property(fc.integer({ min: -ttl + 1, max: 0 }), fc.integer({ min: 1, max: ttl }), (age, life) => {
    const iat = now + age;
    const ok = iat + life > now;
    return taken(at(iat, iat + life)) === ok;
  }), { numRuns: 100 });
  fc.assert(fc.property(fc.integer({ min: ttl + 1, max: 2 ** 40 }), (life) => !taken(at(now, now + life))), { numRuns: 50 });
  fc.assert(fc.property(fc.integer({ min: REQUEST_WINDOW_S + 1, max: 2 ** 40 }), (ahead) => !taken(at(now + ahead, now + ahead + 60))), { numRuns: 50 });
  for (const [iat, exp] of [[now, now], [now, now - 1], ['1', now + 60], [now, 1.5e9 + 0.5], [null, now + 60], [now + 0.5, now + 60]]) t.notOk(taken(at(iat, exp)), `iat ${String(iat)}, exp ${String(exp)}`);
  t.notOk(taken({ ...at(now, now + 60), parts: [part, { ...part, index: 1 }] }), 'two parts into one account');
  t.ok(taken({ ...at(now, now + 60), parts: [part, { ...part, index: 1, service: 'mail' }] }), 'one name in two services');
});
