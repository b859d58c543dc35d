// The people's pages of a move between hosters (docs/migration-format.md):
// - source side: on "my services" a resident starts a move of their own accounts to a peer, gets the code once (its
//   own page, large, to copy by hand or read aloud), then confirms (the accounts go here) or cancels; a mediator does
//   the same for a resident, with the resident's consent recorded (who, when, terms version) as at a sign-up;
// - destination side: "I am moving from another hoster" next to the sign-up: the source (one of our active peers)
//   and the code; the bundle is pulled, checked and imported (moves-destination.ts), the person is made here with the
//   password they choose, and signed in.
// Every action goes through the same domain functions as the API (routes/moves.ts); a person only ever names a
// move of their own (the domain answers "no such move" for another's).
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PASSWORD_MAX, PASSWORD_MIN } from '../../accounts/accounts.js';
import { fail, isCatteryError } from '../../errors.js';
import type { Federation } from '../../federation/federation.js';
import { normalizeCode } from '../../federation/move-protocol.js';
import { arriveAsPerson } from '../../federation/moves-destination.js';
import { cancelMove, confirmMove, startMove } from '../../federation/moves-source.js';
import { listPeers } from '../../federation/peers.js';
import { createSession, endSession } from '../../identity/sessions.js';
import { mediatorMayActFor } from '../../identity/roles.js';
import { findByLogin, findUser } from '../../identity/users.js';
import { cookieOptions } from '../cookies.js';
import type { MessageKey } from '../i18n.js';
import { clientKey } from '../proxy-trust.js';
import { arrivalThrottle, type ArrivalLimit } from '../routes/moves.js';
import { sessionPolicy } from './deps.js';
import { me } from './me.js';
import { START_REFUSALS, moveSection, refusalShown, movingServices, peersFor, whenOf, type MovePeer } from './move-view.js';
import { langOf } from './render.js';

const page = { page: true } as const;
const Csrf = { _csrf: Type.Optional(Type.String({ maxLength: 200 })) };
const MoveId = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_-]{22}$' }) });
const UserId = Type.String({ pattern: '^[1-9][0-9]{0,9}$' });

function refusalOf(err: unknown): (typeof START_REFUSALS)[number] {
  if (!isCatteryError(err)) throw err;
  if (err.code === 'CATTERY_ERR_CONFLICT' && /already under way/.test(err.message)) return 'busy';
  if (err.code === 'CATTERY_ERR_CONFLICT' && /no account/.test(err.message)) return 'nothing';
  if (err.code === 'CATTERY_ERR_CONFLICT' || err.code === 'CATTERY_ERR_NOT_FOUND') return 'peer';
  if (err.code === 'CATTERY_ERR_BUSY' || err.code === 'CATTERY_ERR_INSUFFICIENT_STORAGE') return 'later';
  if (err.statusCode >= 500) throw err;
  return 'failed';
}

/** What a person arriving is told when the move did not go through, by what went wrong. */
function arrivalError(err: unknown): { field: string; key: MessageKey; params?: Record<string, string> } {
  if (!isCatteryError(err)) throw err;
  const m = err.message;
  if (err.code === 'CATTERY_ERR_VALIDATION' && /^password/.test(m)) return { field: 'password', key: 'move.err.password.control' };
  if (err.code === 'CATTERY_ERR_VALIDATION') return { field: 'code', key: 'move.err.format' };
  if (err.code === 'CATTERY_ERR_MOVE_REFUSED') {
    if (/approves each newcomer by hand/.test(m)) return { field: '', key: 'move.err.approval' };
    if (/no move has this code|given for another hoster/.test(m)) return { field: 'code', key: 'move.err.code' };
    if (/expired/.test(m)) return { field: 'code', key: 'move.err.expired' };
    if (/already used|replay/.test(m)) return { field: 'code', key: 'move.err.used' };
    if (/does not take .* accounts in/.test(m)) return { field: '', key: 'move.err.service' };
    if (/not a hoster this one has confirmed|not pinned|suspended/.test(m)) return { field: 'source', key: 'move.err.trust' };
    return { field: '', key: 'move.err.refused', params: { detail: m } };
  }
  if (err.code === 'CATTERY_ERR_CONFLICT' && /already finished/.test(m)) return { field: 'code', key: 'move.err.used' };
  if (err.code === 'CATTERY_ERR_CONFLICT' && /is taken here/.test(m)) return { field: '', key: 'move.err.taken', params: { name: /name (\S+) is taken/.exec(m)?.[1] ?? '' } };
  if (err.code === 'CATTERY_ERR_CONFLICT') return { field: '', key: 'move.err.later' };
  if (err.code === 'CATTERY_ERR_TOO_LARGE') return { field: '', key: 'move.err.size' };
  if (err.code === 'CATTERY_ERR_BUSY') return { field: '', key: 'move.err.busy' };
  if (err.code === 'CATTERY_ERR_PEER_UNREACHABLE') return { field: '', key: 'move.err.unreachable' };
  if (err.statusCode >= 500) throw err;
  return { field: '', key: 'move.err.refused', params: { detail: m } };
}

export const movePages: FastifyPluginAsyncTypebox<{ federation: Federation; arrivalLimit: ArrivalLimit }> = async (app, { federation: f, arrivalLimit }) => {
  const d = f.moves;
  const { db } = d;
  const { catalog, config } = f.documents;

  /** The code's page: shown once, in large type, with where to give it and until when. */
  const codePage = (req: FastifyRequest, reply: FastifyReply, peer: MovePeer, code: string, expiresAt: string, back: string, forName?: string) =>
    reply.page('move-code', {
      code, groups: code.split('-'), peer: peer.name, signupUrl: `${peer.url}/signup/move`, expires: whenOf(expiresAt, langOf(req)), back, forName: forName ?? null,
    }, 201);

  /** The peer chosen on a form, among those the page offered this person. */
  const chosenPeer = (userId: number, peerId: string | undefined): MovePeer | undefined =>
    peersFor(db, movingServices(db, userId)).find((p) => String(p.id) === peerId);

  // ── The resident, for themself ──
  const ResidentStart = Type.Object({ ...Csrf, peer: Type.Optional(Type.String({ maxLength: 12 })) }, { additionalProperties: false });
  // Each start stages a full export of the person's accounts: bounded per person as the mediator's page is.
  const startLimit = { max: config.signupPerHour, timeWindow: 3_600_000, keyGenerator: (req: FastifyRequest) => req.principal?.id ?? clientKey(req.ip) };
  app.post('/me/moves', { config: { ...page, rateLimit: startLimit }, schema: { hide: true, body: ResidentStart } }, async (req, reply) => {
    const user = me(req);
    const peer = chosenPeer(user.id, req.body.peer);
    if (!peer) return reply.redirect('/me?move=peer#move', 303);
    try {
      const { move, code } = await startMove(d, { userId: user.id, peerId: peer.id, actor: `user:${user.login}` });
      return codePage(req, reply, peer, code, move.expiresAt, '/me#move');
    } catch (err) {
      return reply.redirect(`/me?move=${refusalOf(err)}#move`, 303);
    }
  });

  const Confirm = Type.Object({ ...Csrf, confirm: Type.Literal('yes') }, { additionalProperties: false });
  app.post('/me/moves/:id/confirm', { config: page, schema: { hide: true, params: MoveId, body: Confirm } }, async (req, reply) => {
    const user = me(req);
    await confirmMove(d, req.params.id, user.id, `user:${user.login}`);
    return reply.redirect('/me?done=moved', 303);
  });

  app.post('/me/moves/:id/cancel', { config: page, schema: { hide: true, params: MoveId, body: Type.Object(Csrf, { additionalProperties: false }) } }, async (req, reply) => {
    cancelMove(d, req.params.id, me(req).id);
    return reply.redirect('/me?done=move-cancelled#move', 303);
  });

  // ── A mediator, for a resident who asked, with their consent recorded ──
  /** Whether the signed-in helper may act for this person: an administrator for anyone, a mediator for residents. */
  const mayActFor = (req: FastifyRequest, roles: readonly string[]) => req.principal!.roles.includes('admin') || mediatorMayActFor(roles);
  const mediatorPage = (req: FastifyRequest, reply: FastifyReply, login: string | undefined, extra: Record<string, unknown> = {}, status = 200) => {
    const found = login ? findByLogin(db, login.trim()) : undefined;
    // Someone a mediator may not act for is shown as such, with none of their moves' forms.
    const notResident = !!found && !mayActFor(req, found.roles);
    const person = notResident ? undefined : found;
    const lang = langOf(req);
    return reply.page('mediator-move', {
      login: login ?? '', version: config.termsVersion, notFound: !!login && !found, notResident,
      person: person ? { id: person.id, name: person.name, login: person.login } : null,
      moves: person ? moveSection(db, catalog, person.id, lang, '/mediator/moves') : null,
      done: null, refused: null, ...extra,
    }, status);
  };
  const MediatorQuery = Type.Object({
    login: Type.Optional(Type.String({ maxLength: 40 })), lang: Type.Optional(Type.String({ maxLength: 5 })),
    done: Type.Optional(Type.String({ maxLength: 20 })), move: Type.Optional(Type.String({ maxLength: 20 })),
  });
  app.get('/mediator/moves', { config: page, schema: { hide: true, querystring: MediatorQuery } }, async (req, reply) =>
    mediatorPage(req, reply, req.query.login, {
      done: req.query.done === 'moved' ? 'move.done.confirmed' : req.query.done === 'move-cancelled' ? 'move.done.cancelled' : null,
      refused: refusalShown(req.query.move),
    }));

  const personOf = (req: FastifyRequest, userId: string) => {
    const u = findUser(db, Number(userId));
    if (!u) throw fail('CATTERY_ERR_NOT_FOUND', 'no such person');
    if (!mayActFor(req, u.roles)) throw fail('CATTERY_ERR_FORBIDDEN', 'a mediator acts for residents only: ask an administrator');
    return u;
  };
  const back = (login: string, q: string) => `/mediator/moves?login=${encodeURIComponent(login)}&${q}#move`;

  const MediatorStart = Type.Object({ ...Csrf, userId: UserId, peer: Type.Optional(Type.String({ maxLength: 12 })), consent: Type.Optional(Type.String({ maxLength: 40 })) }, { additionalProperties: false });
  app.post('/mediator/moves', {
    // Keyed by the mediator, as the mediator's sign-up: several may share a public internet point's address.
    config: { ...page, rateLimit: { max: config.signupPerHour, timeWindow: 3_600_000, keyGenerator: (req) => req.principal?.id ?? clientKey(req.ip) } },
    schema: { hide: true, body: MediatorStart },
  }, async (req, reply) => {
    const person = personOf(req, req.body.userId);
    if (req.body.consent !== config.termsVersion) return reply.redirect(back(person.login, 'move=consent'), 303);
    const peer = chosenPeer(person.id, req.body.peer);
    if (!peer) return reply.redirect(back(person.login, 'move=peer'), 303);
    const mediator = req.user ? `${req.user.login} (${req.user.name})` : req.principal!.id;
    // Who recorded the consent, when, and under which terms version: kept on the move, as a mediator's sign-up keeps it.
    const consent = `consent recorded by mediator ${mediator} at ${new Date().toISOString()}, terms version ${config.termsVersion}`;
    try {
      const { move, code } = await startMove(d, { userId: person.id, peerId: peer.id, actor: req.principal!.id, consent });
      return codePage(req, reply, peer, code, move.expiresAt, back(person.login, ''), person.name);
    } catch (err) {
      return reply.redirect(back(person.login, `move=${refusalOf(err)}`), 303);
    }
  });

  const ForPerson = Type.Object({ ...Csrf, userId: UserId, confirm: Type.Optional(Type.Literal('yes')) }, { additionalProperties: false });
  app.post('/mediator/moves/:id/confirm', { config: page, schema: { hide: true, params: MoveId, body: ForPerson } }, async (req, reply) => {
    const person = personOf(req, req.body.userId);
    if (req.body.confirm !== 'yes') throw fail('CATTERY_ERR_VALIDATION', 'the person\'s confirmation');
    // The person's request to delete, recorded as their consent to the move was: who, when, under which terms version.
    const mediator = req.user ? `${req.user.login} (${req.user.name})` : req.principal!.id;
    const consent = `deletion asked by the person, recorded by mediator ${mediator} at ${new Date().toISOString()}, terms version ${config.termsVersion}`;
    await confirmMove(d, req.params.id, person.id, `${req.principal!.id} with consent: ${consent}`);
    return reply.redirect(back(person.login, 'done=moved'), 303);
  });

  app.post('/mediator/moves/:id/cancel', { config: page, schema: { hide: true, params: MoveId, body: ForPerson } }, async (req, reply) => {
    const person = personOf(req, req.body.userId);
    cancelMove(d, req.params.id, person.id);
    return reply.redirect(back(person.login, 'done=move-cancelled'), 303);
  });

  // ── The destination: a person arriving with a code ──
  const sources = (): MovePeer[] => listPeers(db).filter((p) => p.state === 'active' && p.pinnedJwk).map((p) => ({ id: p.id, name: p.name || p.url, url: p.url }));
  const arrivalForm = (reply: FastifyReply, values: Record<string, string>, errors: { field: string; key: string; params?: Record<string, string> }[], status = 200) =>
    reply.page('signup-move', { sources: sources(), values, errors, version: config.termsVersion }, status);

  app.get('/signup/move', { config: page, schema: { hide: true, querystring: Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })) }) } },
    async (_req, reply) => arrivalForm(reply, {}, []));

  const ArrivalBody = Type.Object({
    ...Csrf, source: Type.Optional(Type.String({ maxLength: 12 })), code: Type.Optional(Type.String({ maxLength: 100 })),
    password: Type.Optional(Type.String({ maxLength: PASSWORD_MAX + 100 })), password2: Type.Optional(Type.String({ maxLength: PASSWORD_MAX + 100 })),
    terms: Type.Optional(Type.String({ maxLength: 40 })),
  }, { additionalProperties: false });
  app.post('/signup/move', {
    // Like the sign-up: each attempt makes cattery fetch from a peer and may make a person.
    config: page,
    onRequest: arrivalThrottle(arrivalLimit),
    attachValidation: true,
    schema: { hide: true, body: ArrivalBody },
  }, async (req, reply) => {
    if (req.validationError) return arrivalForm(reply, {}, [{ field: '', key: 'err.form' }], 400);
    const body = req.body;
    const kept = { source: body.source ?? '', code: body.code ?? '' };
    const errors: { field: string; key: MessageKey }[] = [];
    const source = sources().find((p) => String(p.id) === body.source);
    if (!source) errors.push({ field: 'source', key: 'move.err.source' });
    if (!normalizeCode(body.code ?? '')) errors.push({ field: 'code', key: 'move.err.format' });
    const p = body.password ?? '';
    if (p.length < PASSWORD_MIN || p.length > PASSWORD_MAX) errors.push({ field: 'password', key: 'err.password' });
    // eslint-disable-next-line no-control-regex
    else if (/[\u0000-\u001f\u007f]/.test(p)) errors.push({ field: 'password', key: 'move.err.password.control' });
    else if (p !== body.password2) errors.push({ field: 'password2', key: 'err.password2' });
    if (body.terms !== config.termsVersion) errors.push({ field: 'terms', key: 'err.terms' });
    if (errors.length) return arrivalForm(reply, kept, errors, 400);
    let user;
    try {
      ({ user } = await arriveAsPerson(d, { source: source!.url, code: body.code!, password: p }, { termsVersion: config.termsVersion, lang: langOf(req) }));
    } catch (err) {
      const e = arrivalError(err);
      req.log.info({ err, source: source!.url }, 'arrival refused');
      if (isCatteryError(err)) reply.header('x-cattery-error', err.code);
      return arrivalForm(reply, kept, [e], isCatteryError(err) ? err.statusCode : 400);
    }
    // Signed in at once, as after a sign-in: the cookie dies with the browser (public.ts startSession). Someone else
    // still signed in on this browser (a shared computer at a public internet point) is signed out first.
    if (req.principal?.sessionId) endSession(db, req.principal.sessionId);
    const token = createSession(db, sessionPolicy(config), user.id, 'password');
    reply.setCookie(reply.server.cookieNames.session, token, cookieOptions(reply.server.cookieNames.secure));
    return reply.redirect('/me?done=arrived', 303);
  });
};
