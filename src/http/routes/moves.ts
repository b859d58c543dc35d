// Residents' moves between catteries over HTTP (docs/migration-format.md). Two audiences:
// - the peer pulling a move (the destination): manifest, parts with HTTP Range, receipt. These routes are public in
//   the permission table because no login or token applies: each request is authenticated by the JWS it carries
//   (signed by the key we pinned for that peer, with the code's hash), checked by the domain before anything is read;
// - our residents: start a move to a peer (a mediator or admin for a person, with the consent they recorded), list,
//   confirm after the receipt (the accounts are then deleted here), cancel; and a newcomer arriving with a code.
import fs from 'node:fs';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { fail } from '../../errors.js';
import type { Federation } from '../../federation/federation.js';
import { arrive, MOVES_API } from '../../federation/moves-destination.js';
import { REQUEST_HEADER } from '../../federation/move-protocol.js';
import {
  acceptReceipt, authenticateMoveRequest, cancelMove, confirmMove, movesOf, stagedPart, startMove,
} from '../../federation/moves-source.js';
import type { FedMoveOut } from '../../federation/schema.js';
import { PASSWORD_MAX, PASSWORD_MIN } from '../../accounts/accounts.js';
import { mediatorMayActFor } from '../../identity/roles.js';
import { findUser } from '../../identity/users.js';
import { clientKey } from '../proxy-trust.js';
import { ErrorReply } from '../error-handler.js';
import { JOSE } from './federation.js';

const MoveReply = Type.Object({
  id: Type.String(), peer: Type.String(), state: Type.String(), expiresAt: Type.String(), startedBy: Type.String(),
  parts: Type.Array(Type.Object({ service: Type.String(), username: Type.String(), bytes: Type.Integer(), sha256: Type.String() })),
  receipt: Type.Boolean(),
});
const moveReply = (m: FedMoveOut) => ({
  id: m.id, peer: m.peerUrl, state: m.state, expiresAt: m.expiresAt, startedBy: m.startedBy, receipt: !!m.receiptJws,
  parts: m.parts.map((p) => ({ service: p.service, username: p.username, bytes: p.bytes, sha256: p.sha256 })),
});
const MoveId = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{22}$' }) });
/** A mediator or administrator names the person; a resident (signed in) acts for themself. */
const ForPerson = Type.Object({ userId: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 31 })) }, { additionalProperties: false });

/** `bytes=N-` or `bytes=N-M`, one range (RFC 9110 §14.1.2); anything else is served whole. */
function rangeOf(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d{1,15})-(\d{0,15})$/.exec(header ?? '');
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** The person whose move it is: oneself, or, for an administrator, anyone; for a mediator, a resident only (a
 * mediator otherwise only ever makes residents: moving an administrator's accounts away, or confirming their
 * deletion, is no mediator's to do). */
const personOf = (f: Federation, req: FastifyRequest, userId: number | undefined): number => {
  const p = req.principal!;
  if (userId !== undefined && userId !== p.userId) {
    // For another person: a mediator or an administrator, who says how the resident agreed.
    if (p.roles.includes('admin')) return userId;
    if (!p.roles.includes('mediator')) throw fail('CATTERY_ERR_FORBIDDEN', 'a move for another person');
    const person = findUser(f.moves.db, userId);
    if (!person) throw fail('CATTERY_ERR_NOT_FOUND', `No person ${userId}`);
    if (!mediatorMayActFor(person.roles)) throw fail('CATTERY_ERR_FORBIDDEN', 'a mediator acts for residents only: ask an administrator');
    return userId;
  }
  if (p.userId === undefined) throw fail('CATTERY_ERR_VALIDATION', 'say whose accounts move (userId)');
  return p.userId;
};

/** Starts per hour and per caller (the principal, else the address): each stages a full export of a person's accounts
 * on disk, as the mediator's page bounds it. */
const startLimit = (f: Federation) => ({ max: f.documents.config.signupPerHour, timeWindow: 3_600_000, keyGenerator: (req: FastifyRequest) => req.principal?.id ?? clientKey(req.ip) });
/** One throttle per client for the arrival page and the arrival API together (both make cattery fetch from a peer
 * and may make a person), as the sign-up: a route's own `rateLimit` config would give each route a bucket of its own
 * (@fastify/rate-limit keeps a store per route), so one limiter is made in app.ts and both routes call it. */
export type ArrivalLimit = (req: FastifyRequest) => Promise<{ isAllowed: true } | { isAllowed: false; isExceeded: boolean; ttlInSeconds: number }>;
export const arrivalThrottle = (limit: ArrivalLimit) => async (req: FastifyRequest): Promise<void> => {
  const r = await limit(req);
  if (!r.isAllowed && r.isExceeded) throw fail('CATTERY_ERR_THROTTLED', String(r.ttlInSeconds));
};

export const moveRoutes: FastifyPluginAsyncTypebox<{ federation: Federation; arrivalLimit: ArrivalLimit }> = async (app, { federation: f, arrivalLimit }) => {
  const d = f.moves;
  const peerRequest = (req: FastifyRequest, o: { receipt?: boolean } = {}) => authenticateMoveRequest(d, req.headers[REQUEST_HEADER] as string | undefined, o);

  app.get(`${MOVES_API}/manifest`, {
    schema: { tags: ['federation'], summary: 'A move\'s signed manifest, for the destination it was started for (signed request)', response: { 403: ErrorReply } },
  }, async (req, r) => {
    const { move } = await peerRequest(req);
    return r.header('cache-control', 'no-store').type(JOSE).send(move.manifestJws);
  });

  app.get(`${MOVES_API}/parts/:index`, {
    schema: {
      tags: ['federation'], summary: 'One part of a move (the account\'s export tar), with HTTP Range to resume (signed request)',
      params: Type.Object({ index: Type.Integer({ minimum: 0, maximum: 63 }) }), response: { 200: Type.Unknown(), 206: Type.Unknown(), 403: ErrorReply, 404: ErrorReply, 416: Type.Unknown() },
    },
  }, async (req, r) => {
    const { move } = await peerRequest(req);
    const { file, bytes } = stagedPart(d, move, req.params.index);
    r.header('cache-control', 'no-store').header('accept-ranges', 'bytes').type('application/x-tar');
    const range = rangeOf(req.headers.range, bytes);
    if (range === 'unsatisfiable') return r.code(416).header('content-range', `bytes */${bytes}`).send();
    if (!range) return r.header('content-length', bytes).send(fs.createReadStream(file));
    return r.code(206).header('content-range', `bytes ${range.start}-${range.end}/${bytes}`).header('content-length', range.end - range.start + 1)
      .send(fs.createReadStream(file, { start: range.start, end: range.end }));
  });

  app.post(`${MOVES_API}/receipt`, {
    schema: {
      tags: ['federation'], summary: 'The destination\'s signed receipt of the checksums it verified (signed request)',
      body: Type.Object({ receipt: Type.String({ minLength: 1, maxLength: 64 * 1024 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ state: Type.String() }), 403: ErrorReply },
    },
  }, async (req) => {
    const { peer, move } = await peerRequest(req, { receipt: true });
    return { state: (await acceptReceipt(d, peer, move, req.body.receipt)).state };
  });

  app.post('/api/moves', {
    config: { rateLimit: startLimit(f) },
    schema: {
      tags: ['federation'], summary: 'Start moving a person\'s accounts to an active peer: the transfer code is in this answer only',
      body: Type.Object({
        peerId: Type.Integer({ minimum: 1, maximum: 2 ** 31 }),
        userId: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 31 })),
        consent: Type.Optional(Type.String({ minLength: 10, maxLength: 500 })),
      }, { additionalProperties: false }),
      response: { 201: Type.Object({ move: MoveReply, code: Type.String() }), 403: ErrorReply, 404: ErrorReply, 409: ErrorReply },
    },
  }, async (req, r) => {
    const userId = personOf(f, req, req.body.userId);
    if (userId !== req.principal!.userId && !req.body.consent) throw fail('CATTERY_ERR_VALIDATION', 'consent: how the resident agreed to this move (a mediator acts with their consent)');
    const { move, code } = await startMove(d, { userId, peerId: req.body.peerId, actor: req.principal!.id, ...(req.body.consent ? { consent: req.body.consent } : {}) });
    return r.code(201).send({ move: moveReply(move), code });
  });

  app.get('/api/moves', {
    schema: { tags: ['federation'], summary: 'A person\'s moves', querystring: ForPerson, response: { 200: Type.Array(MoveReply) } },
  }, async (req) => movesOf(d.db, personOf(f, req, req.query.userId)).map(moveReply));

  app.post('/api/moves/:id/confirm', {
    schema: {
      tags: ['federation'], summary: 'Confirm a move the destination acknowledged: the accounts are deleted here',
      params: MoveId, body: Type.Optional(Type.Object({
        userId: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 31 })),
        consent: Type.Optional(Type.String({ minLength: 10, maxLength: 500 })),
      }, { additionalProperties: false })),
      response: { 200: MoveReply, 403: ErrorReply, 404: ErrorReply, 409: ErrorReply },
    },
  }, async (req) => {
    const userId = personOf(f, req, req.body?.userId);
    // For another person, the deletion is done with their consent, recorded as at the start: it goes to the journal
    // of every account deleted (the actor of each delete).
    if (userId !== req.principal!.userId && !req.body?.consent) throw fail('CATTERY_ERR_VALIDATION', 'consent: how the resident asked for their accounts here to be deleted');
    const actor = userId === req.principal!.userId ? req.principal!.id : `${req.principal!.id} with consent: ${req.body!.consent!.replace(/[\u0000-\u001f\u007f]/g, ' ')}`;
    return moveReply(await confirmMove(d, req.params.id, userId, actor));
  });

  app.post('/api/moves/:id/cancel', {
    schema: { tags: ['federation'], summary: 'Cancel a move before its receipt: the code opens nothing, the accounts stay', params: MoveId, body: Type.Optional(ForPerson), response: { 200: MoveReply, 404: ErrorReply, 409: ErrorReply } },
  }, async (req) => moveReply(cancelMove(d, req.params.id, personOf(f, req, req.body?.userId))));

  app.post('/api/moves/arrivals', {
    // Public, and each call makes cattery fetch from a peer: bounded per client like a sign-up (a code is 160 bits,
    // so this is not about guessing one; it keeps anyone from using cattery to knock on its peers).
    onRequest: arrivalThrottle(arrivalLimit),
    schema: {
      tags: ['federation'], summary: 'Arrive from a peer with its transfer code: pulled, verified, imported, acknowledged',
      body: Type.Object({
        source: Type.String({ minLength: 8, maxLength: 300 }), code: Type.String({ minLength: 32, maxLength: 64 }),
        password: Type.String({ minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX }),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ state: Type.String(), accounts: Type.Array(Type.Object({ service: Type.String(), username: Type.String() })) }), 403: ErrorReply, 409: ErrorReply, 413: ErrorReply },
    },
  }, async (req) => {
    const r = await arrive(d, req.body);
    return { state: r.move.state, accounts: r.accounts.map((a) => ({ service: a.service, username: a.username })) };
  });
};
