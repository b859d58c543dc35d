// The association's clockwork, run on cattery's upkeep timer: polls closed and counted when their time is up (and a
// passed decision applied), the dues gate, and the reminders. Each step is idempotent; one failing does not stop the
// others.
import type { AccountDeps } from '../accounts/accounts.js';
import type { Logger } from '../log.js';
import { duesGatePass } from './dues-gate.js';
import { closeDuePolls } from './polls.js';
import { queueReminders, sendReminders, type Mailer } from './reminders.js';

export interface UpkeepDeps { accounts: AccountDeps; mailer?: Mailer | undefined; publicUrl: string; log: Logger }

export async function governanceUpkeep(deps: UpkeepDeps): Promise<void> {
  const { db, catalog } = deps.accounts;
  const step = async (name: string, fn: () => unknown) => {
    try { await fn(); } catch (err) { deps.log.warn({ err, step: name }, 'governance upkeep step failed'); }
  };
  await step('polls', () => closeDuePolls({ db, catalog, log: deps.log }));
  await step('dues-gate', () => duesGatePass(deps.accounts));
  await step('reminders', async () => {
    queueReminders(db, deps.mailer !== undefined);
    if (deps.mailer) await sendReminders(db, deps.mailer, deps.publicUrl, deps.log);
  });
}
