// Errors as the client sees them: a stable code and a message a person understands. 5xx messages are replaced by a
// generic one with the request id, so the operator can find the cause in the logs and the client learns nothing
// about the internals.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isCatteryError } from '../errors.js';
import { hasMessage } from './i18n.js';

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

/** Fastify's and its plugins' own errors, given a code of the family. */
function normalise(err: FastifyError): { status: number; code: string; message: string } {
  if (isCatteryError(err)) return { status: err.statusCode, code: err.code, message: err.message };
  if (err.code?.startsWith('FST_CSRF')) return { status: 403, code: 'CATTERY_ERR_CSRF', message: 'The form has expired or did not come from this site: reload the page and try again' };
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, code: 'CATTERY_ERR_TOO_LARGE', message: 'The request is too large' };
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return { status: 415, code: 'CATTERY_ERR_UNSUPPORTED_MEDIA', message: 'Unsupported body type' };
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
  return { status, code: status === 500 ? 'CATTERY_ERR_INTERNAL' : 'CATTERY_ERR_VALIDATION', message: err.message };
}

const isPage = (request: FastifyRequest) => request.routeOptions.config?.page === true;

export async function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (err.validation) {
    reply.header('x-cattery-error', 'CATTERY_ERR_VALIDATION');
    if (isPage(request)) return reply.page('error', { code: 'CATTERY_ERR_VALIDATION', detail: '', requestId: request.id }, 400);
    return reply.code(400).send({ statusCode: 400, code: 'CATTERY_ERR_VALIDATION', error: 'Bad Request', message: validationMessage(err) });
  }
  const { status, code, message } = normalise(err);
  reply.header('x-cattery-error', code);
  if (status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ code, msg: message }, 'client error');
  if (isPage(request)) {
    // A page asked without a session sends the person to sign in, and back here afterwards.
    if (code === 'CATTERY_ERR_PASSWORD_CHANGE_REQUIRED' && request.method === 'GET') return reply.redirect('/me#password', 303);
    if (code === 'CATTERY_ERR_UNAUTHENTICATED') {
      // Where to come back to, not a decision: /login accepts only a local path as `next`.
      const next = request.method === 'GET' ? request.url : '/me';
      return reply.redirect(`/login?next=${encodeURIComponent(next)}`, 303);
    }
    let detail = code === 'CATTERY_ERR_THROTTLED' ? message.replace(/\D+/g, ' ').trim().split(' ')[0] ?? '' : '';
    if (code === 'CATTERY_ERR_THROTTLED' && reply.getHeader('retry-after') === undefined && detail) reply.header('retry-after', detail);
    // A known condition (the provider or the engine away: 503) is said in words; an unknown 5xx only by reference.
    let shown = hasMessage(`err.${code}`) ? code : status >= 500 ? 'internal' : 'generic';
    if (shown === 'generic') detail = message;
    return reply.page('error', { code: shown, detail, requestId: request.id }, status);
  }
  if (status >= 500) {
    const shown = isCatteryError(err) && status !== 500 ? err.code : 'CATTERY_ERR_INTERNAL';
    const msg = shown === 'CATTERY_ERR_ENGINE_UNAVAILABLE' ? 'The Docker engine does not answer; the operator has been told in the logs.'
      : shown === 'CATTERY_ERR_RESOLVER' ? 'The DNS resolver did not answer, so nothing could be checked; try again later or check CATTERY_DNS_RESOLVERS.'
      : shown === 'CATTERY_ERR_PEER_UNREACHABLE' ? 'The peer did not answer over verified HTTPS in time (the reason is in the logs); check its address, or CATTERY_PEER_CA for a private CA.'
      : `Something went wrong on our side (request ${request.id}).`;
    return reply.code(status).send({ statusCode: status, code: shown, error: 'Server Error', message: msg });
  }
  return reply.code(status).send({ statusCode: status, code, error: 'Client Error', message });
}
