// Which database failures are an outage or saturation rather than a bug. Those become 503
// service_unavailable with Retry-After (the client may try again shortly, or elsewhere); anything
// else, such as a syntax error or an unhandled constraint violation, stays an error of the code (500).
import { AppError, serviceUnavailable } from '../errors';

/** Socket errors: the server (or the pooler in front of it) is not there, or went away. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * SQLSTATEs of an overloaded or stopping server: too_many_connections, query_canceled (the
 * statement_timeout cut a statement off: under load a fast query became slow), admin_shutdown,
 * crash_shutdown, cannot_connect_now (starting or in recovery). Class 08 (connection exceptions,
 * which is also how PgBouncer reports a full pool or an unreachable server) is matched by its prefix.
 */
const SQLSTATES = new Set(['53300', '57014', '57P01', '57P02', '57P03']);

/** node-postgres and pg-pool raise these as plain Errors, without a code. */
const CLIENT_MESSAGES = [
  'timeout exceeded when trying to connect', // no pool connection free within the wait
  'Connection terminated due to connection timeout',
  'Connection terminated unexpectedly',
  'Query read timeout', // the client-side bound: the server did not answer in time
  'Client has encountered a connection error and is not queryable',
  'Cannot use a pool after calling end on the pool', // shutting down
];

function unavailableCode(code: unknown): boolean {
  return typeof code === 'string' && (NETWORK_CODES.has(code) || SQLSTATES.has(code) || code.startsWith('08'));
}

/** Whether err (or the errors it wraps) says the database is down or saturated. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { code } = err as Error & { code?: unknown };
  if (unavailableCode(code) || CLIENT_MESSAGES.includes(err.message)) return true;
  // A connection to a name with several addresses fails with an AggregateError of each attempt.
  if (err instanceof AggregateError && err.errors.some((e) => isDatabaseUnavailable(e))) return true;
  return err.cause !== undefined && isDatabaseUnavailable(err.cause);
}

/** The error to throw for a database failure: 503 when it is an outage or saturation, itself otherwise. */
export function classifyDatabaseError(err: unknown): unknown {
  return isDatabaseUnavailable(err) ? serviceUnavailable(err) : err;
}

/** Whether err is the 503 that classifyDatabaseError (or the migration gate) produced. */
export function isServiceUnavailable(err: unknown): err is AppError {
  return err instanceof AppError && err.code === 'service_unavailable';
}
