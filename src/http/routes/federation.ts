// Federation over HTTP (src/federation/): the signed hoster document and monthly reports for anyone at
// /.well-known/cattery, and the administrators' API for peers (add by URL, confirm the fingerprint, suspend, resume,
// refresh, remove) and alarms.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { DOCUMENT_PATH, REPORTS_PATH, signedHosterDocument } from '../../federation/document.js';
import type { Federation } from '../../federation/federation.js';
import { fingerprintOf } from '../../federation/jws.js';
import {
  addPeer, confirmPeer, getPeer, listPeers, openAlarms, refreshPeer, removePeer, setPeerState, viewOf, type PeerView,
} from '../../federation/peers.js';
import { signedReport } from '../../federation/reports.js';
import { ErrorReply } from '../error-handler.js';

/** application/jose: the compact serialization's own media type (RFC 7515 §9.2.1), so a client knows it is a JWS
 * to verify before it is JSON to read (docs/federation.md). */
export const JOSE = 'application/jose';

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2 ** 31 }) });
const Empty = Type.Object({}, { additionalProperties: false });
const Alarm = Type.Object({ id: Type.Integer(), kind: Type.String(), detail: Type.String(), createdAt: Type.String() });
const PeerReply = Type.Object({
  id: Type.Integer(), url: Type.String(), name: Type.String(), state: Type.String(), fingerprint: Type.String(),
  fetchedAt: Type.String(), lastError: Type.String(), alarms: Type.Array(Alarm),
  services: Type.Array(Type.Object({ id: Type.String(), registration: Type.String(), load: Type.String() })),
});

const reply = (v: PeerView) => ({
  id: v.id, url: v.url, name: v.name, state: v.state, fingerprint: v.fingerprint, fetchedAt: v.fetchedAt, lastError: v.lastError,
  alarms: v.alarms.map((a) => ({ id: a.id, kind: a.kind, detail: a.detail, createdAt: a.createdAt })),
  services: v.document.services.map((s) => ({ id: s.id, registration: s.registration, load: s.load })),
});

function sendJose(r: FastifyReply, body: string, cache: string) {
  return r.header('cache-control', cache).header('access-control-allow-origin', '*').type(JOSE).send(body);
}

export const federationRoutes: FastifyPluginAsyncTypebox<{ federation: Federation }> = async (app, { federation: f }) => {
  app.get(DOCUMENT_PATH, {
    config: { cacheable: true },
    schema: { tags: ['federation'], summary: 'This hoster\'s signed document (JWS, application/jose): name, key, services and their load' },
  }, async (_req, r) => sendJose(r, await signedHosterDocument(f.documents), 'public, max-age=300'));

  app.get(`${REPORTS_PATH}/:month`, {
    config: { cacheable: true },
    schema: {
      tags: ['federation'], summary: 'A closed month\'s open data, signed (JWS, application/jose), after statistical secrecy',
      params: Type.Object({ month: Type.String({ maxLength: 16 }) }), response: { 404: ErrorReply },
    },
  }, async (req, r) => sendJose(r, await signedReport(f.documents, req.params.month), 'public, max-age=3600'));

  app.get('/api/federation', {
    schema: {
      tags: ['federation'], summary: 'Our key, the peers and the open alarms',
      response: {
        200: Type.Object({
          identity: Type.Object({ kid: Type.String(), fingerprint: Type.String(), createdAt: Type.String(), rotations: Type.Integer() }),
          peers: Type.Array(PeerReply),
          alarms: Type.Array(Type.Object({ id: Type.Integer(), peer: Type.String(), kind: Type.String(), detail: Type.String(), createdAt: Type.String() })),
        }),
      },
    },
  }, async () => {
    const id = await f.keys.current();
    return {
      identity: { kid: id.kid, fingerprint: fingerprintOf(id.kid), createdAt: id.createdAt, rotations: id.rotations.length },
      peers: listPeers(f.peers.db).map((p) => reply(viewOf(f.peers.db, p))),
      alarms: openAlarms(f.peers.db).map((a) => ({ id: a.id, peer: a.url, kind: a.kind, detail: a.detail, createdAt: a.createdAt })),
    };
  });

  app.post('/api/federation/peers', {
    schema: {
      tags: ['federation'], summary: 'Add a peer by its https address: its document is fetched and its fingerprint shown, nothing pinned yet',
      body: Type.Object({ url: Type.String({ minLength: 8, maxLength: 300 }) }, { additionalProperties: false }),
      response: { 201: PeerReply, 400: ErrorReply, 409: ErrorReply, 422: ErrorReply },
    },
  }, async (req, r) => r.code(201).send(reply(await addPeer(f.peers, req.body.url))));

  app.post('/api/federation/peers/:id/confirm', {
    schema: {
      tags: ['federation'], summary: 'Pin the peer\'s key: the fingerprint compared out of band must be the one shown',
      params: IdParams, body: Type.Object({ fingerprint: Type.String({ minLength: 1, maxLength: 120 }) }, { additionalProperties: false }),
      response: { 200: PeerReply, 404: ErrorReply, 409: ErrorReply },
    },
  }, async (req) => reply(confirmPeer(f.peers, req.params.id, req.body.fingerprint)));

  for (const [action, state] of [['suspend', 'suspended'], ['resume', 'active']] as const) {
    app.post(`/api/federation/peers/:id/${action}`, {
      schema: {
        tags: ['federation'], summary: action === 'suspend' ? 'Suspend a peer: refused everywhere until resumed' : 'Resume a suspended peer',
        params: IdParams, body: Type.Optional(Empty), response: { 200: PeerReply, 404: ErrorReply, 409: ErrorReply },
      },
    }, async (req) => reply(setPeerState(f.peers, req.params.id, state)));
  }

  app.post('/api/federation/peers/:id/refresh', {
    schema: {
      tags: ['federation'], summary: 'Fetch an active peer\'s document and last month\'s report now',
      params: IdParams, body: Type.Optional(Empty),
      response: { 200: Type.Object({ outcome: Type.String(), peer: PeerReply }), 404: ErrorReply },
    },
  }, async (req) => {
    const outcome = await refreshPeer(f.peers, req.params.id);
    return { outcome, peer: reply(viewOf(f.peers.db, getPeer(f.peers.db, req.params.id))) };
  });

  app.delete('/api/federation/peers/:id', {
    schema: { tags: ['federation'], summary: 'Remove a peer (its alarms and reports with it)', params: IdParams, response: { 204: Type.Null(), 404: ErrorReply } },
  }, async (req, r) => {
    removePeer(f.peers, req.params.id);
    return r.code(204).send(null);
  });
};
