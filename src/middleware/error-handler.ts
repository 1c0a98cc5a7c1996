// The one error handler. Every failure leaves as the envelope of docs/api.md: a code from the catalogue,
// its status and message, the request id, and never a stack, a path, SQL or a submitted value.
import type { ErrorRequestHandler, Request, Response } from 'express';
import { AppError, ERROR_CATALOGUE, type ErrorCode } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { SecurityLog } from '../lib/security-log';

// body-parser (express.json) errors carry a `type`; map them onto the catalogue.
const BODY_PARSER_CODES: Record<string, ErrorCode> = {
  'entity.parse.failed': 'invalid_json',
  'entity.too.large': 'payload_too_large',
  'encoding.unsupported': 'unsupported_media_type',
  'charset.unsupported': 'unsupported_media_type',
  'entity.verify.failed': 'bad_request',
  'request.aborted': 'bad_request',
  'request.size.invalid': 'bad_request',
};

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
};

interface HttpishError {
  type?: unknown;
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
}

/** Turns anything thrown into an AppError; unknown errors become internal_error. */
function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = (err ?? {}) as HttpishError;
  // An own entry only: a type such as "constructor" must not find Object.prototype's.
  // Stryker disable next-line ObjectLiteral: client errors are not logged, so their cause is never read
  if (typeof e.type === 'string' && Object.hasOwn(BODY_PARSER_CODES, e.type)) return new AppError(BODY_PARSER_CODES[e.type]!, { cause: err });
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  // Client errors raised by Express itself or its parsers (e.g. a malformed %-escape in a path).
  if (status !== undefined && status >= 400 && status < 500 && e.expose !== false) {
    // Stryker disable next-line ObjectLiteral: client errors are not logged, so their cause is never read
    return new AppError(STATUS_CODES[status] ?? 'bad_request', { cause: err });
  }
  return new AppError('internal_error', { cause: err });
}

/** The security event of a refusal, unless the error names its own. */
const SECURITY_EVENTS: Partial<Record<ErrorCode, string>> = {
  unauthorized: 'auth_rejected',
  invalid_token: 'auth_rejected',
  token_revoked: 'auth_rejected',
  invalid_credentials: 'login_failed',
  invalid_grant: 'refresh_rejected',
  forbidden: 'access_denied',
  rate_limited: 'rate_limited',
};

/** The statuses that are refusals of who is asking: each leaves one security event. */
const isRefusal = (status: number) => status === 401 || status === 403 || status === 429;

function recordRefusal(security: SecurityLog, req: Request, appError: AppError): void {
  const context = appError.security;
  const template = (req.route as { path?: unknown } | undefined)?.path;
  security({
    // Stryker disable next-line StringLiteral: every 401, 403 and 429 code of the catalogue has its event; this names one added later without one
    event: context?.event ?? SECURITY_EVENTS[appError.code] ?? 'request_refused',
    status: appError.status,
    code: appError.code,
    reason: context?.reason,
    // The limiters run before authentication; the early token check already knows who it is.
    userId: context?.userId ?? req.auth?.sub ?? req.earlyRevocationCheck?.claims.sub,
    sessionId: context?.sessionId,
    ip: req.ip,
    method: req.method,
    route: typeof template === 'string' ? template : '(unmatched)',
    requestId: req.id,
  });
}

/** At most one warning per this interval for 503s: an outage fails every request at once. */
const UNAVAILABLE_LOG_INTERVAL_MS = 1000;

/**
 * A 503 is a dependency that is down or saturated, not a bug: a one-line warning (no stack), at
 * most one per interval, counting the ones it stands for.
 */
function unavailableWarner(logger: Logger, intervalMs: number): (appError: AppError, req: Request) => void {
  let loggedAt = -Infinity;
  let unlogged = 0;
  return (appError, req) => {
    unlogged += 1;
    const now = Date.now();
    if (now - loggedAt < intervalMs) return;
    loggedAt = now;
    const cause = appError.cause instanceof Error ? appError.cause.message : undefined;
    logger.warn('request refused: dependency unavailable', { reason: cause, method: req.method, path: req.path, count: unlogged });
    unlogged = 0;
  };
}

export function errorHandler(logger: Logger, security?: SecurityLog): ErrorRequestHandler {
  const warnUnavailable = unavailableWarner(logger, UNAVAILABLE_LOG_INTERVAL_MS);
  return (err, req, res, next) => {
    const appError = toAppError(err);
    if (security && isRefusal(appError.status)) recordRefusal(security, req, appError);
    if (appError.code === 'service_unavailable') {
      warnUnavailable(appError, req);
    } else if (appError.status >= 500) {
      logger.error('request failed', { error: appError.cause ?? appError, code: appError.code, method: req.method, path: req.path });
    }
    if (res.headersSent) {
      // Too late for an envelope: let Express close the connection so the client sees a failure.
      next(err);
      return;
    }
    sendError(req, res, appError);
  };
}

/** Writes an error as the envelope, with its headers; for middleware that answers without throwing. */
export function sendError(req: Request, res: Response, appError: AppError): void {
  if (appError.headers) for (const [name, value] of Object.entries(appError.headers)) res.setHeader(name, value);
  if (appError.code === 'unauthorized' || appError.code === 'invalid_token' || appError.code === 'token_revoked') {
    res.setHeader('WWW-Authenticate', appError.code === 'unauthorized' ? 'Bearer' : 'Bearer error="invalid_token"');
  }
  if (appError.status === 429 || appError.status >= 500) res.setHeader('Cache-Control', 'no-store');
  const body: Record<string, unknown> = {
    code: appError.code,
    // internal_error never carries a custom message: it could describe internals.
    message: appError.code === 'internal_error' ? ERROR_CATALOGUE.internal_error.message : appError.message,
    requestId: req.id,
  };
  if (appError.details) body.details = appError.details;
  res.status(appError.status).json({ error: body });
}
