// Accounts and tokens against the real stores: the whole flow, every token attack, rotation and
// reuse, concurrency, logout, logout-all and key rotation.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { keyId } from '../../src/lib/access-tokens';
import type Redis from 'ioredis';
import { RedisStore } from '../../src/lib/store/redis-store';
import { createTestContext, type TestContext } from '../helpers/app';
import { NO_REDIS_REASON, REDIS_URL } from '../helpers/services';
import { login, me, refresh, register, TEST_PASSWORD, type Account } from '../helpers/auth';

const ACCESS_SECRET = 'test-access-secret-0123456789-abcdefghij';
const REFRESH_SECRET = 'test-refresh-secret-0123456789-abcdefghij';
const KID = keyId(ACCESS_SECRET);
const ENV = { JWT_ACCESS_SECRET: ACCESS_SECRET, JWT_REFRESH_SECRET: REFRESH_SECRET };

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ env: ENV });
});
afterAll(async () => ctx?.close());

function expectError(res: request.Response, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
}

describe('the full flow', () => {
  it('registers, reads and updates the account, refreshes, and logs out', async () => {
    const email = `Flow-${randomUUID()}@Example.com`;
    const reg = await request(ctx.app).post('/api/v1/auth/register').send({ email, password: TEST_PASSWORD, name: 'Ada' });
    expect(reg.status).toBe(201);
    expect(reg.headers['cache-control']).toBe('no-store');
    expect(reg.body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900 });
    expect(Object.keys(reg.body.user).sort()).toEqual(['createdAt', 'email', 'id', 'name']);
    expect(reg.body.user.email).toBe(email.toLowerCase());
    expect(JSON.stringify(reg.body)).not.toContain(TEST_PASSWORD);
    expect(JSON.stringify(reg.body)).not.toMatch(/argon2/);

    const claims = jwt.decode(reg.body.accessToken, { complete: true })!;
    expect(claims.header).toMatchObject({ alg: 'HS256', typ: 'at+jwt', kid: KID });
    const payload = claims.payload as jwt.JwtPayload;
    expect(payload).toMatchObject({ sub: reg.body.user.id, iss: 'rampart', aud: 'rampart-api' });
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(typeof payload.jti).toBe('string');
    expect(typeof payload.sid).toBe('string');

    const got = await me(ctx.app, reg.body.accessToken);
    expect(got.status).toBe(200);
    expect(got.body.user).toEqual(reg.body.user);
    expect(got.headers['cache-control']).toMatch(/no-store/);

    const patched = await request(ctx.app).patch('/api/v1/users/me').set('Authorization', `Bearer ${reg.body.accessToken}`).send({ name: '  Ada L.  ' });
    expect(patched.status).toBe(200);
    expect(patched.body.user.name).toBe('Ada L.');

    const loggedIn = await request(ctx.app).post('/api/v1/auth/login').send({ email: email.toUpperCase(), password: TEST_PASSWORD });
    expect(loggedIn.status).toBe(200);
    expect(loggedIn.headers['cache-control']).toBe('no-store');
    expect(loggedIn.body.user.id).toBe(reg.body.user.id);

    const refreshed = await refresh(ctx.app, loggedIn.body.refreshToken);
    expect(refreshed.status).toBe(200);
    expect(Object.keys(refreshed.body).sort()).toEqual(['accessToken', 'expiresIn', 'refreshToken', 'tokenType']);
    expect(refreshed.body.refreshToken).not.toBe(loggedIn.body.refreshToken);
    expect((await me(ctx.app, refreshed.body.accessToken)).status).toBe(200);

    const out = await request(ctx.app).post('/api/v1/auth/logout').set('Authorization', `Bearer ${refreshed.body.accessToken}`).send({});
    expect(out.status).toBe(204);
    expectError(await me(ctx.app, refreshed.body.accessToken), 401, 'token_revoked');
    expectError(await me(ctx.app, loggedIn.body.accessToken), 401, 'token_revoked'); // same session
    expectError(await refresh(ctx.app, refreshed.body.refreshToken), 401, 'invalid_grant');
    expect((await me(ctx.app, reg.body.accessToken)).status).toBe(200); // the other device
  });

  it('refuses a second registration of an email, whatever its case', async () => {
    const email = `dup-${randomUUID()}@example.com`;
    await register(ctx.app, email);
    expectError(await request(ctx.app).post('/api/v1/auth/register').send({ email: email.toUpperCase(), password: TEST_PASSWORD }), 409, 'conflict');
  });

  it('answers unknown email and wrong password identically', async () => {
    const account = await register(ctx.app);
    const wrong = await request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: 'wrong password!' });
    const unknown = await request(ctx.app)
      .post('/api/v1/auth/login')
      .send({ email: `nobody-${randomUUID()}@example.com`, password: 'wrong password!' });
    expectError(wrong, 401, 'invalid_credentials');
    expectError(unknown, 401, 'invalid_credentials');
    expect(wrong.body.error.message).toBe(unknown.body.error.message);
    expect(
      Object.keys(wrong.headers)
        .filter((h) => h !== 'x-request-id' && h !== 'date' && !h.startsWith('ratelimit'))
        .sort(),
    ).toEqual(
      Object.keys(unknown.headers)
        .filter((h) => h !== 'x-request-id' && h !== 'date' && !h.startsWith('ratelimit'))
        .sort(),
    );
  });
});

describe('input validation', () => {
  it.each([
    ['an operator object', { email: { $ne: null }, password: { $ne: null } }],
    ['an operator with a regex', { email: { $regex: '.*' }, password: 'x' }],
    ['arrays', { email: ['a@example.com'], password: ['x'] }],
    ['numbers', { email: 42, password: 12345678 }],
    ['booleans', { email: true, password: true }],
    ['null', { email: null, password: null }],
    ['a missing password', { email: 'a@example.com' }],
  ])('login with %s is 422, never a login', async (_name, body) => {
    const res = await request(ctx.app).post('/api/v1/auth/login').send(body);
    expectError(res, 422, 'validation_failed');
  });

  it('register rejects unknown fields, bad emails and short passwords, listing each, echoing none', async () => {
    const res = await request(ctx.app).post('/api/v1/auth/register').send({ email: 'not-an-email', password: 'short', role: 'admin', isAdmin: true });
    expectError(res, 422, 'validation_failed');
    const fields = res.body.error.details.map((d: { field: string }) => d.field).sort();
    expect(fields).toEqual(['email', 'isAdmin', 'password', 'role']);
    expect(JSON.stringify(res.body)).not.toMatch(/short|not-an-email|admin"/);
  });

  it('register refuses an overlong password', async () => {
    expectError(
      await request(ctx.app)
        .post('/api/v1/auth/register')
        .send({ email: `${randomUUID()}@example.com`, password: 'x'.repeat(129) }),
      422,
      'validation_failed',
    );
  });

  it('PATCH /users/me accepts only known fields', async () => {
    const account = await register(ctx.app);
    const res = await request(ctx.app).patch('/api/v1/users/me').set('Authorization', `Bearer ${account.accessToken}`).send({ name: 'x', role: 'admin' });
    expectError(res, 422, 'validation_failed');
    expect(res.body.error.details).toEqual([{ field: 'role', location: 'body', message: 'is not allowed' }]);
    const email = await request(ctx.app).patch('/api/v1/users/me').set('Authorization', `Bearer ${account.accessToken}`).send({ email: 'new@example.com' });
    expectError(email, 422, 'validation_failed');
    expect((await me(ctx.app, account.accessToken)).body.user.email).toBe(account.email);
  });
});

describe('token attacks on GET /users/me', () => {
  let account: Account;
  let payload: jwt.JwtPayload;
  beforeAll(async () => {
    account = await register(ctx.app);
    payload = jwt.decode(account.accessToken) as jwt.JwtPayload;
  });

  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const sign = (claims: object, options: jwt.SignOptions = {}, secret: string = ACCESS_SECRET) =>
    jwt.sign(claims, secret, { algorithm: 'HS256', header: { alg: 'HS256', typ: 'at+jwt', kid: KID }, ...options });
  const valid = () => {
    const now = Math.floor(Date.now() / 1000);
    return { sub: payload.sub, sid: payload.sid, jti: randomUUID(), iss: 'rampart', aud: 'rampart-api', iat: now, exp: now + 600 };
  };

  it('accepts a well-formed token signed with the key (the harness itself is sound)', async () => {
    expect((await me(ctx.app, sign(valid()))).status).toBe(200);
  });

  it.each(['none', 'None', 'NONE', 'nOnE'])('rejects alg %s', async (alg) => {
    const token = `${b64({ alg, typ: 'at+jwt', kid: KID })}.${b64(valid())}.`;
    expectError(await me(ctx.app, token), 401, 'invalid_token');
  });

  it('rejects RS256 signed with a foreign key', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = jwt.sign(valid(), privateKey, { algorithm: 'RS256', header: { alg: 'RS256', typ: 'at+jwt', kid: KID } });
    expectError(await me(ctx.app, token), 401, 'invalid_token');
  });

  it('rejects HS256 with the secret used as... anything else: a wrong secret', async () => {
    expectError(await me(ctx.app, sign(valid(), {}, 'another-secret-that-is-long-enough-0123456789')), 401, 'invalid_token');
  });

  it('rejects a tampered payload and a stripped signature', async () => {
    const [h, , s] = account.accessToken.split('.');
    const tampered = `${h}.${b64({ ...payload, sub: randomUUID() })}.${s}`;
    expectError(await me(ctx.app, tampered), 401, 'invalid_token');
    const stripped = account.accessToken.split('.').slice(0, 2).join('.') + '.';
    expectError(await me(ctx.app, stripped), 401, 'invalid_token');
  });

  it('rejects expired, not-yet-valid and exp-less tokens', async () => {
    const now = Math.floor(Date.now() / 1000);
    expectError(await me(ctx.app, sign({ ...valid(), iat: now - 1000, exp: now - 60 })), 401, 'invalid_token');
    expectError(await me(ctx.app, sign({ ...valid(), nbf: now + 3600 })), 401, 'invalid_token');
    const { exp: _exp, ...noExp } = valid();
    expectError(await me(ctx.app, sign(noExp)), 401, 'invalid_token');
  });

  it('rejects a wrong issuer or audience', async () => {
    expectError(await me(ctx.app, sign({ ...valid(), iss: 'someone-else' })), 401, 'invalid_token');
    expectError(await me(ctx.app, sign({ ...valid(), aud: 'other-api' })), 401, 'invalid_token');
  });

  it.each([
    ['missing', undefined],
    ['a path', '../../../../etc/passwd'],
    ['__proto__', '__proto__'],
    ['constructor', 'constructor'],
    ['a URL', 'https://evil.example.net/jwks.json'],
    ['SQL', "' OR 1=1 --"],
    ['a number', 42],
    ['very long', 'k'.repeat(10_000)],
  ])('rejects a kid that is %s with 401, never 500', async (_name, kid) => {
    const token = jwt.sign(valid(), ACCESS_SECRET, { algorithm: 'HS256', header: { alg: 'HS256', typ: 'at+jwt', kid } as jwt.JwtHeader });
    expectError(await me(ctx.app, token), 401, 'invalid_token');
  });

  it.each([['JWT'], ['rt+jwt'], [undefined]])('rejects typ %s', async (typ) => {
    const token = jwt.sign(valid(), ACCESS_SECRET, { algorithm: 'HS256', header: { alg: 'HS256', typ, kid: KID } });
    expectError(await me(ctx.app, token), 401, 'invalid_token');
  });

  it('rejects a token missing sid or jti', async () => {
    const { sid: _sid, ...noSid } = valid();
    expectError(await me(ctx.app, sign(noSid)), 401, 'invalid_token');
  });

  it('never accepts a refresh token as an access token, nor the reverse', async () => {
    expectError(await me(ctx.app, account.refreshToken), 401, 'invalid_token');
    expectError(await refresh(ctx.app, account.accessToken), 401, 'invalid_grant');
  });

  it('ignores tokens in the query string and cookies', async () => {
    const q = await request(ctx.app).get(`/api/v1/users/me?access_token=${account.accessToken}`);
    expectError(q, 401, 'unauthorized');
    expect(q.headers['www-authenticate']).toBe('Bearer');
    const c = await request(ctx.app).get('/api/v1/users/me').set('Cookie', `access_token=${account.accessToken}; token=${account.accessToken}`);
    expectError(c, 401, 'unauthorized');
  });

  it('accepts the Bearer scheme in any case, and nothing else', async () => {
    expect((await request(ctx.app).get('/api/v1/users/me').set('Authorization', `bearer ${account.accessToken}`)).status).toBe(200);
    expect((await request(ctx.app).get('/api/v1/users/me').set('Authorization', `BEARER ${account.accessToken}`)).status).toBe(200);
    for (const header of [`Basic ${account.accessToken}`, `Token ${account.accessToken}`, account.accessToken, 'Bearer', 'Bearer a b']) {
      expectError(await request(ctx.app).get('/api/v1/users/me').set('Authorization', header), 401, 'unauthorized');
    }
  });

  it('answers invalid tokens with WWW-Authenticate naming the error', async () => {
    const res = await me(ctx.app, 'not.a.jwt');
    expectError(res, 401, 'invalid_token');
    expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
  });
});

describe('refresh rotation', () => {
  it('rotates on every use; replaying a used token revokes the whole family and its access tokens', async () => {
    const first = await register(ctx.app);
    const second = await refresh(ctx.app, first.refreshToken);
    expect(second.status).toBe(200);
    const third = await refresh(ctx.app, second.body.refreshToken);
    expect(third.status).toBe(200);

    expectError(await refresh(ctx.app, first.refreshToken), 401, 'invalid_grant'); // reuse
    expectError(await refresh(ctx.app, third.body.refreshToken), 401, 'invalid_grant'); // family revoked
    expectError(await me(ctx.app, third.body.accessToken), 401, 'token_revoked');
    expectError(await me(ctx.app, first.accessToken), 401, 'token_revoked');

    const events = ctx.log.lines.map((l) => JSON.parse(l)).filter((l) => l.event === 'refresh_reuse' && l.userId === first.userId);
    expect(events).toHaveLength(1);
    expect(ctx.log.text()).not.toContain(first.refreshToken);
  });

  it('of concurrent refreshes with one token, exactly one wins and the family ends revoked', async () => {
    const account = await register(ctx.app);
    const results = await Promise.all(Array.from({ length: 10 }, () => refresh(ctx.app, account.refreshToken)));
    const winners = results.filter((r) => r.status === 200);
    expect(winners).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200)) expectError(r, 401, 'invalid_grant');
    expectError(await me(ctx.app, winners[0]!.body.accessToken), 401, 'token_revoked');
    expectError(await refresh(ctx.app, winners[0]!.body.refreshToken), 401, 'invalid_grant');
  });

  it.each([
    ['garbage', 'garbage'],
    ['a well-shaped unknown token', `${randomUUID()}.${'A'.repeat(43)}`],
    ['an object', { $ne: null }],
    ['a number', 12345],
  ])('rejects %s', async (_name, token) => {
    const res = await refresh(ctx.app, token);
    expect([401, 422]).toContain(res.status);
    if (res.status === 401) expect(res.body.error.code).toBe('invalid_grant');
  });
});

describe('logout and logout-all', () => {
  it('logout on one device leaves the other working', async () => {
    const phone = await register(ctx.app);
    const laptop = await login(ctx.app, phone.email);
    expect((await request(ctx.app).post('/api/v1/auth/logout').set('Authorization', `Bearer ${phone.accessToken}`)).status).toBe(204);
    expectError(await me(ctx.app, phone.accessToken), 401, 'token_revoked');
    expect((await me(ctx.app, laptop.accessToken)).status).toBe(200);
    expect((await refresh(ctx.app, laptop.refreshToken)).status).toBe(200);
  });

  it('logout-all revokes every existing session; a session created right after works', async () => {
    const a = await register(ctx.app);
    const b = await login(ctx.app, a.email);
    const other = await register(ctx.app);
    expect((await request(ctx.app).post('/api/v1/auth/logout-all').set('Authorization', `Bearer ${a.accessToken}`).send({})).status).toBe(204);
    expectError(await me(ctx.app, a.accessToken), 401, 'token_revoked');
    expectError(await me(ctx.app, b.accessToken), 401, 'token_revoked');
    expectError(await refresh(ctx.app, b.refreshToken), 401, 'invalid_grant');
    expect((await me(ctx.app, other.accessToken)).status).toBe(200); // another user is untouched

    const fresh = await login(ctx.app, a.email); // same second
    expect((await me(ctx.app, fresh.accessToken)).status).toBe(200);
    const rotated = await refresh(ctx.app, fresh.refreshToken);
    expect(rotated.status).toBe(200);
    expect((await me(ctx.app, rotated.body.accessToken)).status).toBe(200);
  });

  it('requires a valid access token', async () => {
    expectError(await request(ctx.app).post('/api/v1/auth/logout'), 401, 'unauthorized');
    expectError(await request(ctx.app).post('/api/v1/auth/logout-all').set('Authorization', 'Bearer x.y.z'), 401, 'invalid_token');
  });
});

describe.skipIf(!REDIS_URL)(`Redis cost of an authenticated request${REDIS_URL ? '' : ` [${NO_REDIS_REASON}]`}`, () => {
  it('is two writes to Redis: the limiter and the revocation read share one, the cached profile is the other', async () => {
    const account = await register(ctx.app);
    expect((await me(ctx.app, account.accessToken)).headers['x-cache']).toBe('MISS'); // fills the profile entry
    const stream = ((ctx.deps.store as RedisStore).client as Redis).stream as { write: (...args: unknown[]) => boolean };
    const write = stream.write;
    let writes = 0;
    stream.write = (...args: unknown[]) => {
      writes++;
      return write.apply(stream, args);
    };
    try {
      for (let i = 0; i < 3; i++) {
        writes = 0;
        const res = await me(ctx.app, account.accessToken);
        expect(res.status).toBe(200);
        expect(res.headers['x-cache']).toBe('HIT');
        expect(writes).toBe(2);
      }
    } finally {
      stream.write = write;
    }
  });
});

describe('password change', () => {
  const change = (token: string, body: object) => request(ctx.app).post('/api/v1/auth/password').set('Authorization', `Bearer ${token}`).send(body);

  it('ends every session, the caller continuing in a fresh one, and changes the login', async () => {
    const phone = await register(ctx.app);
    const laptop = await login(ctx.app, phone.email);
    const res = await change(phone.accessToken, { currentPassword: TEST_PASSWORD, newPassword: 'a brand new passphrase' });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(Object.keys(res.body).sort()).toEqual(['accessToken', 'expiresIn', 'refreshToken', 'tokenType']);
    expectError(await me(ctx.app, phone.accessToken), 401, 'token_revoked');
    expectError(await me(ctx.app, laptop.accessToken), 401, 'token_revoked');
    expectError(await refresh(ctx.app, laptop.refreshToken), 401, 'invalid_grant');
    expect((await me(ctx.app, res.body.accessToken)).status).toBe(200);
    expect((await refresh(ctx.app, res.body.refreshToken)).status).toBe(200);
    expectError(await request(ctx.app).post('/api/v1/auth/login').send({ email: phone.email, password: TEST_PASSWORD }), 401, 'invalid_credentials');
    expect((await request(ctx.app).post('/api/v1/auth/login').send({ email: phone.email, password: 'a brand new passphrase' })).status).toBe(200);
    expect(ctx.log.text()).not.toContain('a brand new passphrase');
  });

  it('refuses a wrong current password, a weak new one and unknown fields, changing nothing', async () => {
    const account = await register(ctx.app);
    expectError(await change(account.accessToken, { currentPassword: 'not it at all', newPassword: 'another passphrase' }), 401, 'invalid_credentials');
    expectError(await change(account.accessToken, { currentPassword: TEST_PASSWORD, newPassword: 'short' }), 422, 'validation_failed');
    expectError(
      await change(account.accessToken, { currentPassword: TEST_PASSWORD, newPassword: 'another passphrase', userId: randomUUID() }),
      422,
      'validation_failed',
    );
    expectError(
      await request(ctx.app).post('/api/v1/auth/password').send({ currentPassword: TEST_PASSWORD, newPassword: 'another passphrase' }),
      401,
      'unauthorized',
    );
    expect((await me(ctx.app, account.accessToken)).status).toBe(200);
  });
});

describe('signing-key rotation', () => {
  const NEW_SECRET = 'the-new-access-secret-0123456789-abcdefgh';
  // Other deployments of the same service: same store and database, other key configuration.
  const deployment = (env: Record<string, string>) =>
    ctx.checked(createApp({ ...ctx.deps, config: loadConfig({ ...ENV, NODE_ENV: 'test', RATE_LIMIT_API_MAX: '100000', ...env }) }));

  it('accepts old-key tokens while the old key is listed, rejects them once it is not', async () => {
    const rotated = deployment({ JWT_ACCESS_SECRET: NEW_SECRET, JWT_ACCESS_PREVIOUS_SECRETS: ACCESS_SECRET });
    const retired = deployment({ JWT_ACCESS_SECRET: NEW_SECRET });
    const account = await register(ctx.app);
    expect((await me(rotated, account.accessToken)).status).toBe(200);
    expectError(await me(retired, account.accessToken), 401, 'invalid_token');
    const renewed = await refresh(rotated, account.refreshToken);
    expect(renewed.status).toBe(200);
    expect(jwt.decode(renewed.body.accessToken, { complete: true })!.header.kid).toBe(keyId(NEW_SECRET));
    expect((await me(retired, renewed.body.accessToken)).status).toBe(200);
    expectError(await me(ctx.app, renewed.body.accessToken), 401, 'invalid_token'); // the old deployment knows no new key
  });
});
