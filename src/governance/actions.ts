// Decisions that act: what a passed proposal may do to the hoster, from a fixed list. Each action calls the same
// domain function an admin's request calls (settings.ts, orchestrator/servers.ts), with the decision as the actor,
// so a decision can do nothing an admin could not, and is checked the same way.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Catalog } from '../catalog/load.js';
import type { Db } from '../db/connection.js';
import { fail } from '../errors.js';
import { EnergyInput } from '../metering/energy-input.js';
import { listServers, setServerEnergy } from '../orchestrator/servers.js';
import { QUOTA_MAX_MB } from '../accounts/accounts.js';
import { setServiceSettings, updateSettings } from './settings.js';

const Service = Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' });
export const Action = Type.Union([
  Type.Object({ type: Type.Literal('service.signup'), service: Service, open: Type.Boolean() }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('service.membersOnly'), service: Service, membersOnly: Type.Boolean() }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('service.defaultQuota'), service: Service, quotaMb: Type.Integer({ minimum: 1, maximum: QUOTA_MAX_MB }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('dues.graceDays'), days: Type.Integer({ minimum: 0, maximum: 365 }) }, { additionalProperties: false }),
  // A power curve and a budget, not a meter: a meter is a URL cattery fetches from inside the server's network, an
  // admin's setting; the server's own meter is kept when a decision changes the rest (applyAction).
  Type.Object({ type: Type.Literal('server.energy'), server: Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' }), energy: Type.Omit(EnergyInput, ['meter'], { additionalProperties: false }) }, { additionalProperties: false }),
]);
export type Action = Static<typeof Action>;
export const ACTION_TYPES = ['service.signup', 'service.membersOnly', 'service.defaultQuota', 'dues.graceDays', 'server.energy'] as const;

export interface ActionDeps { db: Db; catalog: Catalog }

/** Refuses, when the proposal is made, an action that could not apply: unknown kind, service or server. */
export function checkAction(deps: ActionDeps, action: unknown): Action {
  if (!Value.Check(Action, action)) {
    const first = [...Value.Errors(Action, action)][0];
    throw fail('CATTERY_ERR_VALIDATION', `action: ${first ? `${first.path || '/'} ${first.message}` : 'not one of ' + ACTION_TYPES.join(', ')}`);
  }
  if ('service' in action && !deps.catalog.services.has(action.service)) throw fail('CATTERY_ERR_UNKNOWN_SERVICE', action.service);
  if (action.type === 'server.energy') {
    if (!listServers(deps.db).some((s) => s.name === action.server)) throw fail('CATTERY_ERR_VALIDATION', `action: no server "${action.server}"`);
    if (action.energy.maxWatts < action.energy.idleWatts) throw fail('CATTERY_ERR_VALIDATION', 'action: maxWatts must be at least idleWatts');
  }
  return action;
}

/** Applies a passed decision's action, as `decision:<id>`. Throws what the domain throws: the caller records it on
 * the decision, and an admin may retry. */
export function applyAction(deps: ActionDeps, decisionId: number, action: Action): void {
  const actor = `decision:${decisionId}`;
  switch (action.type) {
    case 'service.signup': setServiceSettings(deps.db, deps.catalog, action.service, { openForSignup: action.open }, actor, decisionId); return;
    case 'service.membersOnly': setServiceSettings(deps.db, deps.catalog, action.service, { membersOnly: action.membersOnly }, actor, decisionId); return;
    case 'service.defaultQuota': setServiceSettings(deps.db, deps.catalog, action.service, { defaultQuotaMb: action.quotaMb }, actor, decisionId); return;
    case 'dues.graceDays': updateSettings(deps.db, { graceDays: action.days }, actor, decisionId); return;
    case 'server.energy': {
      const meter = listServers(deps.db).find((x) => x.name === action.server)?.energy?.meter;
      setServerEnergy(deps.db, action.server, { ...action.energy, ...(meter ? { meter } : {}) });
      return;
    }
  }
}

/** What an action sets, so that two decisions on the same setting can be told apart from two on different ones. */
export function actionTarget(a: Action): string {
  switch (a.type) {
    case 'service.signup': case 'service.membersOnly': case 'service.defaultQuota': return `${a.type}:${a.service}`;
    case 'server.energy': return `${a.type}:${a.server}`;
    case 'dues.graceDays': return a.type;
  }
}

/** The action in a sentence, for the register and the ballot page. */
export function describeAction(a: Action, lang: 'fr' | 'en'): string {
  const fr = lang === 'fr';
  switch (a.type) {
    case 'service.signup': return fr ? `${a.open ? 'Ouvrir' : 'Fermer'} l’inscription au service ${a.service}` : `${a.open ? 'Open' : 'Close'} sign-up to the ${a.service} service`;
    case 'service.membersOnly': return fr ? `Service ${a.service} ${a.membersOnly ? 'réservé aux membres' : 'ouvert à tous'}` : `The ${a.service} service ${a.membersOnly ? 'for members only' : 'open to all'}`;
    case 'service.defaultQuota': return fr ? `Espace par défaut du service ${a.service} : ${a.quotaMb} Mo` : `Default quota of the ${a.service} service: ${a.quotaMb} MB`;
    case 'dues.graceDays': return fr ? `Délai de grâce des cotisations : ${a.days} jours` : `Dues grace period: ${a.days} days`;
    case 'server.energy': return fr ? `Courbe de puissance du serveur ${a.server} : ${a.energy.idleWatts}–${a.energy.maxWatts} W${a.energy.monthlyBudgetKwh !== undefined ? `, budget ${a.energy.monthlyBudgetKwh} kWh par mois` : ''}`
      : `Power curve of server ${a.server}: ${a.energy.idleWatts}–${a.energy.maxWatts} W${a.energy.monthlyBudgetKwh !== undefined ? `, budget ${a.energy.monthlyBudgetKwh} kWh a month` : ''}`;
  }
}
