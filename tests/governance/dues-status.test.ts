// Each member's dues status is their own: statusesOn reads every member's latest period in one query, and a
// subquery that does not name its tables compares the payments' ids with their own member ids (drizzle writes a
// one-table select's columns bare), so that every member got the latest payment of anyone. Generated payment days
// and orders of creation, checked against the status computed from each member's own payments alone.
import t from 'tap';
import fc from 'fast-check';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import { admit, applyForMembership } from '../../src/governance/members.js';
import { duesStatus, paidUntilOf, recordPayment, statusesOn, today } from '../../src/governance/dues.js';
import { upsertCategory } from '../../src/governance/settings.js';

t.test('every member gets the status of their own payments', async (t) => {
  fc.assert(fc.property(
    fc.array(fc.option(fc.integer({ min: 2019, max: Number(today().slice(0, 4)) }), { nil: null }), { minLength: 2, maxLength: 8 }),
    fc.boolean(),
    (years, freeFirst) => {
      const db = openDb(':memory:');
      applyMigrations(db);
      upsertCategory(db, { slug: 'normale', nameFr: 'Normale', nameEn: 'Normal', amountCents: 1000, period: 'year' }, 't');
      upsertCategory(db, { slug: 'libre', nameFr: 'Libre', nameEn: 'Free', amountCents: 0, period: 'year' }, 't');
      // Payments recorded in the reverse order of the members, so that ids never line up by chance.
      const ids = years.map((_, i) => {
        const m = applyForMembership(db, { kind: 'person', name: `M ${i}`, category: i === 0 && freeFirst ? 'libre' : 'normale' }, 't');
        admit(db, m.id, 't');
        return m.id;
      });
      [...years.entries()].reverse().forEach(([i, y]) => {
        if (y !== null) recordPayment(db, ids[i]!, { amountCents: 1000, method: 'cash', paidOn: `${y}-03-01` }, 't');
      });
      const statuses = statusesOn(db);
      for (const [i, id] of ids.entries()) {
        const s = statuses.get(id)!;
        const alone = duesStatus({ member: s.member, free: i === 0 && freeFirst, paidUntil: paidUntilOf(db, id), graceDays: 30, on: today() });
        if (s.status !== alone.status || s.until !== alone.until) return false;
      }
      db.$client.close();
      return true;
    }), { numRuns: 40 });
  t.pass('statusesOn agrees with each member\'s own payments');
});
