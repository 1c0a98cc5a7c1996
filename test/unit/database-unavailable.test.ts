// Which database failures are an outage or saturation (503 service_unavailable with Retry-After)
// and which stay bugs (500): each kind the pg client, pg-pool, the network and PostgreSQL raise.
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/lib/errors';
import { classifyDatabaseError, isDatabaseUnavailable, isServiceUnavailable } from '../../src/lib/db/unavailable';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('database failures that are an outage or saturation', () => {
  it.each<[string, unknown]>([
    ['pool exhausted', new Error('timeout exceeded when trying to connect')],
    ['connection timeout', new Error('Connection terminated due to connection timeout')],
    ['connection lost', new Error('Connection terminated unexpectedly')],
    ['client-side query timeout', new Error('Query read timeout')],
    ['a client broken earlier', new Error('Client has encountered a connection error and is not queryable')],
    ['a pool shutting down', new Error('Cannot use a pool after calling end on the pool')],
    ...['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].map((c): [string, unknown] => [
      c,
      withCode(c),
    ]),
    ['too_many_connections', withCode('53300')],
    ['statement_timeout (query_canceled)', withCode('57014', 'canceling statement due to statement timeout')],
    ['admin_shutdown', withCode('57P01')],
    ['crash_shutdown', withCode('57P02')],
    ['cannot_connect_now', withCode('57P03')],
    ['connection_exception', withCode('08000')],
    ['connection_failure', withCode('08006')],
    ['protocol_violation (PgBouncer: no more connections, query_wait_timeout)', withCode('08P01')],
    ['refused on every address', new AggregateError([withCode('EADDRNOTAVAIL'), withCode('ECONNREFUSED')], 'connect failed')],
    ['wrapped', new Error('outer', { cause: withCode('ECONNRESET') })],
  ])('%s', (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true);
    const classified = classifyDatabaseError(err);
    expect(classified).toBeInstanceOf(AppError);
    expect(classified).toMatchObject({ code: 'service_unavailable', status: 503, headers: { 'Retry-After': '5' }, cause: err });
    expect(isServiceUnavailable(classified)).toBe(true);
  });
});

describe('database failures that stay bugs', () => {
  it.each<[string, unknown]>([
    ['syntax error', withCode('42601', 'syntax error at or near "SELEC"')],
    ['unique violation', withCode('23505', 'duplicate key value')],
    ['check violation', withCode('23514')],
    ['undefined table', withCode('42P01')],
    ['disk full (not a load problem a retry fixes)', withCode('53100')],
    ['a code that merely contains 08', withCode('42808')],
    ['a code that is not a string', Object.assign(new Error('x'), { code: 8 })],
    ['a plain error', new Error('timeout exceeded when trying to connect, and more')],
    ['an aggregate of bugs', new AggregateError([withCode('42601')], 'x')],
    ['wrapped bug', new Error('outer', { cause: withCode('23505') })],
    ['not an Error', { code: 'ECONNREFUSED', message: 'Query read timeout' }],
    ['nothing', undefined],
  ])('%s', (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(false);
    expect(classifyDatabaseError(err)).toBe(err);
    expect(isServiceUnavailable(err)).toBe(false);
  });

  it('leaves other AppErrors alone', () => {
    expect(isServiceUnavailable(new AppError('conflict'))).toBe(false);
    expect(isServiceUnavailable(new AppError('service_unavailable'))).toBe(true);
  });
});
