// Every refused request (401, 403, 429) leaves exactly one security event: who, from where, which
// route, why; never a password or a token. And the log of them is bounded.
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { securityLog, type SecurityEvent } from '../../src/lib/security-log';
import { createTestContext, type TestContext } from '../helpers/app';
import { register, TEST_PASSWORD } from '../helpers/auth';
import { captureLogger } from '../helpers/log-capture';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ env: { RATE_LIMIT_REFRESH_MAX: '2', RATE_LIMIT_LOGIN_MAX: '2' } });
});
afterAll(async () => ctx?.close());

type Line = Record<string, unknown>;
const lines = (): Line[] => ctx.log.lines.map((l) => JSON.parse(l) as Line);
/** The security events of one response, found by its request id. */
const eventsOf = (res: request.Response) => lines().filter((l) => l.message === 'security event' && l.requestId === res.headers['x-request-id']);

function expectOneEvent(res: request.Response, expected: Partial<SecurityEvent>): Line {
  const events = eventsOf(res);
  expect(events, JSON.stringify(events)).toHaveLength(1);
  const event = events[0]!;
  expect(event).toMatchObject({
    status: res.status,
    code: res.body.error.code,
    method: expect.stringMatching(/^(GET|POST|PATCH|DELETE)$/),
    ip: expect.any(String),
    ...expected,
  });
  expect(event.level).toBe('warn');
  return event;
}

describe('security events', () => {
  it('401 without credentials, with a bad token, and with a revoked one', async () => {
    const none = await request(ctx.app).get('/api/v1/users/me');
    expectOneEvent(none, { event: 'auth_rejected', reason: 'no credentials', route: '/api/v1/users/me' });
    const bad = await request(ctx.app).get('/api/v1/users/me').set('Authorization', 'Bearer not.a.jwt');
    expectOneEvent(bad, { event: 'auth_rejected', code: 'invalid_token' });
    const account = await register(ctx.app);
    await request(ctx.app).post('/api/v1/auth/logout').set('Authorization', `Bearer ${account.accessToken}`).send({}).expect(204);
    const revoked = await request(ctx.app).get('/api/v1/users/me').set('Authorization', `Bearer ${account.accessToken}`);
    const event = expectOneEvent(revoked, { event: 'auth_rejected', code: 'token_revoked', userId: account.userId });
    expect(JSON.stringify(event)).not.toContain(account.accessToken);
  });

  it('401 for a failed login names the account but never the password', async () => {
    const account = await register(ctx.app);
    const res = await request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: 'a wrong guess' });
    const event = expectOneEvent(res, { event: 'login_failed', reason: 'wrong password', userId: account.userId, route: '/api/v1/auth/login' });
    expect(JSON.stringify(event)).not.toContain('a wrong guess');
    const unknown = await request(ctx.app)
      .post('/api/v1/auth/login')
      .send({ email: `nobody-${randomUUID()}@example.com`, password: TEST_PASSWORD });
    expect(expectOneEvent(unknown, { event: 'login_failed', reason: 'unknown email' }).userId).toBeUndefined();
  });

  it('401 for a reused refresh token is the refresh_reuse event, with the session', async () => {
    const account = await register(ctx.app);
    await request(ctx.app).post('/api/v1/auth/refresh').send({ refreshToken: account.refreshToken }).expect(200);
    const reused = await request(ctx.app).post('/api/v1/auth/refresh').send({ refreshToken: account.refreshToken });
    expectOneEvent(reused, { event: 'refresh_reuse', userId: account.userId, sessionId: expect.any(String), code: 'invalid_grant' });
  });

  it("403 for someone else's item, with the caller and the route template", async () => {
    const owner = await register(ctx.app);
    const other = await register(ctx.app);
    const item = await request(ctx.app).post('/api/v1/items').set('Authorization', `Bearer ${owner.accessToken}`).send({ name: 'mine', price: 1 });
    const res = await request(ctx.app).patch(`/api/v1/items/${item.body.item.id}`).set('Authorization', `Bearer ${other.accessToken}`).send({ price: 2 });
    expect(res.status).toBe(403);
    expectOneEvent(res, { event: 'access_denied', userId: other.userId, route: '/api/v1/items/:id', reason: "another user's item" });
  });

  it('403 from the operations guard in production', async () => {
    const production = ctx.checked(
      createApp({
        ...ctx.deps,
        config: loadConfig({
          NODE_ENV: 'production',
          JWT_ACCESS_SECRET: 'security-log-access-secret-0123456789abcdef',
          JWT_REFRESH_SECRET: 'security-log-refresh-secret-0123456789abcdef',
          OPS_TOKEN: 'security-log-ops-token-0123456789abcdef',
          OPS_ALLOWED_ADDRESSES: '10.0.0.0/8',
          REDIS_URL: 'redis://127.0.0.1:6379',
          DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
          CORS_ORIGINS: '',
          TRUST_PROXY: 'loopback',
        }),
      }),
    );
    const res = await request(production).get('/metrics').set('Authorization', 'Bearer wrong-token');
    expect(res.status).toBe(403);
    const event = expectOneEvent(res, { event: 'access_denied', reason: 'wrong ops token', route: '/metrics' });
    expect(JSON.stringify(event)).not.toContain('wrong-token');
  });

  it('429 names the limiter and the client address', async () => {
    const send = () => request(ctx.app).post('/api/v1/auth/refresh').set('X-Forwarded-For', '198.51.100.7').send({ refreshToken: 'x' });
    await send();
    await send();
    const limited = await send();
    expect(limited.status).toBe(429);
    expectOneEvent(limited, { event: 'rate_limited', reason: 'limiter refresh', route: '/api/v1/auth/refresh', ip: '198.51.100.7' });
  });

  it('429 before authentication still names the user whose token verified', async () => {
    const account = await register(ctx.app);
    const wrong = () =>
      request(ctx.app)
        .post('/api/v1/auth/password')
        .set('Authorization', `Bearer ${account.accessToken}`)
        .send({ currentPassword: 'nope', newPassword: 'a good new passphrase' });
    expectOneEvent(await wrong(), { event: 'password_change_failed', userId: account.userId });
    await wrong();
    const limited = await wrong();
    expect(limited.status).toBe(429);
    expectOneEvent(limited, { event: 'rate_limited', reason: 'limiter reauth', userId: account.userId, route: '/api/v1/auth/password' });
  });

  it('leaves nothing for answers that refuse no one (200, 404, 422)', async () => {
    for (const res of [
      await request(ctx.app).get('/health'),
      await request(ctx.app).get('/api/v1/nothing-here'),
      await request(ctx.app).get('/api/v1/items/not-a-uuid'),
    ]) {
      expect(eventsOf(res)).toEqual([]);
    }
  });
});

describe('the security log is bounded', () => {
  it('writes at most its budget per second, then one line with the count', () => {
    const log = captureLogger('info');
    let now = 10_000;
    const record = securityLog(log.logger, 3, () => now);
    const event = (i: number): SecurityEvent => ({
      event: 'login_failed',
      status: 401,
      code: 'invalid_credentials',
      method: 'POST',
      route: '/x',
      requestId: String(i),
    });
    for (let i = 0; i < 10; i++) record(event(i));
    const read = () => log.lines.map((l) => JSON.parse(l) as Line);
    expect(
      read()
        .filter((l) => l.message === 'security event')
        .map((l) => l.requestId),
    ).toEqual(['0', '1', '2']);
    now += 999; // same second
    record(event(10));
    expect(read().filter((l) => l.message === 'security events suppressed')).toEqual([]);
    now += 1; // next second: the count of what was dropped, then this event
    record(event(11));
    expect(read().filter((l) => l.message === 'security events suppressed')).toEqual([expect.objectContaining({ suppressed: 8, perSecond: 3 })]);
    expect(
      read()
        .filter((l) => l.message === 'security event')
        .map((l) => l.requestId),
    ).toEqual(['0', '1', '2', '11']);
  });
});
