// What a dues payment covers, for every day of several years (generated): a yearly payment buys at least until the
// end of its calendar year and never a mere quarter (from 1 October it runs to the end of the next year); a payment
// in days buys exactly that many days; a renewal starts the day after the period already paid, whatever the day it is
// received. And the day is the server's calendar day, not UTC's.
import t from 'tap';
import fc from 'fast-check';
import { addDays, coverage, LATE_IN_YEAR, today } from '../../src/governance/dues.js';

const dayNo = (d: string) => Date.parse(`${d}T00:00:00Z`) / 86_400_000;
const anyDay = fc.integer({ min: 0, max: 365 * 8 }).map((n) => addDays('2024-01-01', n));

t.test('yearly payments cover the calendar year, the next one too late in the year', async (t) => {
  fc.assert(fc.property(anyDay, (paidOn) => {
    const { from, until } = coverage({ period: 'year', periodDays: null }, paidOn, null);
    const y = Number(paidOn.slice(0, 4));
    const late = paidOn.slice(5) >= LATE_IN_YEAR;
    return from === paidOn && until === `${late ? y + 1 : y}-12-31` && dayNo(until) - dayNo(paidOn) >= 91;
  }), { numRuns: 2000, examples: [['2026-12-31'], ['2026-09-30'], ['2026-10-01'], ['2028-02-29']] });
  t.same(coverage({ period: 'year', periodDays: null }, '2026-12-31', null), { from: '2026-12-31', until: '2027-12-31' }, 'paid on 31 December: a year, not a day');
});

t.test('payments in days, and renewals that follow the period already paid', async (t) => {
  fc.assert(fc.property(anyDay, fc.integer({ min: 1, max: 800 }), fc.option(anyDay, { nil: null }), (paidOn, n, paidUntil) => {
    const c = coverage({ period: 'days', periodDays: n }, paidOn, paidUntil);
    const expectedFrom = paidUntil && paidUntil >= paidOn ? addDays(paidUntil, 1) : paidOn;
    return c.from === expectedFrom && dayNo(c.until) - dayNo(c.from) === n - 1;
  }), { numRuns: 2000 });
  fc.assert(fc.property(anyDay, anyDay, (paidOn, paidUntil) => {
    const c = coverage({ period: 'year', periodDays: null }, paidOn, paidUntil);
    return paidUntil >= paidOn ? c.from === addDays(paidUntil, 1) && c.until > paidUntil : c.from === paidOn;
  }), { numRuns: 2000 });
  t.pass('4000 generated payments');
});

t.test('today is the calendar day of the server\'s time zone', async (t) => {
  const prev = process.env.TZ;
  try {
    process.env.TZ = 'Europe/Paris';
    t.equal(today(new Date('2026-12-31T23:30:00Z')), '2027-01-01', '00:30 in Paris on 1 January is the new year');
    process.env.TZ = 'UTC';
    t.equal(today(new Date('2026-12-31T23:30:00Z')), '2026-12-31');
  } finally { if (prev === undefined) delete process.env.TZ; else process.env.TZ = prev; }
});
