// The error catalogue and the one error handler, on their own: what each kind of failure becomes
// (an AppError, a parser's or Express's client error, anything else), which headers go with it,
// what is logged, and that an internal error never carries a message other than the generic one.
// The modules are loaded inside each test (test/helpers/fresh.ts): the catalogue and the handler's
// code tables are top-level declarations.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config';
import { buildDocument } from '../../src/http/openapi';
import type { AccessClaims } from '../../src/lib/access-tokens';
import type { SecurityEvent } from '../../src/lib/security-log';
import { captureLogger } from '../helpers/log-capture';
import { fresh } from '../helpers/fresh';

type Errors = typeof import('../../src/lib/errors.js');

const load = () => fresh(async () => ({ errors: await import('../../src/lib/errors.js'), handler: await import('../../src/middleware/error-handler.js') }));

interface FailingOptions {
  /** Runs before the failure (a response already started, a request already authenticated). */
  before?: (req: Request, res: Response) => void;
  /** Fail in a middleware in front of every route, rather than in the route /fail. */
  unrouted?: boolean;
}

/** An app whose route /fail fails with what `fail` returns, passed to next; its logs and security events. */
async function failing(fail: (errors: Errors) => unknown, options: FailingOptions = {}) {
  const { errors, handler } = await load();
  const log = captureLogger('debug');
  const events: SecurityEvent[] = [];
  const app = express();
  const failure = (req: Request, res: Response, next: NextFunction) => {
    options.before?.(req, res);
    next(fail(errors));
  };
  app.use((req: Request, _res: Response, next: NextFunction) => {
    req.id = 'req-1';
    next();
  });
  if (options.unrouted) app.use(failure);
  app.all('/fail', failure);
  app.use(handler.errorHandler(log.logger, (event) => events.push(event)));
  const logged = () => log.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { app, logged, events };
}

const errorBody = (code: string, message: string, extra: Record<string, unknown> = {}) => ({ error: { code, message, requestId: 'req-1', ...extra } });

describe('the catalogue', () => {
  it('is the table of docs/api.md: every code with its status and message', async () => {
    const { errors } = await load();
    const doc = readFileSync(path.join(__dirname, '../../docs/api.md'), 'utf8').split('### Error codes')[1]!.split('\n### ')[0]!;
    const rows = [...doc.matchAll(/^\| (\d{3}) \| `(\w+)` \| ([^|]+) \| ([^\n]+) \|$/gm)].map((m) => ({
      code: m[2]!,
      entry: { status: Number(m[1]), message: m[3]!.trim() },
      when: m[4]!,
    }));
    const documented = Object.fromEntries(rows.map((r) => [r.code, r.entry]));
    for (const [code, entry] of Object.entries(errors.ERROR_CATALOGUE)) expect(documented[code], code).toEqual(entry);
    // A documented code the app lacks is answered in front of it (by nginx), and the table says so.
    for (const row of rows.filter((r) => !(r.code in errors.ERROR_CATALOGUE))) expect(row.when, row.code).toContain('never reaches the app');
  });

  it('gives an AppError its code, status and message, or the one given', async () => {
    const { errors } = await load();
    const plain = new errors.AppError('conflict');
    expect([plain.name, plain.code, plain.status, plain.message, plain.details, plain.headers]).toEqual([
      'AppError',
      'conflict',
      409,
      'Conflict',
      undefined,
      undefined,
    ]);
    expect(plain).toBeInstanceOf(Error);
    const cause = new Error('inner');
    const custom = new errors.AppError('conflict', { message: 'Email is already registered', headers: { 'X-A': '1' }, details: [], cause });
    expect([custom.message, custom.headers, custom.details, custom.cause]).toEqual(['Email is already registered', { 'X-A': '1' }, [], cause]);
  });

  it('refuses a custom message that says nothing: an error always tells the client something', async () => {
    const { errors } = await load();
    for (const message of ['', '   ', '\n']) {
      expect(() => new errors.AppError('conflict', { message }), JSON.stringify(message)).toThrow(
        new TypeError('AppError conflict: a custom message must not be empty'),
      );
    }
  });

  it('makes a service_unavailable with Retry-After, 5 seconds unless told', async () => {
    const { errors } = await load();
    const cause = new Error('down');
    const fast = errors.serviceUnavailable(cause);
    expect([fast.code, fast.status, fast.message, fast.cause, fast.headers]).toEqual([
      'service_unavailable',
      503,
      'Service temporarily unavailable',
      cause,
      { 'Retry-After': '5' },
    ]);
    expect(errors.serviceUnavailable(undefined, 30).headers).toEqual({ 'Retry-After': '30' });
  });
});

describe('the envelope in the OpenAPI document', () => {
  // What every integration-test response is checked against (test/helpers/contract.ts).
  const envelope = () => {
    // The document of no route at all still describes the envelope: it is every layer's answer.
    const document = buildDocument([], { config: loadConfig({}), version: '1.0.0' }) as { components: { schemas: Record<string, object> } };
    const ajv = new Ajv({ strict: false });
    addFormats(ajv);
    return ajv.compile({ ...document.components.schemas.Error, components: document.components });
  };

  it('takes what the handler sends', () => {
    const valid = envelope();
    expect(valid(errorBody('not_found', 'Not found'))).toBe(true);
    expect(
      valid(errorBody('validation_failed', 'Request validation failed', { details: [{ field: 'a', location: 'body', message: 'must be a string' }] })),
    ).toBe(true);
  });

  it('refuses an empty message, in the error and in its details', () => {
    const valid = envelope();
    expect(valid(errorBody('not_found', ''))).toBe(false);
    expect(valid(errorBody('validation_failed', 'Request validation failed', { details: [{ field: 'a', location: 'body', message: '' }] }))).toBe(false);
    expect(valid(errorBody('no_such_code', 'Not found'))).toBe(false);
    expect(valid({ error: { code: 'not_found', message: 'Not found' } })).toBe(false);
  });
});

describe('errorHandler', () => {
  it('renders an AppError as its envelope, with its details and headers', async () => {
    const details = [{ field: 'name', location: 'body', message: 'must be a string' }];
    const { app, logged } = await failing((e) => new e.AppError('validation_failed', { details, headers: { 'X-Extra': 'yes' } }));
    const res = await request(app).get('/fail');
    expect(res.status).toBe(422);
    expect(res.body).toEqual(errorBody('validation_failed', 'Request validation failed', { details }));
    expect(res.headers['x-extra']).toBe('yes');
    expect(res.headers['cache-control']).toBeUndefined();
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(logged()).toEqual([]); // client errors are not the server's failures
  });

  it('keeps a custom message on a client error', async () => {
    const { app } = await failing((e) => new e.AppError('conflict', { message: 'Email is already registered' }));
    expect((await request(app).get('/fail')).body).toEqual(errorBody('conflict', 'Email is already registered'));
  });

  it('never sends a custom message with internal_error, and logs the failure with its cause', async () => {
    const cause = new Error('connect ECONNREFUSED /var/run/postgresql/.s.PGSQL.5432');
    const { app, logged } = await failing((e) => new e.AppError('internal_error', { message: 'query failed: SELECT * FROM users', cause }));
    const res = await request(app).post('/fail');
    expect(res.status).toBe(500);
    expect(res.body).toEqual(errorBody('internal_error', 'Internal server error'));
    expect(res.headers['cache-control']).toBe('no-store');
    const [line, ...rest] = logged();
    expect(rest).toEqual([]);
    expect(line).toMatchObject({ level: 'error', message: 'request failed', code: 'internal_error', method: 'POST', path: '/fail' });
    expect(JSON.stringify(line)).toContain('ECONNREFUSED');
  });

  it('turns anything that is not an AppError into internal_error, with the generic message', async () => {
    for (const [i, thrown] of [new Error('secret at /srv/app/src/x.ts:12'), 'a string', 42, { message: 'an object' }].entries()) {
      const { app, logged } = await failing(() => thrown);
      const res = await request(app).get('/fail');
      expect(res.status, `case ${i}`).toBe(500);
      expect(res.body).toEqual(errorBody('internal_error', 'Internal server error'));
      expect(res.headers['cache-control']).toBe('no-store');
      expect(logged()).toHaveLength(1);
    }
    // The log holds what was thrown, for the operator (the client saw none of it).
    const { app, logged } = await failing(() => new Error('secret at /srv/app/src/x.ts:12'));
    await request(app).get('/fail');
    expect(JSON.stringify(logged()[0])).toContain('secret at /srv/app/src/x.ts:12');
  });

  it('maps the body parser failures onto the catalogue', async () => {
    const cases: [string, number, string][] = [
      ['entity.parse.failed', 400, 'invalid_json'],
      ['entity.too.large', 413, 'payload_too_large'],
      ['encoding.unsupported', 415, 'unsupported_media_type'],
      ['charset.unsupported', 415, 'unsupported_media_type'],
      ['entity.verify.failed', 400, 'bad_request'],
      ['request.aborted', 400, 'bad_request'],
      ['request.size.invalid', 400, 'bad_request'],
    ];
    for (const [type, status, code] of cases) {
      // Whatever status the parser put on it, or none, the type decides.
      for (const fields of [{ type, status: 418, expose: true }, { type }]) {
        const { app } = await failing(() => Object.assign(new Error('parser said so'), fields));
        const res = await request(app).get('/fail');
        expect([res.status, res.body.error.code], JSON.stringify(fields)).toEqual([status, code]);
      }
    }
  });

  it("reads only its own table for a parser type: a prototype's name or a list is no type", async () => {
    for (const type of ['constructor', 'toString', '__proto__', ['entity.too.large']]) {
      const { app } = await failing(() => Object.assign(new Error('odd'), { type }));
      const res = await request(app).get('/fail');
      expect([res.status, res.headers['content-type'], res.body.error?.code], JSON.stringify(type)).toEqual([
        500,
        'application/json; charset=utf-8',
        'internal_error',
      ]);
    }
  });

  it('maps client errors raised by Express and its parsers by status, and hides the rest', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ status: 400 }, 400, 'bad_request'],
      [{ status: 401 }, 401, 'unauthorized'],
      [{ status: 403 }, 403, 'forbidden'],
      [{ status: 404 }, 404, 'not_found'],
      [{ statusCode: 404 }, 404, 'not_found'],
      [{ status: 405 }, 405, 'method_not_allowed'],
      [{ status: 409 }, 409, 'conflict'],
      [{ status: 413 }, 413, 'payload_too_large'],
      [{ status: 415 }, 415, 'unsupported_media_type'],
      [{ status: 422 }, 422, 'validation_failed'],
      [{ status: 429 }, 429, 'rate_limited'],
      [{ status: 418 }, 400, 'bad_request'], // a client error the catalogue has no code for
      [{ status: 499 }, 400, 'bad_request'],
      [{ status: 404, statusCode: 500 }, 404, 'not_found'], // status wins
      [{ status: '404', statusCode: 409 }, 409, 'conflict'], // a status must be a number
      [{ statusCode: '404' }, 500, 'internal_error'],
      [{ status: 400, expose: false }, 500, 'internal_error'], // not meant for the client
      [{ status: 500 }, 500, 'internal_error'],
      [{ status: 503 }, 500, 'internal_error'], // a 5xx from elsewhere is still our failure
      [{ status: 399 }, 500, 'internal_error'],
      [{ status: 500, statusCode: 400 }, 500, 'internal_error'],
      [{ type: 'unknown.type', status: 400 }, 400, 'bad_request'],
      [{ type: 7 }, 500, 'internal_error'],
    ];
    for (const [fields, status, code] of cases) {
      const { app, logged } = await failing(() => Object.assign(new Error('from a library'), fields));
      const res = await request(app).get('/fail');
      expect([res.status, res.body.error.code], JSON.stringify(fields)).toEqual([status, code]);
      expect(res.body.error.message).not.toContain('library');
      expect(logged().length, JSON.stringify(fields)).toBe(status >= 500 ? 1 : 0);
    }
  });

  it('sends WWW-Authenticate with the authentication failures', async () => {
    for (const [code, challenge] of [
      ['unauthorized', 'Bearer'],
      ['invalid_token', 'Bearer error="invalid_token"'],
      ['token_revoked', 'Bearer error="invalid_token"'],
    ] as const) {
      const { app } = await failing((e) => new e.AppError(code));
      const res = await request(app).get('/fail');
      expect([res.status, res.headers['www-authenticate']], code).toEqual([401, challenge]);
    }
    for (const code of ['invalid_credentials', 'invalid_grant', 'forbidden'] as const) {
      const { app } = await failing((e) => new e.AppError(code));
      expect((await request(app).get('/fail')).headers['www-authenticate'], code).toBeUndefined();
    }
  });

  it('forbids caching a 429 and every 5xx, and only those', async () => {
    for (const [code, noStore] of [
      ['rate_limited', true],
      ['service_unavailable', true],
      ['internal_error', true],
      ['not_found', false],
      ['payload_too_large', false],
      ['conflict', false],
    ] as const) {
      const { app } = await failing((e) => new e.AppError(code));
      expect((await request(app).get('/fail')).headers['cache-control'], code).toBe(noStore ? 'no-store' : undefined);
    }
  });

  it('logs an unavailable dependency as a one-line warning naming its cause, without a stack', async () => {
    const { app, logged } = await failing((e) => e.serviceUnavailable(new Error('redis down')));
    const res = await request(app).get('/fail');
    expect([res.status, res.headers['retry-after']]).toEqual([503, '5']);
    expect(logged()).toEqual([
      {
        level: 'warn',
        message: 'request refused: dependency unavailable',
        reason: 'redis down',
        method: 'GET',
        path: '/fail',
        count: 1,
        timestamp: expect.any(String),
      },
    ]);
  });

  it('names no reason for a 503 whose cause is not an Error', async () => {
    const { app, logged } = await failing((e) => e.serviceUnavailable('down'));
    await request(app).get('/fail');
    expect(logged()).toEqual([
      { level: 'warn', message: 'request refused: dependency unavailable', method: 'GET', path: '/fail', count: 1, timestamp: expect.any(String) },
    ]);
  });

  it('warns about 503s at most once a second, counting the requests each line stands for', async () => {
    const { app, logged } = await failing((e) => e.serviceUnavailable(new Error('pool exhausted')));
    const now = vi.spyOn(Date, 'now');
    try {
      for (const t of [50_000, 50_500, 50_999, 51_000, 51_001, 52_000]) {
        now.mockReturnValue(t);
        expect((await request(app).get('/fail')).status).toBe(503);
      }
    } finally {
      now.mockRestore();
    }
    expect(logged().map((l) => l.count)).toEqual([1, 3, 2]);
    expect(logged().every((l) => l.level === 'warn')).toBe(true);
  });

  it('still logs a server failure that is not unavailability as an error', async () => {
    const { app, logged } = await failing(() => new Error('boom'));
    expect((await request(app).get('/fail')).status).toBe(500);
    expect(logged()).toEqual([expect.objectContaining({ level: 'error', message: 'request failed', code: 'internal_error' })]);
  });

  it('logs the AppError itself when it has no cause', async () => {
    const { app, logged } = await failing((e) => new e.AppError('internal_error'));
    await request(app).get('/fail');
    expect(JSON.stringify(logged()[0])).toContain('Internal server error');
  });

  it('leaves a response whose headers are sent to Express, which ends the connection', async () => {
    const { app, logged } = await failing((e) => new e.AppError('internal_error'), {
      before: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
      },
    });
    // Express's final handler destroys the socket: the client sees the body cut short.
    await expect(request(app).get('/fail')).rejects.toThrow();
    expect(logged()).toHaveLength(1);
  });

  it('hands Express the original error when the headers are already sent', async () => {
    const { errors, handler } = await load();
    const original = new errors.AppError('internal_error');
    const handedOn: unknown[] = [];
    const app = express();
    app.get('/fail', (_req, res, next) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      next(original);
    });
    app.use(handler.errorHandler(captureLogger().logger));
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      handedOn.push(err);
      res.destroy();
    });
    await expect(request(app).get('/fail')).rejects.toThrow();
    expect(handedOn).toEqual([original]);
  });
});

describe('security events', () => {
  const claims = (sub: string): AccessClaims => ({ sub, sid: 'session-1', jti: 'token-1', iat: 1, exp: 2 });

  it('leaves one for each refusal of who is asking (401, 403, 429), named after its code', async () => {
    for (const [code, event] of [
      ['unauthorized', 'auth_rejected'],
      ['invalid_token', 'auth_rejected'],
      ['token_revoked', 'auth_rejected'],
      ['invalid_credentials', 'login_failed'],
      ['invalid_grant', 'refresh_rejected'],
      ['forbidden', 'access_denied'],
      ['rate_limited', 'rate_limited'],
    ] as const) {
      const { app, events } = await failing((e) => new e.AppError(code));
      const res = await request(app).post('/fail');
      expect(events, code).toEqual([
        {
          event,
          status: res.status,
          code,
          reason: undefined,
          userId: undefined,
          sessionId: undefined,
          ip: expect.any(String),
          method: 'POST',
          route: '/fail',
          requestId: 'req-1',
        },
      ]);
    }
  });

  it('leaves none for other failures', async () => {
    for (const code of ['bad_request', 'not_found', 'validation_failed', 'conflict', 'internal_error', 'service_unavailable'] as const) {
      const { app, events } = await failing((e) => new e.AppError(code));
      await request(app).get('/fail');
      expect(events, code).toEqual([]);
    }
  });

  it('takes the name, reason, user and session the error gives', async () => {
    const security = { event: 'refresh_reuse', reason: 'used twice', userId: 'user-1', sessionId: 'session-9' };
    const { app, events } = await failing((e) => new e.AppError('invalid_grant', { security }), { before: (req) => (req.auth = claims('someone-else')) });
    await request(app).get('/fail');
    expect(events).toEqual([expect.objectContaining({ ...security, code: 'invalid_grant', status: 401 })]);
  });

  it('names the authenticated user, or the one the early token check found', async () => {
    const authenticated = await failing((e) => new e.AppError('forbidden'), {
      before: (req) => {
        req.auth = claims('user-2');
        req.earlyRevocationCheck = { token: 't', claims: claims('user-3'), active: Promise.resolve(true) };
      },
    });
    await request(authenticated.app).get('/fail');
    expect(authenticated.events[0]?.userId).toBe('user-2');
    const early = await failing((e) => new e.AppError('rate_limited'), {
      before: (req) => (req.earlyRevocationCheck = { token: 't', claims: claims('user-3'), active: Promise.resolve(true) }),
    });
    await request(early.app).get('/fail');
    expect(early.events[0]?.userId).toBe('user-3');
  });

  it('names the route template, or says none matched', async () => {
    const { app, events } = await failing((e) => new e.AppError('rate_limited'), { unrouted: true });
    await request(app).get('/fail');
    expect(events[0]?.route).toBe('(unmatched)');
  });

  it('is optional', async () => {
    const { errors, handler } = await load();
    const app = express();
    app.get('/fail', (_req, _res, next) => next(new errors.AppError('forbidden')));
    app.use(handler.errorHandler(captureLogger().logger));
    expect((await request(app).get('/fail')).status).toBe(403);
  });
});
