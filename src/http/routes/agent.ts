// The routes of `cattery agent` (agent/): a node enrols and sends samples, known by its signature alone (config
// signature, auth.ts); administrators issue enrolment tokens, list the nodes and forget one.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Db } from '../../db/connection.js';
import { fail } from '../../errors.js';
import { checkEnrolment, completeEnrolment, forgetAgent, issueEnrolmentToken, listAgents, type EnrolmentClaim } from '../../agent/enrolment.js';
import type { AgentIngest, CheckedSample } from '../../agent/ingest.js';
import { ENROL_MAX_BYTES, SAMPLE_MAX_BYTES, SignedBody } from '../../agent/protocol.js';
import { ErrorReply } from '../error-handler.js';

const ServerParams = Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,40}$' }) });
const AgentView = Type.Object({
  server: Type.String(), kid: Type.Union([Type.String(), Type.Null()]), fingerprint: Type.Union([Type.String(), Type.Null()]),
  enrolledAt: Type.Union([Type.String(), Type.Null()]), lastSampleAt: Type.Union([Type.String(), Type.Null()]),
  enrolmentOpenUntil: Type.Union([Type.String(), Type.Null()]),
});
const Refusals = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 409: ErrorReply, 413: ErrorReply, 415: ErrorReply, 422: ErrorReply };

/** The JWS of a signed body, read before the schema is applied (the signature decides who the caller is, and an
 * anonymous caller must get 401, not a validation error). */
function jwsOf(request: FastifyRequest): string {
  const jws = (request.body as { jws?: unknown } | null | undefined)?.jws;
  if (typeof jws !== 'string' || jws.length === 0) throw fail('CATTERY_ERR_UNAUTHENTICATED');
  return jws;
}

export const agentRoutes: FastifyPluginAsyncTypebox<{ db: Db; ingest: AgentIngest; hosterId: string }> = async (app, { db, ingest, hosterId }) => {
  const claims = new WeakMap<FastifyRequest, EnrolmentClaim>();
  const samples = new WeakMap<FastifyRequest, CheckedSample>();

  app.post('/api/agent/enrol', {
    bodyLimit: ENROL_MAX_BYTES,
    // No rate limit of its own: a token is 256 random bits (nothing to guess), and a refusal costs one signature check.
    config: { signature: true },
    schema: {
      tags: ['agent'], summary: 'A node\'s agent pins its key to the server its one-time token was issued for', security: [],
      body: SignedBody,
      // The hoster id tells the agent which of the engine's containers are this hoster's (their cattery.hoster label).
      response: { 200: Type.Object({ serverId: Type.Integer(), server: Type.String(), kid: Type.String(), fingerprint: Type.String(), hosterId: Type.String() }), ...Refusals },
    },
    preValidation: async (req) => {
      const claim = await checkEnrolment(db, jwsOf(req));
      claims.set(req, claim);
      req.principal = { id: `agent:${claim.serverName}`, roles: ['agent'] };
    },
  }, async (req) => {
    const claim = claims.get(req)!;
    const done = completeEnrolment(db, claim);
    req.log.info({ server: done.server, kid: done.kid }, 'node agent enrolled');
    return { ...done, hosterId };
  });

  app.post('/api/agent/samples', {
    bodyLimit: SAMPLE_MAX_BYTES,
    config: { signature: true },
    schema: {
      tags: ['agent'], summary: 'A node\'s signed metering sample: recorded and split like the local server\'s passes', security: [],
      body: SignedBody,
      response: { 200: Type.Object({ recorded: Type.Boolean(), watts: Type.Union([Type.Number(), Type.Null()]) }), ...Refusals },
    },
    preValidation: async (req) => {
      const s = await ingest.check(jwsOf(req));
      samples.set(req, s);
      req.principal = { id: `agent:${s.server.name}`, roles: ['agent'] };
    },
  }, async (req) => {
    const reading = await ingest.record(samples.get(req)!);
    return { recorded: reading !== undefined, watts: reading?.watts ?? null };
  });

  app.post('/api/servers/:name/agent/enrolment', {
    schema: {
      tags: ['agent', 'servers'], summary: 'A one-time token for this server\'s agent to enrol with (replaces any open one; shown once)',
      params: ServerParams,
      body: Type.Optional(Type.Object({ hours: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 720 })) }, { additionalProperties: false })),
      response: { 200: Type.Object({ token: Type.String(), server: Type.String(), expiresAt: Type.String() }), 400: ErrorReply, 404: ErrorReply },
    },
  }, async (req) => issueEnrolmentToken(db, req.params.name, req.body?.hours));

  app.get('/api/agents', {
    schema: { tags: ['agent', 'servers'], summary: 'Each server\'s agent: the key pinned, its last sample, an open enrolment', response: { 200: Type.Array(AgentView) } },
  }, async () => listAgents(db));

  app.delete('/api/servers/:name/agent', {
    schema: {
      tags: ['agent', 'servers'], summary: 'Forget this server\'s agent: its key is unpinned and cattery meters the server itself again',
      params: ServerParams, response: { 200: Type.Object({ forgotten: Type.Boolean() }), 404: ErrorReply },
    },
  }, async (req) => ({ forgotten: forgetAgent(db, req.params.name) }));
};
