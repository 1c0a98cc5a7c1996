// The error catalogue: every error a client can see, with its status and a fixed message.
// Handlers throw AppError; the error handler renders the envelope of docs/api.md. Anything that is
// not an AppError becomes `internal_error` with the generic message: internals never leak.

export const ERROR_CATALOGUE = {
  invalid_json: { status: 400, message: 'Request body is not valid JSON' },
  bad_request: { status: 400, message: 'Malformed request' },
  unauthorized: { status: 401, message: 'Authentication required' },
  invalid_token: { status: 401, message: 'Access token is invalid' },
  token_revoked: { status: 401, message: 'Access token has been revoked' },
  invalid_credentials: { status: 401, message: 'Invalid email or password' },
  invalid_grant: { status: 401, message: 'Refresh token is invalid' },
  forbidden: { status: 403, message: 'Not allowed' },
  not_found: { status: 404, message: 'Not found' },
  method_not_allowed: { status: 405, message: 'Method not allowed' },
  conflict: { status: 409, message: 'Conflict' },
  payload_too_large: { status: 413, message: 'Request body is too large' },
  unsupported_media_type: { status: 415, message: 'Request body must be application/json' },
  validation_failed: { status: 422, message: 'Request validation failed' },
  rate_limited: { status: 429, message: 'Too many requests' },
  internal_error: { status: 500, message: 'Internal server error' },
  service_unavailable: { status: 503, message: 'Service temporarily unavailable' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface ErrorDetail {
  field: string;
  location: string;
  message: string;
}

export interface AppErrorOptions {
  /** Overrides the catalogue message; must never contain submitted values or internals. */
  message?: string;
  details?: ErrorDetail[];
  /** Response headers that belong to this error (Allow, Retry-After, WWW-Authenticate). */
  headers?: Record<string, string>;
  /** The underlying error, for logs only. */
  cause?: unknown;
  /** For the security event a 401, 403 or 429 leaves (logs only, never the response). */
  security?: SecurityContext;
}

/** What a refusal adds to its security event: the event's name when not the code's, and who and why. */
export interface SecurityContext {
  event?: string;
  reason?: string;
  userId?: string;
  sessionId?: string;
}

/** The catalogue's message, or the custom one: an error always tells the client something. */
function messageOf(code: ErrorCode, custom: string | undefined): string {
  if (custom === undefined) return ERROR_CATALOGUE[code].message;
  if (custom.trim() === '') throw new TypeError(`AppError ${code}: a custom message must not be empty`);
  return custom;
}

export class AppError extends Error {
  readonly status: number;
  readonly details: ErrorDetail[] | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly security: SecurityContext | undefined;

  constructor(
    readonly code: ErrorCode,
    options: AppErrorOptions = {},
  ) {
    super(messageOf(code, options.message), { cause: options.cause });
    this.name = 'AppError';
    this.status = ERROR_CATALOGUE[code].status;
    this.details = options.details;
    this.headers = options.headers;
    this.security = options.security;
  }
}

/** A dependency needed for this request is down: fail fast and tell the client when to retry. */
export function serviceUnavailable(cause?: unknown, retryAfterSeconds = 5): AppError {
  return new AppError('service_unavailable', {
    cause,
    headers: { 'Retry-After': String(retryAfterSeconds) },
  });
}
