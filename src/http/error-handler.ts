// Errors as the client sees them: a stable code and a message a person understands. 5xx messages are replaced by a
// generic one with the request id, so the operator can find the cause in the logs and the client learns nothing
// about the internals.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isCatteryError } from '../errors.js';

export const ErrorReply = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' } },
  required: ['statusCode', 'code', 'message'],
} as const;

function validationMessage(err: FastifyError): string {
  const v = err.validation?.[0];
  if (!v) return err.message;
  const where = `${err.validationContext ?? 'body'}${v.instancePath || ''}`;
  const params = v.params as Record<string, unknown>;
  if (v.keyword === 'required') return `${where}: field "${String(params.missingProperty)}" is required`;
  if (v.keyword === 'additionalProperties') return `${where}: field "${String(params.additionalProperty)}" is not allowed`;
  // A schema's description says in words what a pattern says in regex; people read the words.
  const description = (v as { parentSchema?: { description?: string } }).parentSchema?.description;
  if (v.keyword === 'pattern' && description) return `${where}: ${description}`;
  return `${where} ${v.message ?? 'is invalid'}`;
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (err.validation) {
    return reply.code(400).send({ statusCode: 400, code: 'CATTERY_ERR_VALIDATION', error: 'Bad Request', message: validationMessage(err) });
  }
  const status = isCatteryError(err) ? err.statusCode : (err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500);
  if (status >= 500) {
    request.log.error({ err }, 'request failed');
    const shown = isCatteryError(err) && status !== 500 ? err.code : 'CATTERY_ERR_INTERNAL';
    const message = shown === 'CATTERY_ERR_ENGINE_UNAVAILABLE' ? 'The Docker engine does not answer; the operator has been told in the logs.'
      : `Something went wrong on our side (request ${request.id}).`;
    return reply.code(status).send({ statusCode: status, code: shown, error: 'Server Error', message });
  }
  request.log.info({ code: err.code, msg: err.message }, 'client error');
  // Fastify's own 4xx (bad JSON, body too large, wrong content type) get a code of the family too.
  const code = isCatteryError(err) ? err.code : 'CATTERY_ERR_VALIDATION';
  return reply.code(status).send({ statusCode: status, code, error: 'Client Error', message: err.message });
}
