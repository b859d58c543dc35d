// Roles from the provider come only through the explicit map (CATTERY_OIDC_ROLE_MAP). Generated group lists mix every
// role name, their case variants, Unicode look-alikes, prototype keys, mapped and unmapped names, in both claim
// shapes (a list, a space- or comma-separated string), against generated maps: the roles are exactly the map's, and
// a resident when nothing maps.
import t from 'tap';
import fc from 'fast-check';
import { rolesFromClaims } from '../../src/identity/oidc.js';
import { PERSON_ROLES, ROLES } from '../../src/identity/roles.js';

// Letters a provider's group name may use to look like a role's: Cyrillic, Greek, fullwidth, dotless i.
const LOOK_ALIKES: Record<string, string[]> = {
  a: ['\u0430', '\u03b1', '\uff41'], e: ['\u0435', '\uff45'], i: ['\u0456', '\u0131', '\uff49'], o: ['\u043e', '\u03bf'],
  p: ['\u0440', '\uff50'], c: ['\u0441', '\uff43'], m: ['\uff4d'], n: ['\uff4e'], d: ['\uff44'], r: ['\uff52'], t: ['\uff54'],
  s: ['\u0455', '\uff53'], y: ['\u0443'], b: ['\uff42'], u: ['\uff55'], l: ['\u04cf', '\uff4c'],
};

const roleName = fc.constantFrom(...ROLES);
const caseVariant = roleName.chain((r) => fc.mixedCase(fc.constant(r)));
const lookAlike = fc.tuple(roleName, fc.nat(), fc.nat()).map(([r, at, pick]) => {
  const chars = [...r];
  const i = at % chars.length;
  const subs = LOOK_ALIKES[chars[i]!] ?? ['\uff41'];
  chars[i] = subs[pick % subs.length]!;
  return chars.join('');
});
// Invisible or combining additions: the name still reads "admin" on a screen.
const decorated = fc.tuple(roleName, fc.constantFrom('\u200b', '\u200d', '\u0301', '\u00a0', ' ', '\ufeff', '\u2060'), fc.boolean())
  .map(([r, mark, before]) => (before ? mark + r : r + mark));
const prototypeKey = fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype');
const freeName = fc.string({ minLength: 0, maxLength: 12, unit: 'grapheme' });
const groupName = fc.oneof(roleName, caseVariant, lookAlike, decorated, prototypeKey, freeName);
// What a map may send a group to: every role (peer and public are never a person's), and names that are no role.
const target = fc.constantFrom(...ROLES, 'root', 'Admin', 'ADMIN', '', 'admin ', '\u0430dmin');
// Object.fromEntries makes "__proto__" an own key like any other, as a hostile map would.
const roleMap = fc.array(fc.tuple(groupName, target), { maxLength: 8 }).map((e) => Object.fromEntries(e) as Record<string, string>);

/** The oracle, written apart from the code: each listed group that is an own key of the map, to a person role. */
function expected(map: Record<string, string>, groups: string[]): string[] {
  const out = new Set<string>();
  for (const g of groups) {
    if (g !== '' && Object.prototype.hasOwnProperty.call(map, g) && (PERSON_ROLES as readonly string[]).includes(map[g]!)) out.add(map[g]!);
  }
  return out.size ? [...out].sort() : ['resident'];
}

t.test('a list of groups gives exactly the mapped roles, resident by default', async (t) => {
  fc.assert(fc.property(roleMap, fc.array(fc.oneof(groupName, groupName.map((g) => `k:${g}`)), { maxLength: 10 }), (map, extra) => {
    // Half of the time draw groups from the map's own keys too, so that mapped names really occur.
    const keys = Object.keys(map);
    const groups = extra.map((g, i) => (g.startsWith('k:') && keys.length ? keys[i % keys.length]! : g));
    const got = rolesFromClaims({ rolesClaim: 'groups', roleMap: map }, { groups });
    return JSON.stringify(got) === JSON.stringify(expected(map, groups));
  }), { numRuns: 2000 });
});

t.test('with no map, no group name of any kind grants a role', async (t) => {
  fc.assert(fc.property(fc.array(groupName, { maxLength: 12 }), fc.boolean(), (groups, asString) => {
    const claim = asString ? groups.join(' ') : groups;
    return JSON.stringify(rolesFromClaims({ rolesClaim: 'groups', roleMap: {} }, { groups: claim })) === '["resident"]';
  }), { numRuns: 1000 });
  t.same(rolesFromClaims({ rolesClaim: 'groups', roleMap: {} }, { groups: [...ROLES] }), ['resident'], 'every role name, literally');
});

t.test('a separated string reads like the list of its names', async (t) => {
  const token = groupName.filter((g) => g !== '' && !/[\s,]/.test(g));
  fc.assert(fc.property(roleMap, fc.array(token, { maxLength: 8 }), fc.constantFrom(' ', ',', ', ', '  '), (map, groups, sep) => {
    const got = rolesFromClaims({ rolesClaim: 'groups', roleMap: map }, { groups: ` ${groups.join(sep)} ` });
    return JSON.stringify(got) === JSON.stringify(expected(map, groups));
  }), { numRuns: 1000 });
});

t.test('the claim itself: absent, of another type, or a prototype name grants nothing', async (t) => {
  const map = { 'asso-admins': 'admin' };
  for (const claims of [{}, { groups: 42 }, { groups: { 'asso-admins': true } }, { groups: [7, null, ['asso-admins']] }, { other: ['asso-admins'] }]) {
    t.same(rolesFromClaims({ rolesClaim: 'groups', roleMap: map }, claims), ['resident'], JSON.stringify(claims));
  }
  t.same(rolesFromClaims({ rolesClaim: 'constructor', roleMap: map }, {}), ['resident'], 'the claim name is read as an own key');
  t.same(rolesFromClaims({ rolesClaim: 'groups', roleMap: { '': 'admin' } }, { groups: ' x' }), ['resident'], 'an empty name is no group');
  t.same(rolesFromClaims({ rolesClaim: 'groups', roleMap: map }, { groups: ['asso-admins', 'admin'] }), ['admin'], 'the mapped group does grant');
});
