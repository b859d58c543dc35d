// One error family for the whole product. Every error a client can see has a stable code and an HTTP status;
// messages are written for a person. 5xx messages are never sent as they are (see http/error-handler.ts).
import createError from '@fastify/error';

export const Errors = {
  CATTERY_ERR_VALIDATION: createError('CATTERY_ERR_VALIDATION', 'Invalid input: %s', 400),
  CATTERY_ERR_NOT_FOUND: createError('CATTERY_ERR_NOT_FOUND', '%s', 404),
  CATTERY_ERR_CONFLICT: createError('CATTERY_ERR_CONFLICT', '%s', 409),
  CATTERY_ERR_CAPACITY: createError('CATTERY_ERR_CAPACITY', 'No room: %s', 409),
  CATTERY_ERR_UNKNOWN_SERVICE: createError('CATTERY_ERR_UNKNOWN_SERVICE', 'No service "%s" in the catalog', 400),
  CATTERY_ERR_LINK: createError('CATTERY_ERR_LINK', 'Link refused: %s', 400),
  CATTERY_ERR_UNAUTHENTICATED: createError('CATTERY_ERR_UNAUTHENTICATED', 'Authentication required', 401),
  CATTERY_ERR_FORBIDDEN: createError('CATTERY_ERR_FORBIDDEN', 'Your role may not do this: %s', 403),
  CATTERY_ERR_MANIFEST_INVALID: createError('CATTERY_ERR_MANIFEST_INVALID', '%s', 422),
  CATTERY_ERR_MANIFEST_UNSAFE: createError('CATTERY_ERR_MANIFEST_UNSAFE', '%s', 422),
  CATTERY_ERR_IMAGE_MISSING: createError('CATTERY_ERR_IMAGE_MISSING', 'Image %s is not built yet: run `cattery images build`', 409),
  CATTERY_ERR_PORTS_EXHAUSTED: createError('CATTERY_ERR_PORTS_EXHAUSTED', 'No free host port left in %s', 409),
  CATTERY_ERR_PORT_TAKEN: createError('CATTERY_ERR_PORT_TAKEN', '%s', 409),
  CATTERY_ERR_ENGINE_UNAVAILABLE: createError('CATTERY_ERR_ENGINE_UNAVAILABLE', 'The Docker engine does not answer: %s', 503),
  CATTERY_ERR_ENGINE: createError('CATTERY_ERR_ENGINE', 'The Docker engine refused an operation: %s', 502),
  CATTERY_ERR_ENGINE_TIMEOUT: createError('CATTERY_ERR_ENGINE_TIMEOUT', 'The Docker engine did not answer in time: %s', 504),
  CATTERY_ERR_BUILD: createError('CATTERY_ERR_BUILD', 'Image build failed: %s', 500),
  CATTERY_ERR_MIGRATION: createError('CATTERY_ERR_MIGRATION', 'Database migration failed: %s', 500),
  CATTERY_ERR_CONFIG: createError('CATTERY_ERR_CONFIG', 'Invalid configuration: %s', 500),
  CATTERY_ERR_ACCOUNT_UNSUPPORTED: createError('CATTERY_ERR_ACCOUNT_UNSUPPORTED', '%s', 409),
  CATTERY_ERR_ACCOUNT_OPERATION: createError('CATTERY_ERR_ACCOUNT_OPERATION', 'The service refused the account operation: %s', 502),
  CATTERY_ERR_LOGIN_FAILED: createError('CATTERY_ERR_LOGIN_FAILED', 'Wrong login or password', 401),
  CATTERY_ERR_THROTTLED: createError('CATTERY_ERR_THROTTLED', 'Too many attempts: try again in %s seconds', 429),
  CATTERY_ERR_CSRF: createError('CATTERY_ERR_CSRF', 'The form has expired or did not come from this site: reload the page and try again', 403),
  CATTERY_ERR_OIDC: createError('CATTERY_ERR_OIDC', 'Sign-in with the identity provider failed: %s', 400),
  CATTERY_ERR_OIDC_UNAVAILABLE: createError('CATTERY_ERR_OIDC_UNAVAILABLE', 'The identity provider does not answer: %s', 503),
  CATTERY_ERR_TOO_LARGE: createError('CATTERY_ERR_TOO_LARGE', 'The request is too large', 413),
  CATTERY_ERR_PASSWORD_CHANGE_REQUIRED: createError('CATTERY_ERR_PASSWORD_CHANGE_REQUIRED', 'Choose your own password first, on /me', 403),
  CATTERY_ERR_BUSY: createError('CATTERY_ERR_BUSY', '%s', 429),
  CATTERY_ERR_INSUFFICIENT_STORAGE: createError('CATTERY_ERR_INSUFFICIENT_STORAGE', '%s', 507),
  CATTERY_ERR_INGRESS: createError('CATTERY_ERR_INGRESS', 'The front door (Caddy) refused its configuration: %s', 502),
  CATTERY_ERR_RESOLVER: createError('CATTERY_ERR_RESOLVER', 'The DNS resolver did not answer: %s', 503),
  CATTERY_ERR_STATUTES: createError('CATTERY_ERR_STATUTES', 'The statutes do not allow this: %s', 422),
  CATTERY_ERR_VOTE: createError('CATTERY_ERR_VOTE', 'Vote refused: %s', 409),
  CATTERY_ERR_VOLUME_CLAIMED: createError('CATTERY_ERR_VOLUME_CLAIMED', 'An instance uses this volume: %s', 409),
  CATTERY_ERR_VOLUME_IN_USE: createError('CATTERY_ERR_VOLUME_IN_USE', 'A container uses this volume: %s', 409),
  CATTERY_ERR_VOLUME_NOT_ARCHIVED: createError('CATTERY_ERR_VOLUME_NOT_ARCHIVED', 'Archive this volume first, or drop it with force: %s', 409),
  CATTERY_ERR_UNSUPPORTED_MEDIA: createError('CATTERY_ERR_UNSUPPORTED_MEDIA', 'Unsupported body type: %s', 415),
  CATTERY_ERR_BACKUP: createError('CATTERY_ERR_BACKUP', 'Backup failed: %s', 502),
  CATTERY_ERR_BACKUP_REPO_UNREACHABLE: createError('CATTERY_ERR_BACKUP_REPO_UNREACHABLE', 'This server cannot reach the backup repository: %s', 409),
  CATTERY_ERR_PDF_UNAVAILABLE: createError('CATTERY_ERR_PDF_UNAVAILABLE', 'The PDF cannot be printed here (the HTML page has the same report): %s', 503),
  CATTERY_ERR_PEER_UNREACHABLE: createError('CATTERY_ERR_PEER_UNREACHABLE', 'The peer could not be reached: %s', 502),
  CATTERY_ERR_MOVE_REFUSED: createError('CATTERY_ERR_MOVE_REFUSED', 'The move was refused: %s', 403),
  // `cattery agent` (agent/): what the manager refuses of a node, each with its own code so that the agent's log and
  // the tests say which check failed.
  CATTERY_ERR_AGENT_SIGNATURE: createError('CATTERY_ERR_AGENT_SIGNATURE', 'The node\'s signature was refused: %s', 401),
  CATTERY_ERR_AGENT_UNKNOWN: createError('CATTERY_ERR_AGENT_UNKNOWN', 'This node is not enrolled: %s', 403),
  CATTERY_ERR_AGENT_ENROLMENT: createError('CATTERY_ERR_AGENT_ENROLMENT', 'Enrolment refused: %s', 403),
  CATTERY_ERR_AGENT_REPLAY: createError('CATTERY_ERR_AGENT_REPLAY', 'This sample was already received: %s', 409),
  CATTERY_ERR_AGENT_CLOCK: createError('CATTERY_ERR_AGENT_CLOCK', 'The sample\'s time is too far from the manager\'s: %s', 422),
  CATTERY_ERR_PEER_REFUSED: createError('CATTERY_ERR_PEER_REFUSED', 'The peer\'s document was refused: %s', 422),
} as const;

export type ErrorCode = keyof typeof Errors;

export interface CatteryError extends Error {
  code: ErrorCode;
  statusCode: number;
}

export function isCatteryError(err: unknown): err is CatteryError {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && code in Errors;
}

/** Build an error of the family; `cause` keeps the original for the logs, never for the client. */
export function fail(code: ErrorCode, detail?: string, cause?: unknown): CatteryError {
  const Ctor = Errors[code] as unknown as new (...args: unknown[]) => CatteryError;
  const err = new Ctor(detail ?? '');
  if (cause !== undefined) (err as Error & { cause?: unknown }).cause = cause;
  return err;
}
