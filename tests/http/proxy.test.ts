// Behind the recommended reverse proxy (CATTERY_TRUST_PROXY), through the app: each client behind the proxy has its
// own rate-limit budget, a peer that is not the proxy cannot pick its address with X-Forwarded-For, a stranger
// failing for someone's login does not keep the owner out (and is still slowed), and a client's x-request-id is
// kept only from the proxy and only when it is a plain id. Generated sequences and ids (fast-check).
import t from 'tap';
import fc from 'fast-check';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { createRuntime } from '../../src/runtime.js';
import { createUser } from '../../src/identity/users.js';
import { REQUEST_ID } from '../../src/http/proxy-trust.js';
import { testConfig } from '../helpers.js';
import type { Config } from '../../src/config.js';

const PROXY = '127.0.0.1';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function runtime(t: Parameters<Parameters<typeof t.test>[1]>[0], overrides: Partial<Config>) {
  const rt = await createRuntime(testConfig(t, overrides), pino({ level: 'silent' }));
  t.teardown(() => rt.close());
  return rt;
}

/** A browser behind the proxy (or not): its own cookies and CSRF token, its own X-Forwarded-For. */
async function client(app: FastifyInstance, opts: { forwardedFor?: string; peer?: string }) {
  const net = { remoteAddress: opts.peer ?? PROXY };
  const fwd: Record<string, string> = opts.forwardedFor ? { 'x-forwarded-for': opts.forwardedFor } : {};
  const page = await app.inject({ url: '/login', headers: { accept: 'text/html', ...fwd }, ...net });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
  const cookie = page.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  return {
    login: (login: string, password: string, headers: Record<string, string> = {}) => app.inject({
      method: 'POST', url: '/login', ...net, payload: new URLSearchParams({ _csrf: csrf, login, password }).toString(),
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...fwd, ...headers },
    }),
  };
}

t.test('behind the trusted proxy each client has its own budget; an untrusted peer\'s X-Forwarded-For is ignored', async (t) => {
  const limit = 3;
  const rt = await runtime(t, { trustProxy: [PROXY], loginPerMinute: limit });
  let runs = 0;
  const property = fc.asyncProperty(fc.array(fc.nat(3), { minLength: 1, maxLength: 16 }), async (order) => {
    const run = ++runs;
    // Fresh addresses each run: the limiter's memory outlives a run.
    const clients = await Promise.all([0, 1, 2, 3].map((i) => client(rt.app, { forwardedFor: `198.51.${run % 250}.${i + 1}` })));
    const count = [0, 0, 0, 0];
    for (const i of order) {
      count[i]!++;
      // A new login each time, so that only the per-address limit is at stake here, not the sign-in backoff.
      const r = await clients[i]!.login(`nobody-${run}-${count[i]}`, 'wrong-password');
      const expected = count[i]! > limit ? 429 : 401;
      if (r.statusCode !== expected) throw new Error(`client ${i}, request ${count[i]}: ${r.statusCode}, expected ${expected}`);
    }
  });
  // 40 runs in two streams of 20 at the same time (two seeds): each run's addresses are its own, so the streams share
  // no budget, and each sign-in below the limit costs a scrypt (an unknown login is hashed too), which the two
  // streams spend on both cores instead of one after the other.
  const seed = Date.now() % 2 ** 31;
  await Promise.all([seed, seed + 1].map((s) => fc.assert(property, { numRuns: 20, seed: s })));
  t.equal(runs, 40);
  t.pass('every client behind the proxy is limited on its own address');

  // A peer that is not the proxy: whatever it writes in X-Forwarded-For, its budget is its own address's.
  const codes: number[] = [];
  for (let i = 0; i < limit + 2; i++) {
    const c = await client(rt.app, { peer: '203.0.113.9', forwardedFor: `192.0.2.${i + 1}` });
    codes.push((await c.login(`someone-${i}`, 'wrong-password')).statusCode);
  }
  t.same(codes, [401, 401, 401, 429, 429], 'an untrusted peer shares one budget, whatever it forwards');

  // The same peer, if it were trusted, would have had five budgets: the trust list is what made the difference.
  const direct = await client(rt.app, { peer: '203.0.113.10' });
  t.equal((await direct.login('x1', 'wrong-password', { 'x-forwarded-for': '198.51.100.99' })).statusCode, 401);
});

t.test('a hop count trusts the proxy in front, not what a client put before it', async (t) => {
  const rt = await runtime(t, { trustProxy: 1, loginPerMinute: 2 });
  const codes: number[] = [];
  // The client forges a first entry; the proxy appends the address it saw (always the same here).
  for (let i = 0; i < 4; i++) {
    const c = await client(rt.app, { forwardedFor: `10.${i}.0.1, 198.51.100.40` });
    codes.push((await c.login(`who-${i}`, 'wrong-password')).statusCode);
  }
  t.same(codes, [401, 401, 429, 429], 'the forged entries do not buy a new budget');
});

t.test('a stranger failing for a login does not keep its owner out, and is slowed', async (t) => {
  const rt = await runtime(t, { trustProxy: [PROXY], loginPerMinute: 10_000 });
  const password = 'la phrase de marie, longue';
  await createUser(rt.db, { login: 'marie', name: 'Marie', roles: ['resident'], password });
  let round = 0;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 7, max: 25 }), fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 5 }), async (failures, guesses) => {
    round++;
    const attacker = await client(rt.app, { forwardedFor: `198.51.100.${round}` });
    const codes: number[] = [];
    for (let i = 0; i < failures; i++) codes.push((await attacker.login('marie', `${guesses[i % guesses.length]!}-${i}`)).statusCode);
    // Five free failures, the sixth sets the first wait, the seventh waits (throttle.ts).
    if (codes.slice(0, 6).some((c) => c !== 401)) throw new Error(`the first six failures: ${codes.join(' ')}`);
    if (codes[6] !== 429 || codes[codes.length - 1] !== 429) throw new Error(`the attacker is not slowed: ${codes.join(' ')}`);
    // Even the right password is "wait" from the attacker's address: being slowed tells nothing.
    const right = await attacker.login('marie', password);
    if (right.statusCode !== 429) throw new Error(`the right password from the attacker's address: ${right.statusCode}`);
    // Marie, from her own address behind the same proxy, signs in at once.
    const marie = await client(rt.app, { forwardedFor: `192.0.2.${round}` });
    const r = await marie.login('marie', password);
    if (r.statusCode !== 303 || !r.cookies.some((c) => c.name === 'cattery_session' && c.value)) throw new Error(`marie: ${r.statusCode}`);
  }), { numRuns: 8 });
  t.pass('after any number of a stranger\'s failures, marie signs in from her address; the stranger waits');
});

t.test('x-request-id: kept from the proxy when it is a plain id, replaced otherwise', async (t) => {
  const rt = await runtime(t, { trustProxy: [PROXY] });
  const hostile = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }),
    fc.tuple(fc.stringMatching(/^[a-z]{1,10}$/), fc.constantFrom('\n', '\r\n', ' ', ',', '\u2028', '"', '\0'), fc.stringMatching(/^[a-z]{1,10}$/)).map((p) => p.join('')),
    fc.integer({ min: 65, max: 20_000 }).map((n) => 'a'.repeat(n)),
  );
  let sentOnWire = 0;
  await fc.assert(fc.asyncProperty(hostile, fc.boolean(), async (id, fromProxy) => {
    let r;
    try {
      r = await rt.app.inject({ url: '/healthz', headers: { 'x-request-id': id }, remoteAddress: fromProxy ? PROXY : '203.0.113.5' });
    } catch {
      return; // Node refuses to send such a header at all (a control character): nothing reaches cattery.
    }
    sentOnWire++;
    const back = String(r.headers['x-request-id']);
    const keep = fromProxy && REQUEST_ID.test(id);
    if (keep ? back !== id : !UUID.test(back)) throw new Error(`${JSON.stringify(id.slice(0, 40))} from ${fromProxy ? 'the proxy' : 'a stranger'}: ${back.slice(0, 80)}`);
  }), { numRuns: 400 });
  t.ok(sentOnWire > 200, `${sentOnWire} ids reached the app`);
  // An error page shows the id: it must be ours too.
  const r = await rt.app.inject({ url: '/nowhere', headers: { 'x-request-id': 'a\u2028forged', accept: 'text/html' }, remoteAddress: PROXY });
  t.notMatch(r.body, /forged/);
});
