// The roles a person or a token can hold. Which role may call which route is the table in http/permissions.ts.
export const ROLES = ['public', 'resident', 'mediator', 'admin', 'city', 'member', 'board', 'peer', 'agent'] as const;
export type Role = (typeof ROLES)[number];
/** Roles a person can be given (public is everyone; peer is another hoster, by signature, not by login; agent is a
 * server's `cattery agent`, by the signature of the key enrolled for that server, never a login or a token). */
/** `member` and `board` also come from a person's membership (governance/members.ts membershipRoles): an admitted
 * member is a member, one who sits on the board is board, for as long as that lasts. */
export const PERSON_ROLES = ['resident', 'mediator', 'admin', 'city', 'member', 'board'] as const satisfies readonly Role[];
export type PersonRole = (typeof PERSON_ROLES)[number];

export interface Principal {
  /** `user:<login>`, `token:<id>` or `operator`: what the journal records as the actor. */
  id: string;
  roles: Role[];
  userId?: number;
  sessionId?: string;
}

export const isPersonRole = (r: string): r is PersonRole => (PERSON_ROLES as readonly string[]).includes(r);

/** Whom a mediator may act for (sign up, move, confirm a move's deletion): a person whose roles give power over no
 * one else. A mediator helps residents (a member votes, which is no power over anyone); an administrator, another
 * mediator, the city or the board are acted for only by an administrator. */
export const mediatorMayActFor = (roles: readonly string[]): boolean => roles.every((r) => r === 'resident' || r === 'member');
