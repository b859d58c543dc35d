// The register of requests from authorities through the JSON API (administrators only): list every request, notes
// included, and record one. The public side is the counts on /transparency/requests.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Db } from '../../db/connection.js';
import { listRequests, recordRequest } from '../../publication/register.js';
import { ANSWERS, AUTHORITY_KINDS, REQUEST_TYPES } from '../../publication/schema.js';
import { ErrorReply } from '../error-handler.js';

const literals = (xs: readonly string[]) => Type.Union(xs.map((x) => Type.Literal(x)));
const RequestBody = Type.Object({
  receivedOn: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$' }),
  type: literals(REQUEST_TYPES), authority: literals(AUTHORITY_KINDS), answer: literals(ANSWERS),
  note: Type.Optional(Type.String({ maxLength: 4000 })),
}, { additionalProperties: false });
const RequestRow = Type.Object({
  id: Type.Integer(), receivedOn: Type.String(), type: Type.String(), authority: Type.String(), answer: Type.String(),
  note: Type.String(), recordedBy: Type.String(), createdAt: Type.String(),
});

export const authorityRequestRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  app.get('/api/authority-requests', {
    schema: { tags: ['publication'], summary: 'The register of requests from authorities, notes included (administrators)', response: { 200: Type.Array(RequestRow) } },
  }, async () => listRequests(db));

  app.post('/api/authority-requests', {
    schema: {
      tags: ['publication'], summary: 'Record a request from an authority', body: RequestBody,
      response: { 201: RequestRow, 400: ErrorReply },
    },
  }, async (req, reply) => {
    // The body's enums are checked by the schema; the narrowing below is what TypeScript needs to see it.
    const b = req.body as { receivedOn: string; type: (typeof REQUEST_TYPES)[number]; authority: (typeof AUTHORITY_KINDS)[number]; answer: (typeof ANSWERS)[number]; note?: string };
    return reply.code(201).send(recordRequest(db, b, req.principal?.id ?? 'admin'));
  });
};
