// The sign-in throttle as a pure part, on a clock of its own: a stranger failing for someone's login slows the
// stranger's address only; the owner, from an address of theirs, is never made to wait by anyone else; the ceiling
// per login still slows an attack spread over many addresses, and spares where the owner signed in lately. Random
// sequences of attempts (fast-check) check these over every interleaving, not one example. Also the trusted proxy's
// settings (CATTERY_TRUST_PROXY) and their matcher.
import net from 'node:net';
import t from 'tap';
import fc from 'fast-check';
import { createSignInThrottle } from '../../src/identity/throttle.js';
import { compileProxyTrust, REQUEST_ID, clientKey } from '../../src/http/proxy-trust.js';
import { isProxyEntry, loadConfig } from '../../src/config.js';

function clock() {
  let now = 1_700_000_000_000;
  return { now: () => now, advance: (s: number) => { now += s * 1000; } };
}

/** What sign-in.ts does with a throttle: ask for the wait, then count the outcome. */
function attempt(th: ReturnType<typeof createSignInThrottle>, login: string, address: string, right: boolean): 'ok' | 'failed' | 'wait' {
  const t = th.from(address);
  if (t.retryAfter(login) > 0) return 'wait';
  if (right) { t.succeeded(login); return 'ok'; }
  t.failed(login);
  return 'failed';
}

t.test('a stranger\'s failures never make the owner wait, and the stranger is slowed', async (t) => {
  const ip = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 })).map((p) => p.join('.'));
  const step = fc.oneof(
    fc.record({ who: fc.constant('stranger' as const), from: fc.nat(3), right: fc.constant(false) }),
    fc.record({ who: fc.constant('owner' as const), from: fc.constant(0), right: fc.boolean() }),
    fc.record({ who: fc.constant('wait' as const), from: fc.constant(0), right: fc.constant(false), seconds: fc.integer({ min: 1, max: 2000 }) }),
  );
  await fc.assert(fc.property(fc.uniqueArray(ip, { minLength: 5, maxLength: 5 }), fc.array(step, { maxLength: 300 }), (ips, steps) => {
    const c = clock();
    const th = createSignInThrottle({ now: c.now });
    const owner = ips[4]!;
    let ownerFailures = 0, signedIn = false, strangerTotal = 0;
    const strangerFailures = new Map<string, { n: number; at: number }>();
    for (const s of steps) {
      if (s.who === 'wait') { c.advance((s as { seconds: number }).seconds); continue; }
      if (s.who === 'owner') {
        const r = attempt(th, 'marie', owner, s.right);
        // The owner waits for their own mistakes, and for the stranger's only past the high ceiling (100) and only
        // where they never signed in.
        if (r === 'wait' && ownerFailures < 5 && (signedIn || strangerTotal <= 100)) throw new Error(`the owner waits after ${ownerFailures} own failures`);
        if (r === 'ok') { ownerFailures = 0; signedIn = true; }
        if (r === 'failed') ownerFailures++;
        continue;
      }
      const from = ips[s.from]!;
      const r = attempt(th, 'marie', from, false);
      // An address an hour past its last failure may have started over: the model forgets it then too.
      const seen = strangerFailures.get(from);
      const n = seen && c.now() - seen.at <= 3_600_000 ? seen.n : 0;
      if (r === 'failed') { strangerFailures.set(from, { n: n + 1, at: c.now() }); strangerTotal++; }
      if (n + 1 > 5 && r === 'failed' && th.from(from).retryAfter('marie') === 0) throw new Error('a stranger past five failures is not slowed');
    }
  }), { numRuns: 300 });
  // And at length: a stranger who keeps trying, as fast as allowed, for a day.
  const c = clock();
  const th = createSignInThrottle({ now: c.now });
  th.from('192.0.2.10').succeeded('marie');
  let tries = 0;
  for (let s = 0; s < 86_400; s += 1) {
    if (th.from('198.51.100.7').retryAfter('marie') === 0) { th.from('198.51.100.7').failed('marie'); tries++; }
    c.advance(1);
  }
  t.ok(tries < 120, `a day of trying from one address: ${tries} guesses`);
  t.equal(th.from('192.0.2.10').retryAfter('marie'), 0, 'and marie, from her address, still signs in');
  t.pass('over random interleavings of a stranger (four addresses), the owner and time passing');
});

t.test('the exact schedule: five free failures per address, then doubling waits, capped', async (t) => {
  const c = clock();
  const th = createSignInThrottle({ now: c.now });
  const stranger = th.from('198.51.100.7');
  for (let i = 0; i < 5; i++) { t.equal(stranger.retryAfter('marie'), 0); stranger.failed('marie'); }
  t.equal(stranger.retryAfter('marie'), 0, 'five failures are free');
  stranger.failed('marie');
  t.equal(stranger.retryAfter('marie'), 2, 'then 2 s');
  c.advance(2); stranger.failed('marie');
  t.equal(stranger.retryAfter('marie'), 4, 'then 4 s');
  for (let i = 0; i < 30; i++) { c.advance(stranger.retryAfter('marie')); stranger.failed('marie'); }
  t.equal(stranger.retryAfter('marie'), 900, 'capped at 15 minutes');
  t.equal(th.from('192.0.2.10').retryAfter('marie'), 0, 'another address signs in at once');
  t.equal(stranger.retryAfter('jules'), 0, 'another login from the same address is not slowed');
  c.advance(900 + 3600 + 1);
  t.equal(stranger.retryAfter('marie'), 0, 'an hour after the last wait the address starts over');
});

t.test('the ceiling per login slows a spread-out attack but spares the owner\'s recent addresses', async (t) => {
  const c = clock();
  const th = createSignInThrottle({ now: c.now, perLogin: { freeAttempts: 100 } });
  th.from('192.0.2.10').succeeded('marie');
  // 25 addresses × 4 failures: no address is slowed on its own, the login's total reaches the ceiling.
  for (let a = 0; a < 25; a++) for (let i = 0; i < 4; i++) th.from(`198.51.100.${a + 1}`).failed('marie');
  t.equal(th.from('203.0.113.1').retryAfter('marie'), 0, 'at the ceiling (100) nothing waits yet');
  th.from('198.51.100.200').failed('marie');
  t.ok(th.from('203.0.113.1').retryAfter('marie') > 0, 'past it a new address waits');
  t.equal(th.from('192.0.2.10').retryAfter('marie'), 0, 'where marie signed in lately she does not');
  t.equal(th.from('203.0.113.1').retryAfter('jules'), 0, 'other logins are untouched');
  c.advance(31 * 86_400);
  t.equal(th.from('203.0.113.1').retryAfter('marie'), 0, 'a day after its last wait the ceiling starts over');
});

t.test('memory stays bounded whatever is invented', async (t) => {
  const c = clock();
  const th = createSignInThrottle({ now: c.now, perAddress: { maxEntries: 50 }, perLogin: { maxEntries: 50 }, maxLogins: 50 });
  for (let i = 0; i < 5000; i++) { th.from(`10.0.${i >> 8}.${i & 255}`).failed(`login${i}`); th.from('10.9.9.9').succeeded(`other${i}`); }
  t.equal(th.from('10.0.0.0').retryAfter('login0'), 0, 'the oldest entries went');
});

t.test('CATTERY_TRUST_PROXY: nobody, hops, or addresses and CIDRs; anything else stops the start', async (t) => {
  t.equal(loadConfig({}).trustProxy, false, 'nobody by default');
  t.equal(loadConfig({ CATTERY_TRUST_PROXY: '0' }).trustProxy, false);
  t.equal(loadConfig({ CATTERY_TRUST_PROXY: '1' }).trustProxy, 1);
  t.same(loadConfig({ CATTERY_TRUST_PROXY: '127.0.0.1, 10.0.0.0/8,::1,fd00::/8,loopback' }).trustProxy, ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', 'loopback']);
  for (const bad of ['true', '*', '10.0.0.0/33', '::1/129', '10.0.0.1/8/8', '127.0.0.1;rm', 'proxy.example', '1.2.3', '17', '127.0.0.1,', '10.0.0.0/-1']) {
    t.throws(() => loadConfig({ CATTERY_TRUST_PROXY: bad }), /TRUST_PROXY|trustProxy/, `"${bad}" is refused`);
  }
  fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => {
    // Whatever the text, either it is refused or every entry is one the matcher understands.
    try { const v = loadConfig({ CATTERY_TRUST_PROXY: s }).trustProxy; return v === false || typeof v === 'number' || v.every(isProxyEntry); } catch { return true; }
  }), { numRuns: 500 });
});

t.test('the matcher: listed addresses and ranges, IPv4 seen through IPv6, hop counts', async (t) => {
  const list = compileProxyTrust(['10.1.0.0/16', '::1', 'loopback']);
  t.ok(list('10.1.2.3', 0));
  t.ok(list('::ffff:10.1.2.3', 0), 'an IPv4-mapped address is its IPv4 address');
  t.ok(list('127.0.0.5', 3));
  t.notOk(list('10.2.0.1', 0));
  t.notOk(list('not-an-address', 0));
  t.notOk(list('', 0));
  const none = compileProxyTrust(false);
  t.notOk(none('127.0.0.1', 0));
  const hops = compileProxyTrust(2);
  t.ok(hops('203.0.113.1', 1));
  t.notOk(hops('203.0.113.1', 2));
  t.ok(REQUEST_ID.test('abc-123_X.y'));
  for (const bad of ['', 'a b', 'a\nb', 'x'.repeat(65), 'é', 'a,b']) t.notOk(REQUEST_ID.test(bad), JSON.stringify(bad.slice(0, 10)));
});

t.test('limits key an IPv6 client by its /64 and an IPv4 client by its address, however it is written', async (t) => {
  const inKey = (key: string, addr: string) => {
    const list = new net.BlockList();
    list.addSubnet(key.replace('::/64', '::'), 64, 'ipv6');
    return list.check(addr, 'ipv6');
  };
  // Flip one bit of the first 64 (a neighbour's /64) or of the last 64 (the same client's other address).
  const flip = (addr: string, bit: number) => {
    const parts = expand(addr.toLowerCase());
    const g = Math.floor(bit / 16);
    parts[g] = (parseInt(parts[g]!, 16) ^ (1 << (15 - (bit % 16)))).toString(16);
    return parts.join(':');
  };
  const expand = (a: string) => {
    const [h = '', tl = ''] = a.split('::');
    const hs = h ? h.split(':') : [], ts = a.includes('::') ? (tl ? tl.split(':') : []) : [];
    return a.includes('::') ? [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts] : hs;
  };
  const v6 = fc.ipV6().filter((a) => !a.includes('.'));
  fc.assert(fc.property(v6, fc.integer({ min: 64, max: 127 }), (a, bit) => {
    const key = clientKey(a);
    return inKey(key, a) && clientKey(flip(a, bit)) === key && clientKey(a.toUpperCase()) === key;
  }), { numRuns: 2000, seed: 20261202 });
  fc.assert(fc.property(v6, fc.integer({ min: 0, max: 63 }), (a, bit) => clientKey(flip(a, bit)) !== clientKey(a)), { numRuns: 2000, seed: 20261203 });
  fc.assert(fc.property(fc.ipV4(), (a) => clientKey(a) === a && clientKey(`::ffff:${a}`) === a), { numRuns: 1000, seed: 20261204 });
  t.equal(clientKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  t.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(clientKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
});
