// Dues-gated services (ChatonsInfos' `Member` registration): when a member's dues lapse past the grace period, their
// accounts in the services the association keeps for members are suspended through the account operations; a
// payment resumes them. Level-triggered like the reconciler: each pass compares who should be held with who is, so
// it is idempotent, and a suspension that cannot be applied now is left pending for the account timer. Never a
// deletion. Only the accounts this pass suspended (dues_holds) are ever resumed by it.
import { and, eq, gte, inArray, isNotNull, ne, or, sql } from 'drizzle-orm';
import { accountsOfUser, changeAccount, type AccountDeps } from '../accounts/accounts.js';
import { accounts, instances, operations } from '../db/schema.js';
import { addDays, paidUntilOf, statusesOn, today } from './dues.js';
import { record } from './journal.js';
import { getSettings, serviceSettingsMap } from './settings.js';
import { duesHolds, governanceJournal, members, type Member } from './schema.js';

export const GATE_ACTOR = 'governance:dues';

export interface GateOutcome { suspended: string[]; resumed: string[]; failed: string[] }

/** Services kept for members (the association's settings). */
export function gatedServices(deps: Pick<AccountDeps, 'db'>): Set<string> {
  return new Set([...serviceSettingsMap(deps.db)].filter(([, s]) => s.membersOnly).map(([id]) => id));
}

/** The pass under way for each database: passes run one after the other. Two passes interleaved at their awaits
 * (the timer's, and a payment's or a settings change's) would each act on what it read before the other wrote: a
 * payment's pass finding nothing to resume while the timer's pass, which read the member as lapsed, finishes
 * suspending the account, which then stays suspended with no hold to resume it. */
const passes = new WeakMap<object, Promise<unknown>>();

export function duesGatePass(deps: AccountDeps, on = today(), onlyMember?: number): Promise<GateOutcome> {
  const before = passes.get(deps.db) ?? Promise.resolve();
  const pass = before.then(() => gatePass(deps, on, onlyMember));
  passes.set(deps.db, pass.catch(() => undefined));
  return pass;
}

/** An admin resumed by hand an account the gate held: their choice stands for this lapse (the same end of grace);
 * a payment and a later lapse start over. */
function waived(deps: Pick<AccountDeps, 'db'>, memberId: number, accountId: number, graceUntil: string | null): boolean {
  return !!deps.db.select({ id: governanceJournal.id }).from(governanceJournal).where(and(
    eq(governanceJournal.kind, 'dues.waived'), eq(governanceJournal.memberId, memberId),
    sql`json_extract(${governanceJournal.detail}, '$.accountId') = ${accountId}`,
    sql`json_extract(${governanceJournal.detail}, '$.graceUntil') is ${graceUntil}`,
  )).get();
}

/** Former members (resigned, excluded) keep what they paid for: their members-only accounts are held once their last
 * paid period (or their leaving, if later) and the grace are over, as a lapsed member's would be. Otherwise resigning
 * just before a lapse kept a members-only service for good. */
function endedPastGrace(db: AccountDeps['db'], on: string): { member: Member; graceUntil: string }[] {
  const grace = getSettings(db).graceDays;
  return db.select().from(members).where(and(inArray(members.status, ['resigned', 'excluded']), isNotNull(members.userId))).all().flatMap((m) => {
    const paid = paidUntilOf(db, m.id);
    const left = (m.leftAt ?? m.appliedAt).slice(0, 10);
    const graceUntil = addDays(paid !== null && paid > left ? paid : left, grace);
    return on > graceUntil ? [{ member: m, graceUntil }] : [];
  });
}

/** Read again just before a suspension: a payment recorded while the pass awaited an earlier account is seen. */
function stillGated(db: AccountDeps['db'], on: string, memberId: number): boolean {
  const st = statusesOn(db, on, [memberId]).get(memberId);
  if (st) return st.status === 'lapsed';
  return endedPastGrace(db, on).some((e) => e.member.id === memberId);
}

async function gatePass(deps: AccountDeps, on: string, onlyMember: number | undefined): Promise<GateOutcome> {
  const { db } = deps;
  const out: GateOutcome = { suspended: [], resumed: [], failed: [] };
  const gated = gatedServices(deps);
  const statuses = statusesOn(db, on);
  const held = new Set(db.select({ id: duesHolds.accountId }).from(duesHolds).all().map((r) => r.id));

  // Suspend: a member past the grace (or a former member past their paid period and grace), with an active account
  // in a members-only service not held yet.
  const candidates = [...[...statuses.values()].filter((s) => s.status === 'lapsed'), ...endedPastGrace(db, on)];
  for (const s of candidates) {
    if (s.member.userId === null) continue;
    if (onlyMember !== undefined && s.member.id !== onlyMember) continue;
    for (const { account, instance } of accountsOfUser(db, s.member.userId)) {
      if (!gated.has(instance.service) || held.has(account.id) || account.state !== 'active') continue;
      if (waived(deps, s.member.id, account.id, s.graceUntil)) continue;
      // Read again: a payment recorded while this pass awaited an earlier account's suspension is seen here.
      if (!stillGated(db, on, s.member.id)) continue;
      const name = `${instance.slug}/${account.username}`;
      // The hold is written first: a crash between the two leaves an account held and active, which the next pass
      // sees (held, member lapsed) and suspends; the reverse would leave it suspended and forgotten.
      db.insert(duesHolds).values({ accountId: account.id, memberId: s.member.id }).onConflictDoNothing().run();
      try {
        await changeAccount(deps, instance.slug, account.username, { suspended: true }, GATE_ACTOR);
        record(db, { actor: GATE_ACTOR, kind: 'dues.suspend', memberId: s.member.id, detail: { account: name, graceUntil: s.graceUntil } });
        out.suspended.push(name);
      } catch (err) {
        db.delete(duesHolds).where(eq(duesHolds.accountId, account.id)).run();
        record(db, { actor: GATE_ACTOR, kind: 'dues.suspend.failed', memberId: s.member.id, detail: { account: name, error: (err as Error).message } });
        out.failed.push(name);
      }
    }
  }

  // Held accounts still lapsed stay suspended: a pass retries one whose suspension is still pending. Resume those
  // whose member is current or in grace again, or whose service is no longer for members only.
  // A hold is judged by the account's owner's membership as it is now: a former member held for lapsed dues who joins
  // again and pays has a new member record, and the hold (made under the old one) must follow it.
  const byUser = new Map([...statuses.values()].filter((s) => s.member.userId !== null).map((s) => [s.member.userId!, s]));
  const onlyUser = onlyMember !== undefined ? statuses.get(onlyMember)?.member.userId ?? null : null;
  const holds = db.select({ hold: duesHolds, account: accounts, instance: instances, member: members }).from(duesHolds)
    .innerJoin(accounts, eq(accounts.id, duesHolds.accountId)).innerJoin(instances, eq(instances.id, accounts.instanceId))
    .innerJoin(members, eq(members.id, duesHolds.memberId))
    .where(onlyMember !== undefined ? or(eq(duesHolds.memberId, onlyMember), onlyUser !== null ? eq(accounts.userId, onlyUser) : undefined) : undefined).all();
  for (const h of holds) {
    const st = (h.account.userId !== null ? byUser.get(h.account.userId) : undefined) ?? statuses.get(h.member.id);
    const name = `${h.instance.slug}/${h.account.username}`;
    const stillHeld = gated.has(h.instance.service) && (st === undefined ? h.member.status !== 'admitted' : st.status === 'lapsed');
    if (stillHeld) {
      if (h.account.state === 'active' && !h.account.pending?.suspended) {
        // Active with a hold: resumed by hand meanwhile, or a crash between the hold and the suspension. The hold goes.
        // A resumption someone else did (the accounts' journal says so) is an admin's choice: it stands until the
        // member's dues change (a payment, then a new lapse), through a waiver the suspension above reads. Without
        // one (the crash), the next pass suspends the account again.
        db.delete(duesHolds).where(eq(duesHolds.accountId, h.account.id)).run();
        const byHand = db.select({ id: operations.id }).from(operations).where(and(
          eq(operations.instanceSlug, h.instance.slug), eq(operations.kind, 'account.resume'), eq(operations.status, 'done'),
          ne(operations.actor, GATE_ACTOR), sql`json_extract(${operations.detail}, '$.username') = ${h.account.username}`,
          gte(operations.createdAt, h.hold.since))).get();
        if (byHand && st) record(db, { actor: GATE_ACTOR, kind: 'dues.waived', memberId: st.member.id, detail: { account: name, accountId: h.account.id, graceUntil: st.graceUntil } });
      }
      continue;
    }
    try {
      if (h.account.state === 'suspended' || h.account.pending?.suspended) await changeAccount(deps, h.instance.slug, h.account.username, { suspended: false }, GATE_ACTOR);
      db.delete(duesHolds).where(eq(duesHolds.accountId, h.account.id)).run();
      record(db, { actor: GATE_ACTOR, kind: 'dues.resume', memberId: h.member.id, detail: { account: name } });
      out.resumed.push(name);
    } catch (err) {
      record(db, { actor: GATE_ACTOR, kind: 'dues.resume.failed', memberId: h.member.id, detail: { account: name, error: (err as Error).message } });
      out.failed.push(name);
    }
  }
  if (out.suspended.length || out.resumed.length || out.failed.length) deps.log.info(out, 'dues gate');
  return out;
}

/** A member's accounts that a lapse would suspend, and when: what "my services" announces during the grace. */
export function pendingSuspension(deps: Pick<AccountDeps, 'db'>, memberId: number, on = today()) {
  const s = statusesOn(deps.db, on, [memberId]).get(memberId);
  if (!s || s.status !== 'grace' || s.member.userId === null) return null;
  const gated = gatedServices(deps);
  const list = accountsOfUser(deps.db, s.member.userId).filter(({ instance, account }) => gated.has(instance.service) && account.state === 'active');
  return list.length ? { on: s.graceUntil, services: list.map(({ instance }) => instance.service) } : null;
}
