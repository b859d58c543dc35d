// Pure parts of identity: passwords, logins from names, the throttle, roles from claims, languages, redirects.
import t from 'tap';
import { firstPassword, hashPassword, verifyPassword } from '../../src/identity/passwords.js';
import { createThrottle } from '../../src/identity/throttle.js';
import { rolesFromClaims } from '../../src/identity/oidc.js';
import { pickLang } from '../../src/http/i18n.js';
import { safeNext } from '../../src/http/pages/deps.js';
import { loginFromName } from '../../src/identity/users.js';
import { applyMigrations, openDb } from '../../src/db/connection.js';

t.test('scrypt hashes verify, differ per salt, and reject the wrong password', async (t) => {
  const a = await hashPassword('correct horse battery');
  const b = await hashPassword('correct horse battery');
  t.not(a, b);
  t.ok(await verifyPassword('correct horse battery', a));
  t.notOk(await verifyPassword('correct horse batterie', a));
  t.notOk(await verifyPassword('anything at all', null), 'no hash: never true');
  t.notOk(await verifyPassword('x', 'garbage'));
  const p = firstPassword();
  t.match(p, /^[a-km-z2-9]{4}-[a-km-z2-9]{4}-[a-km-z2-9]{4}$/);
  t.notMatch(p, /[01lo]/, 'no characters that read alike');
});

t.test('logins from names: accents folded, unique, valid', async (t) => {
  const db = openDb(':memory:');
  applyMigrations(db);
  t.equal(loginFromName(db, 'Marie-Hélène Dupré'), 'marie-helene.dupre');
  t.equal(loginFromName(db, "Jean d'Ormesson"), 'jean.dormesson');
  t.equal(loginFromName(db, 'Zoë'), 'zoe');
  t.equal(loginFromName(db, '李'), 'habitant', 'a name with no Latin letter gets a neutral login');
  t.equal(loginFromName(db, 'Zoë', (l) => l === 'zoe'), 'zoe2');
  t.match(loginFromName(db, 'A'), /^[a-z][a-z0-9._-]*[a-z0-9]$/);
  db.$client.close();
});

t.test('throttle: five free failures, then doubling waits; success forgets', async (t) => {
  const th = createThrottle({ freeAttempts: 5, baseSeconds: 2 });
  for (let i = 0; i < 5; i++) th.failed('a');
  t.equal(th.retryAfter('a'), 0);
  th.failed('a');
  t.equal(th.retryAfter('a'), 2);
  th.failed('a');
  t.equal(th.retryAfter('a'), 4);
  th.succeeded('a');
  t.equal(th.retryAfter('a'), 0);
  const small = createThrottle({ maxEntries: 3, freeAttempts: 0 });
  for (const k of ['a', 'b', 'c', 'd']) small.failed(k);
  t.equal(small.retryAfter('a'), 0, 'bounded: the oldest entry went');
  t.ok(small.retryAfter('d') > 0);
});

t.test('roles from the provider\'s claim', async (t) => {
  const s = { rolesClaim: 'groups', roleMap: { 'cattery-admins': 'admin', mairie: 'city' } };
  t.same(rolesFromClaims(s, { groups: ['cattery-admins', 'mairie', 'unknown'] }), ['admin', 'city']);
  t.same(rolesFromClaims(s, { groups: 'mediator member' }), ['resident'], 'names like roles grant nothing without the map');
  t.same(rolesFromClaims(s, { groups: 'mairie cattery-admins' }), ['admin', 'city'], 'a space-separated string');
  t.same(rolesFromClaims(s, {}), ['resident'], 'nobody special: a resident');
  t.same(rolesFromClaims(s, { groups: ['public', 'peer'] }), ['resident'], 'public and peer are never given by a provider');
});

t.test('language and redirects', async (t) => {
  t.equal(pickLang({}, undefined, undefined), 'fr');
  t.equal(pickLang({ lang: 'en' }, 'fr', 'fr'), 'en');
  t.equal(pickLang({}, 'en', 'fr'), 'en');
  t.equal(pickLang({}, undefined, 'de-DE,en;q=0.5'), 'en');
  t.equal(pickLang({ lang: 'xx' }, undefined, 'de'), 'fr');
  t.equal(safeNext('/admin'), '/admin');
  for (const bad of ['//evil.example', 'https://evil.example', '/\\evil', 'javascript:alert(1)', 42]) t.equal(safeNext(bad), '/me');
});
