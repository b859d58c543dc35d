// The forward's terms as cattery writes them (pure, ~1 s): the reply a move's confirmation composes passes cattery's
// own check for every address the check takes as a target, the longest included; an account's address comes from the
// catalog's template; a template naming anything but {login} and plain variables is refused by the catalog.
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { FORWARD_TO, checkForward } from '../../src/accounts/accounts.js';
import { loadCatalog } from '../../src/catalog/load.js';
import { addressOf, checkAccess } from '../../src/catalog/offer.js';
import { forwardMessage } from '../../src/federation/moves-source.js';
import { ROOT } from '../helpers.js';

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
const domain = fc.tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.stringMatching(/^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/))
  .map(([ls, tld]) => [...ls, tld].join('.')).filter((d) => d.length >= 4 && d.length <= 253);
const address = fc.tuple(fc.stringMatching(/^[A-Za-z0-9_+-]([A-Za-z0-9._+-]{0,62}[A-Za-z0-9_+-])?$/).filter((l) => !l.includes('..')), domain)
  .map(([l, d]) => `${l}@${d}`).filter((a) => a.length <= 254);

t.test('the reply a confirmation composes passes the check for any address the check accepts', async (t) => {
  fc.assert(fc.property(address, address, fc.integer({ min: 1, max: 365 }), (from, to, days) => {
    if (!FORWARD_TO.test(to)) return;
    const until = new Date(Date.now() + days * 86_400_000);
    checkForward({ to, until, message: forwardMessage(from, to, until) });
  }), { numRuns: 300 });
  const longest = `${'a'.repeat(64)}@${'b'.repeat(61)}.${'c'.repeat(61)}.${'d'.repeat(61)}.${'e'.repeat(3)}`;
  t.equal(longest.length, 254);
  t.ok(FORWARD_TO.test(longest), 'an address of 254 octets is a target');
  t.doesNotThrow(() => checkForward({ to: longest, until: new Date(Date.now() + 86_400_000), message: forwardMessage(longest, longest, new Date()) }));
  t.throws(() => checkForward({ to: `${longest}x`, until: new Date(Date.now() + 86_400_000), message: 'x' }), { code: 'CATTERY_ERR_VALIDATION' }, 'one more is not');
  const m = forwardMessage('alice@aville.test', 'alice@beville.test', new Date('2027-03-04T10:00:00Z'));
  t.match(m, /a déménagé chez un autre hébergeur/);
  t.match(m, /has moved to another host/);
  t.match(m, /^alice@beville\.test$/m, 'the new address on a line of its own');
  t.match(m, /2027-03-04/);
});

t.test('an account\'s address from the catalog\'s template', async (t) => {
  const catalog = loadCatalog([path.join(ROOT, 'services')]);
  const config = (env: Record<string, string>) => ({ env, ports: {}, volumes: {}, subnet: '' }) as never;
  t.equal(addressOf(catalog, { service: 'mail', config: config({ MAIL_DOMAIN: 'beville.test' }) }, 'alice'), 'alice@beville.test');
  t.equal(addressOf(catalog, { service: 'mail', config: config({}) }, 'alice'), undefined, 'no address while its variable is unset');
  t.equal(addressOf(catalog, { service: 'files', config: config({}) }, 'alice'), undefined, 'a service without addresses has none');
  const base = { http: undefined, ports: [], environment: { D: { value: 'x' }, S: { secret: { length: 32 } } } } as const;
  t.same(checkAccess({ ...base, address: '{login}@{env.D}' }), []);
  t.ok(checkAccess({ ...base, address: '{login}@{host}' }).length, '{host} is no part of an address');
  t.ok(checkAccess({ ...base, address: '{login}@{env.S}' }).length, 'a secret is never an address');
  t.ok(checkAccess({ ...base, address: 'postmaster@{env.D}' }).length, 'an address names its account');
});
