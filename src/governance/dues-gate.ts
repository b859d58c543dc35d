// Dues-gated services (ChatonsInfos' `Member` registration): when a member's dues lapse past the grace period, their
// accounts in the services the association keeps for members are suspended through the account operations; a
// payment resumes them. Level-triggered like the reconciler: each pass compares who should be held with who is, so
// it is idempotent, and a suspension that cannot be applied now is left pending for the account timer. Never a
// deletion. Only the accounts this pass suspended (dues_holds) are ever resumed by it.
import { and, eq } from 'drizzle-orm';
import { accountsOfUser, changeAccount, type AccountDeps } from '../accounts/accounts.js';
import { accounts, instances } from '../db/schema.js';
import { statusesOn, today } from './dues.js';
import { record } from './journal.js';
import { serviceSettingsMap } from './settings.js';
import { duesHolds, members } from './schema.js';

export const GATE_ACTOR = 'governance:dues';

export interface GateOutcome { suspended: string[]; resumed: string[]; failed: string[] }

/** Services kept for members (the association's settings). */
export function gatedServices(deps: Pick<AccountDeps, 'db'>): Set<string> {
  return new Set([...serviceSettingsMap(deps.db)].filter(([, s]) => s.membersOnly).map(([id]) => id));
}

export async function duesGatePass(deps: AccountDeps, on = today(), onlyMember?: number): Promise<GateOutcome> {
  const { db } = deps;
  const out: GateOutcome = { suspended: [], resumed: [], failed: [] };
  const gated = gatedServices(deps);
  const statuses = statusesOn(db, on);
  const held = new Set(db.select({ id: duesHolds.accountId }).from(duesHolds).all().map((r) => r.id));

  // Suspend: an admitted member past the grace, with an active account in a members-only service not held yet.
  for (const s of statuses.values()) {
    if (s.status !== 'lapsed' || s.member.userId === null) continue;
    if (onlyMember !== undefined && s.member.id !== onlyMember) continue;
    for (const { account, instance } of accountsOfUser(db, s.member.userId)) {
      if (!gated.has(instance.service) || held.has(account.id) || account.state !== 'active') continue;
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
  const holds = db.select({ hold: duesHolds, account: accounts, instance: instances, member: members }).from(duesHolds)
    .innerJoin(accounts, eq(accounts.id, duesHolds.accountId)).innerJoin(instances, eq(instances.id, accounts.instanceId))
    .innerJoin(members, eq(members.id, duesHolds.memberId))
    .where(onlyMember !== undefined ? and(eq(duesHolds.memberId, onlyMember)) : undefined).all();
  for (const h of holds) {
    const st = statuses.get(h.member.id);
    const name = `${h.instance.slug}/${h.account.username}`;
    const stillHeld = gated.has(h.instance.service) && (st === undefined ? h.member.status !== 'admitted' : st.status === 'lapsed');
    if (stillHeld) {
      if (h.account.state === 'active' && !h.account.pending?.suspended) {
        // Resumed by hand meanwhile: an admin's choice stands; the hold goes, and the next pass may hold it again.
        db.delete(duesHolds).where(eq(duesHolds.accountId, h.account.id)).run();
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
