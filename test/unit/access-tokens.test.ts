// Access tokens and bearer authentication on their own: what a token holds, every way a presented
// token is refused (and why, for the security log), key rotation by kid, and the authenticate and
// early-revocation middleware in front of a route. The modules are loaded inside each test
// (test/helpers/fresh.ts): the algorithm, the token type and the header pattern are top-level
// declarations.
import { createHash, createSecretKey, randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import type { Config } from '../../src/config';
import type { SecurityEvent } from '../../src/lib/security-log';
import { fresh } from '../helpers/fresh';
import { captureLogger } from '../helpers/log-capture';

const load = () =>
  fresh(async () => ({
    tokens: await import('../../src/lib/access-tokens.js'),
    errors: await import('../../src/lib/errors.js'),
    authenticate: await import('../../src/middleware/authenticate.js'),
    context: await import('../../src/lib/request-context.js'),
    handler: await import('../../src/middleware/error-handler.js'),
  }));

const SECRET = 's'.repeat(40);
const OLD_SECRET = 'o'.repeat(40);
const JWT_CONFIG: Config['jwt'] = {
  accessSecret: SECRET,
  previousAccessSecrets: [OLD_SECRET],
  refreshSecret: 'r'.repeat(40),
  previousRefreshSecrets: [],
  generatedSecrets: false,
  issuer: 'rampart',
  audience: 'rampart-api',
  accessTtlMs: 90_000,
  refreshTtlMs: 86_400_000,
  sessionMaxAgeMs: 7 * 86_400_000,
};

const now = () => Math.floor(Date.now() / 1000);
const kidOf = (secret: string) => createHash('sha256').update(`rampart-kid:${secret}`).digest('base64url').slice(0, 16);

interface Forge {
  payload?: Record<string, unknown>;
  header?: Record<string, unknown>;
  secret?: string;
  algorithm?: jwt.Algorithm;
}

/** A token made by hand: valid in every respect unless told otherwise. */
function forge({ payload = {}, header = {}, secret = SECRET, algorithm = 'HS256' }: Forge = {}): string {
  const claims = { sub: 'user-1', sid: 'session-1', jti: randomUUID(), iat: now(), exp: now() + 60, iss: 'rampart', aud: 'rampart-api', ...payload };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete (claims as Record<string, unknown>)[name];
  // jsonwebtoken adds an iat of its own unless told not to.
  const noTimestamp = !('iat' in claims);
  return jwt.sign(claims, createSecretKey(Buffer.from(secret)), {
    algorithm,
    noTimestamp,
    header: { alg: algorithm, typ: 'at+jwt', kid: kidOf(secret), ...header },
  });
}

/** Why verify() refused `token` (the reason the security log records), or 'accepted'. */
async function verdict(token: string, config: Config['jwt'] = JWT_CONFIG): Promise<string> {
  const { tokens, errors } = await load();
  try {
    new tokens.AccessTokens(config).verify(token);
    return 'accepted';
  } catch (err) {
    expect(err).toBeInstanceOf(errors.AppError);
    expect((err as InstanceType<typeof errors.AppError>).code).toBe('invalid_token');
    return ((err as Error).cause as Error).message;
  }
}

describe('AccessTokens', () => {
  it('issues an HS256 at+jwt with the key id, subject, session, id, issuer, audience and lifetime', async () => {
    const { tokens } = await load();
    const issued = new tokens.AccessTokens(JWT_CONFIG).issue('user-7', 'session-7');
    const { header, payload } = jwt.decode(issued.token, { complete: true }) as unknown as {
      header: Record<string, unknown>;
      payload: Record<string, unknown>;
    };
    expect(header).toEqual({ alg: 'HS256', typ: 'at+jwt', kid: kidOf(SECRET) });
    expect(payload).toEqual({
      sub: 'user-7',
      sid: 'session-7',
      jti: issued.jti,
      iat: expect.any(Number),
      exp: (payload.iat as number) + 90,
      iss: 'rampart',
      aud: 'rampart-api',
    });
    expect(issued.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(issued.expiresIn).toBe(90);
  });

  it('verifies what it issued, returning exactly the claims', async () => {
    const { tokens } = await load();
    const access = new tokens.AccessTokens(JWT_CONFIG);
    const issued = access.issue('user-7', 'session-7');
    const claims = access.verify(issued.token);
    expect(claims).toEqual({ sub: 'user-7', sid: 'session-7', jti: issued.jti, iat: expect.any(Number), exp: claims.iat + 90 });
  });

  it('gives a lifetime in whole seconds, at least one', async () => {
    const { tokens } = await load();
    const ttl = (accessTtlMs: number) => new tokens.AccessTokens({ ...JWT_CONFIG, accessTtlMs }).issue('u', 's').expiresIn;
    expect([ttl(1), ttl(499), ttl(1499), ttl(1500), ttl(15 * 60_000)]).toEqual([1, 1, 1, 2, 900]);
  });

  it('names keys by a stable digest of the secret, the same on every worker', async () => {
    const { tokens } = await load();
    expect(tokens.keyId(SECRET)).toBe(kidOf(SECRET));
    expect(tokens.keyId(SECRET)).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(tokens.keyId(OLD_SECRET)).not.toBe(tokens.keyId(SECRET));
  });

  it('accepts a token signed with a previous secret while that secret is listed', async () => {
    const old = forge({ secret: OLD_SECRET });
    expect(await verdict(old)).toBe('accepted');
    expect(await verdict(old, { ...JWT_CONFIG, previousAccessSecrets: [] })).toBe('unknown kid');
  });

  it('refuses what is not a JWT', async () => {
    for (const token of ['garbage', '', 'a.b.c', Buffer.from('{"alg":"HS256"}').toString('base64url')]) expect(await verdict(token), token).toBe('not a JWT');
    // A well-formed JWS whose payload is a string, not a claims object.
    const stringPayload = jwt.sign('just a string', createSecretKey(Buffer.from(SECRET)), {
      algorithm: 'HS256',
      header: { alg: 'HS256', typ: 'at+jwt', kid: kidOf(SECRET) },
    });
    expect(await verdict(stringPayload)).toBe('not a JWT');
  });

  it('refuses any algorithm but HS256, "none" included', async () => {
    expect(await verdict(forge({ algorithm: 'HS512' }))).toBe('algorithm not allowed');
    expect(await verdict(forge({ algorithm: 'HS384' }))).toBe('algorithm not allowed');
    const [, body] = forge().split('.');
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: kidOf(SECRET) })).toString('base64url')}.${body}.`;
    expect(await verdict(unsigned)).toBe('algorithm not allowed');
  });

  it('refuses a token that does not say it is an access token (RFC 9068 typ)', async () => {
    for (const typ of ['JWT', 'jwt', undefined, 5, 'at+jwt2', 'xat+jwt', 'application/jwt', 'at+jwtapplication/', 'x/application/at+jwt']) {
      expect(await verdict(forge({ header: { typ } })), String(typ)).toBe('not an access token');
    }
    for (const typ of ['application/at+jwt', 'AT+JWT', 'Application/At+Jwt']) expect(await verdict(forge({ header: { typ } })), typ).toBe('accepted');
  });

  it('refuses an unknown, missing or non-string key id', async () => {
    for (const kid of ['nope', undefined, 42, kidOf('another secret of some length')]) {
      expect(await verdict(forge({ header: { kid } })), String(kid)).toBe('unknown kid');
    }
  });

  it('refuses a signature that does not match the key its kid names', async () => {
    expect(await verdict(forge({ secret: OLD_SECRET, header: { kid: kidOf(SECRET) } }))).toBe('invalid signature');
  });

  it('refuses an expired token beyond five seconds of clock tolerance', async () => {
    expect(await verdict(forge({ payload: { iat: now() - 100, exp: now() - 3 } }))).toBe('accepted');
    expect(await verdict(forge({ payload: { iat: now() - 100, exp: now() - 7 } }))).toBe('expired');
  });

  it('refuses another issuer or audience', async () => {
    expect(await verdict(forge({ payload: { iss: 'someone-else' } }))).toMatch(/^jwt issuer invalid/);
    expect(await verdict(forge({ payload: { aud: 'another-api' } }))).toMatch(/^jwt audience invalid/);
  });

  it('refuses a token without exp or iat: it would never expire', async () => {
    expect(await verdict(forge({ payload: { exp: undefined } }))).toBe('missing exp or iat');
    expect(await verdict(forge({ payload: { iat: undefined } }))).toBe('missing exp or iat');
  });

  it('refuses a token without a string subject, id or session', async () => {
    for (const claim of ['sub', 'jti', 'sid']) {
      expect(await verdict(forge({ payload: { [claim]: undefined } })), claim).toBe('missing sub, jti or sid');
    }
    expect(await verdict(forge({ payload: { sid: 5 } }))).toBe('missing sub, jti or sid');
  });
});

describe('AccessTokens: tokens verified before', () => {
  it('skips the signature check for a token it verified, and only for exactly that text', async () => {
    const { tokens } = await load();
    const access = new tokens.AccessTokens(JWT_CONFIG);
    const token = forge();
    const spy = vi.spyOn(jwt, 'verify');
    const first = access.verify(token);
    expect(access.verify(token)).toBe(first);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(Object.isFrozen(first)).toBe(true);
    // One character off is another token: checked, and refused.
    const [head, body, signature] = token.split('.');
    const tampered = `${head}.${body}.${signature!.slice(0, -1)}${signature!.endsWith('A') ? 'B' : 'A'}`;
    expect(() => access.verify(tampered)).toThrow();
    expect(spy).toHaveBeenCalledTimes(2);
    spy.mockRestore();
  });

  it('never remembers a refused token', async () => {
    const { tokens } = await load();
    const access = new tokens.AccessTokens(JWT_CONFIG);
    const token = forge({ secret: OLD_SECRET, header: { kid: kidOf(SECRET) } });
    const spy = vi.spyOn(jwt, 'verify');
    expect(() => access.verify(token)).toThrow();
    expect(() => access.verify(token)).toThrow();
    expect(spy).toHaveBeenCalledTimes(2);
    spy.mockRestore();
  });

  it('still refuses a remembered token once it expires, from the second jsonwebtoken would', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ['Date'] });
    try {
      const { tokens } = await load();
      const access = new tokens.AccessTokens(JWT_CONFIG);
      const token = forge({ payload: { exp: now() + 10 } });
      expect(access.verify(token).sub).toBe('user-1');
      vi.setSystemTime(Date.now() + 14_999);
      expect(access.verify(token).sub).toBe('user-1');
      vi.setSystemTime(Date.now() + 1);
      expect(await verdictOf(() => access.verify(token))).toBe('expired');
      // And it is forgotten: checked again (and refused again) from scratch.
      const spy = vi.spyOn(jwt, 'verify');
      expect(await verdictOf(() => access.verify(token))).toBe('expired');
      expect(spy).toHaveBeenCalledTimes(1);
      spy.mockRestore();
    } finally {
      vi.useRealTimers();
    }
  });

  it('remembers a bounded number, forgetting the oldest first', async () => {
    const { tokens } = await load();
    const access = new tokens.AccessTokens(JWT_CONFIG);
    const first = forge();
    access.verify(first);
    const later = Array.from({ length: 10_000 }, (_, i) => forge({ payload: { jti: `j${i}` } }));
    for (const token of later) access.verify(token);
    const spy = vi.spyOn(jwt, 'verify');
    access.verify(later[1]!);
    access.verify(later.at(-1)!);
    expect(spy).toHaveBeenCalledTimes(0);
    access.verify(first);
    expect(spy).toHaveBeenCalledTimes(1);
    spy.mockRestore();
  });
});

async function verdictOf(call: () => unknown): Promise<string> {
  try {
    call();
    return 'accepted';
  } catch (err) {
    return ((err as Error).cause as Error).message;
  }
}

describe('authenticate', () => {
  interface Setup {
    /** What the session store says of the token: active, revoked, or down. */
    state?: 'active' | 'revoked' | 'down';
    /** Run startRevocationCheck in front, as the app does. */
    early?: boolean;
  }

  async function guarded({ state = 'active', early = true }: Setup = {}) {
    const m = await load();
    const access = new m.tokens.AccessTokens(JWT_CONFIG);
    const checks: string[] = [];
    const failures: string[] = [];
    const storeErrors: string[] = [];
    const sessions = {
      isActive: async (claims: { jti: string }) => {
        checks.push(claims.jti);
        if (state === 'down') throw m.errors.serviceUnavailable(new Error('store down'));
        return state === 'active';
      },
    } as unknown as Parameters<typeof m.authenticate.authenticate>[0]['sessions'];
    const events: SecurityEvent[] = [];
    const app = express();
    app.use((req: Request, _res: Response, next: NextFunction) => {
      req.id = 'req-1';
      m.context.requestContext.run({ requestId: 'req-1' }, next);
    });
    if (early) app.use(m.authenticate.startRevocationCheck({ tokens: access, sessions }));
    app.get('/open', (req, res) => res.json({ early: req.earlyRevocationCheck?.claims.sub ?? null }));
    const onStoreError = () => storeErrors.push('store');
    app.get('/me', m.authenticate.authenticate({ tokens: access, sessions, onFailure: (reason) => failures.push(reason), onStoreError }), (req, res) => {
      res.json({ auth: req.auth, contextUser: m.context.requestContext.getStore()?.userId ?? null });
    });
    app.use(m.handler.errorHandler(captureLogger().logger, (event) => events.push(event)));
    return { app, access, checks, failures, events, storeErrors };
  }

  it('lets a valid, active token through with its claims, and names the user in the request context', async () => {
    const { app, access, checks } = await guarded();
    const issued = access.issue('user-9', 'session-9');
    const res = await request(app).get('/me').set('Authorization', `Bearer ${issued.token}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ auth: access.verify(issued.token), contextUser: 'user-9' });
    expect(checks).toEqual([issued.jti]); // the early read, reused: one store round trip
  });

  it('takes the scheme in any case and spaces around the token', async () => {
    const { app, access } = await guarded({ early: false });
    const { token } = access.issue('user-9', 'session-9');
    for (const header of [`bearer ${token}`, `BEARER ${token}`, `Bearer   ${token}`, `Bearer ${token}  `]) {
      expect((await request(app).get('/me').set('Authorization', header)).status, header).toBe(200);
    }
  });

  it('answers 401 unauthorized without a bearer credential, saying which', async () => {
    const { app, failures, events } = await guarded();
    const none = await request(app).get('/me');
    expect([none.status, none.body.error.code, none.headers['www-authenticate']]).toEqual([401, 'unauthorized', 'Bearer']);
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Token abc', 'Bearer a b', 'Bearer a,b', 'xBearer abc', 'Bearer abc=x']) {
      const res = await request(app).get('/me').set('Authorization', header);
      expect([res.status, res.body.error.code], header).toEqual([401, 'unauthorized']);
    }
    expect(failures).toEqual(['no credentials', ...Array(8).fill('not a bearer credential')]);
    expect(events.map((e) => e.reason)).toEqual(failures);
  });

  it('answers 401 invalid_token with the reason verification gave', async () => {
    const { app, failures, checks } = await guarded();
    const res = await request(app).get('/me').set('Authorization', 'Bearer not.a.jwt');
    expect([res.status, res.body.error.code, res.headers['www-authenticate']]).toEqual([401, 'invalid_token', 'Bearer error="invalid_token"']);
    const foreign = forge({ payload: { iss: 'elsewhere' } });
    await request(app).get('/me').set('Authorization', `Bearer ${foreign}`).expect(401);
    expect(failures).toEqual(['not a JWT', expect.stringMatching(/^jwt issuer invalid/)]);
    expect(checks).toEqual([]); // nothing invalid reaches the store
  });

  it('answers 401 token_revoked for a token whose session ended, naming the user', async () => {
    const { app, access, failures, events } = await guarded({ state: 'revoked' });
    const res = await request(app)
      .get('/me')
      .set('Authorization', `Bearer ${access.issue('user-4', 'session-4').token}`);
    expect([res.status, res.body.error.code]).toEqual([401, 'token_revoked']);
    expect(failures).toEqual(['revoked']);
    expect(events).toEqual([expect.objectContaining({ reason: 'revoked', userId: 'user-4' })]);
  });

  it('fails closed with 503 when the store cannot say, early check or not', async () => {
    for (const early of [true, false]) {
      const { app, access, failures, storeErrors } = await guarded({ state: 'down', early });
      const res = await request(app)
        .get('/me')
        .set('Authorization', `Bearer ${access.issue('u', 's').token}`);
      expect([res.status, res.body.error.code], String(early)).toEqual([503, 'service_unavailable']);
      // Counted as the store's failure (an alert), not as the client's.
      expect(storeErrors).toEqual(['store']);
      expect(failures).toEqual([]);
    }
  });

  it('fails closed with 503 without a store-error hook too', async () => {
    const m = await load();
    const access = new m.tokens.AccessTokens(JWT_CONFIG);
    const sessions = {
      isActive: async () => {
        throw m.errors.serviceUnavailable(new Error('store down'));
      },
    } as unknown as Parameters<typeof m.authenticate.authenticate>[0]['sessions'];
    const app = express();
    app.get('/me', m.authenticate.authenticate({ tokens: access, sessions }), (_req, res) => res.json({}));
    app.use(m.handler.errorHandler(captureLogger().logger));
    const res = await request(app)
      .get('/me')
      .set('Authorization', `Bearer ${access.issue('u', 's').token}`);
    expect([res.status, res.body.error.code]).toEqual([503, 'service_unavailable']);
  });

  it('reports no store error when the store answers, whatever it says', async () => {
    for (const state of ['active', 'revoked'] as const) {
      const { app, access, storeErrors } = await guarded({ state });
      await request(app)
        .get('/me')
        .set('Authorization', `Bearer ${access.issue('u', 's').token}`);
      await request(app).get('/me').set('Authorization', 'Bearer not.a.jwt');
      expect(storeErrors, state).toEqual([]);
    }
  });

  it('never takes the early check of another token for the one it is given', async () => {
    const m = await load();
    const access = new m.tokens.AccessTokens(JWT_CONFIG);
    const sessions = { isActive: async () => true } as unknown as Parameters<typeof m.authenticate.authenticate>[0]['sessions'];
    const other = access.issue('user-other', 'session-other');
    const mine = access.issue('user-mine', 'session-mine');
    const app = express();
    app.use((req: Request, _res: Response, next: NextFunction) => {
      req.earlyRevocationCheck = { token: other.token, claims: access.verify(other.token), active: Promise.resolve(true) };
      next();
    });
    // No failure hook and no request context here: both are optional.
    app.get('/me', m.authenticate.authenticate({ tokens: access, sessions }), (req, res) => res.json({ sub: req.auth?.sub }));
    app.use(m.handler.errorHandler(captureLogger().logger));
    expect((await request(app).get('/me').set('Authorization', `Bearer ${mine.token}`)).body).toEqual({ sub: 'user-mine' });
    expect((await request(app).get('/me').set('Authorization', 'Bearer not.a.jwt')).status).toBe(401);
  });

  it('checks the token it is given, not an early check of another one', async () => {
    const { app, access, checks } = await guarded({ early: false });
    const issued = access.issue('user-1', 'session-1');
    expect((await request(app).get('/me').set('Authorization', `Bearer ${issued.token}`)).status).toBe(200);
    expect(checks).toEqual([issued.jti]);
  });
});

describe('startRevocationCheck', () => {
  it('starts the revocation read for a valid-looking token, and only then', async () => {
    const m = await load();
    const access = new m.tokens.AccessTokens(JWT_CONFIG);
    let reads = 0;
    const sessions = {
      isActive: async () => {
        reads++;
        throw m.errors.serviceUnavailable(new Error('store down'));
      },
    } as unknown as Parameters<typeof m.authenticate.startRevocationCheck>[0]['sessions'];
    const app = express();
    app.use(m.authenticate.startRevocationCheck({ tokens: access, sessions }));
    app.get('/open', (req, res) => res.json({ sub: req.earlyRevocationCheck?.claims.sub ?? null, token: req.earlyRevocationCheck?.token ?? null }));
    const { token } = access.issue('user-5', 'session-5');
    // A route that never authenticates: the failed read is not an unhandled rejection.
    expect((await request(app).get('/open').set('Authorization', `Bearer ${token}`)).body).toEqual({ sub: 'user-5', token });
    expect((await request(app).get('/open').set('Authorization', 'Bearer not.a.jwt')).body).toEqual({ sub: null, token: null });
    expect((await request(app).get('/open')).body).toEqual({ sub: null, token: null });
    expect(reads).toBe(1);
  });
});
