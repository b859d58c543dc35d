// Who may vote, computed twice: by the database for the tally (polls.ts eligibleCounts, one aggregate query) and by
// dues.ts duesStatus for each member (the pages, the dues gate). For generated members, payments, days and grace
// periods, both must name the same numbers per college, for every electorate.
import t from 'tap';
import fc from 'fast-check';
import { applyMigrations, openDb } from '../../src/db/connection.js';
import { addDays } from '../../src/governance/dues.js';
import { eligibleCounts, votingMembers } from '../../src/governance/polls.js';
import { colleges, duesCategories, duesPayments, governanceSettings, members } from '../../src/governance/schema.js';

const ON = '2026-06-15';
// A narrow window of days, so that the boundaries (the last day of a period, of a grace) are met often.
const day = fc.integer({ min: -30, max: 10 }).map((n) => addDays(ON, n));
const member = fc.record({
  status: fc.constantFrom('applicant', 'admitted', 'admitted', 'admitted', 'resigned', 'excluded'),
  board: fc.boolean(),
  college: fc.constantFrom(1, 2, 3),
  category: fc.constantFrom(null, 1, 2),
  admittedAt: fc.option(day, { nil: null }),
  payments: fc.array(day, { maxLength: 3 }),
});

t.test('the tally\'s electorate equals the members whose dues status is not lapsed', async (t) => {
  let checked = 0;
  fc.assert(fc.property(fc.array(member, { maxLength: 40 }), fc.integer({ min: 0, max: 15 }), day, (list, grace, on) => {
    const db = openDb(':memory:');
    try {
      applyMigrations(db);
      db.update(governanceSettings).set({ graceDays: grace }).run();
      for (const id of [1, 2, 3]) db.insert(colleges).values({ id, slug: `c${id}`, nameFr: 'C', nameEn: 'C', weightPct: null }).run();
      db.insert(duesCategories).values({ id: 1, slug: 'libre', nameFr: 'Libre', nameEn: 'Free', amountCents: 0, period: 'year' }).run();
      db.insert(duesCategories).values({ id: 2, slug: 'normale', nameFr: 'N', nameEn: 'N', amountCents: 1500, period: 'year' }).run();
      for (const m of list) {
        const row = db.insert(members).values({
          kind: 'person', name: 'x', status: m.status as 'admitted', board: m.board, collegeId: m.college, categoryId: m.category,
          admittedAt: m.admittedAt ? `${m.admittedAt}T10:00:00.000Z` : null,
        }).returning().get();
        for (const until of m.payments) {
          db.insert(duesPayments).values({ memberId: row.id, categoryId: 2, amountCents: 1500, method: 'cash', paidOn: until, coversFrom: until, coversUntil: until, recordedBy: 't' }).run();
        }
      }
      for (const electorate of ['members', 'board'] as const) {
        const bySql = eligibleCounts(db, electorate, on);
        const byStatus = new Map<number | null, number>();
        for (const m of votingMembers(db, electorate, on)) byStatus.set(m.collegeId, (byStatus.get(m.collegeId) ?? 0) + 1);
        const norm = (x: Map<number | null, number>) => [...x].filter(([, n]) => n > 0).sort((a, b) => Number(a[0]) - Number(b[0]));
        if (JSON.stringify(norm(bySql)) !== JSON.stringify(norm(byStatus))) throw new Error(`${electorate}: sql ${JSON.stringify(norm(bySql))} vs status ${JSON.stringify(norm(byStatus))}`);
      }
      checked++;
    } finally { db.$client.close(); }
  }), { numRuns: 150 });
  t.pass(`${checked} generated associations: the same electorate both ways`);
});
