// The failure policy of docs/design.md with Redis stopped and restarted under a running app:
// token checks and auth limits fail closed (503, fast), the general limit fails open, public reads
// go on, and everything recovers without a restart, including when Redis was down at start-up.
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/app';
import { me, refresh, register, TEST_PASSWORD } from '../helpers/auth';
import { HAS_REDIS_SERVER, NO_REDIS_SERVER_REASON, TestRedisServer } from '../helpers/redis-server';

const BOUND_MS = 2000; // generous for a loaded CI machine; the configured command timeout is 250 ms
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error('condition not reached in time');
}

async function timed(run: () => Promise<request.Response>): Promise<{ res: request.Response; ms: number }> {
  const t0 = Date.now();
  const res = await run();
  return { res, ms: Date.now() - t0 };
}

function expect503(res: request.Response): void {
  expect(res.status, JSON.stringify(res.body)).toBe(503);
  expect(res.body.error.code).toBe('service_unavailable');
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
}

describe.skipIf(!HAS_REDIS_SERVER)(`Redis outage${HAS_REDIS_SERVER ? '' : ` [${NO_REDIS_SERVER_REASON}]`}`, () => {
  let server: TestRedisServer;
  let ctx: TestContext;
  beforeAll(async () => {
    server = await TestRedisServer.create();
    ctx = await createTestContext({ env: { REDIS_URL: server.url, RATE_LIMIT_LOGIN_MAX: '3' } });
  });
  afterAll(async () => {
    await ctx?.close();
    await server?.stop();
  });

  it('fails closed on token state and auth limits, open on the general limit, then recovers', async () => {
    const account = await register(ctx.app);
    expect((await me(ctx.app, account.accessToken)).status).toBe(200);

    await server.stop();

    const meDown = await timed(() => me(ctx.app, account.accessToken));
    expect503(meDown.res);
    expect(meDown.ms).toBeLessThan(BOUND_MS);

    const refreshDown = await timed(() => refresh(ctx.app, account.refreshToken));
    expect503(refreshDown.res);
    expect(refreshDown.ms).toBeLessThan(BOUND_MS);

    const loginDown = await timed(() => request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: TEST_PASSWORD }));
    expect503(loginDown.res); // the login limiter fails closed
    expect(loginDown.ms).toBeLessThan(BOUND_MS);

    const logoutDown = await timed(() => request(ctx.app).post('/api/v1/auth/logout').set('Authorization', `Bearer ${account.accessToken}`));
    expect503(logoutDown.res); // a logout that cannot be recorded must not pretend to succeed

    const publicRead = await timed(() => request(ctx.app).get('/api/v1/items'));
    expect(publicRead.res.status).toBe(200); // the general limiter fails open
    expect(publicRead.ms).toBeLessThan(BOUND_MS);
    expect(ctx.log.text()).toMatch(/rate limit store unavailable; allowing request/);

    expect((await request(ctx.app).get('/health')).status).toBe(200);
    expect((await request(ctx.app).get('/health/ready')).status).toBe(503);

    await server.start(); // a fresh, empty Redis: every session is gone
    await waitUntil(async () => (await request(ctx.app).get('/health/ready')).status === 200);

    expect((await me(ctx.app, account.accessToken)).status).toBe(401); // its session did not survive
    const again = await register(ctx.app);
    expect((await me(ctx.app, again.accessToken)).status).toBe(200);
    expect((await refresh(ctx.app, again.refreshToken)).status).toBe(200);

    // Limiting resumes: the login limit counts again and refuses the fourth failure.
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await request(ctx.app).post('/api/v1/auth/login').send({ email: again.email, password: 'wrong wrong' })).status);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});

describe.skipIf(!HAS_REDIS_SERVER)(`Redis down at start-up${HAS_REDIS_SERVER ? '' : ` [${NO_REDIS_SERVER_REASON}]`}`, () => {
  let server: TestRedisServer;
  let ctx: TestContext;
  beforeAll(async () => {
    server = await TestRedisServer.create();
    await server.stop();
    ctx = await createTestContext({ env: { REDIS_URL: server.url, RATE_LIMIT_REGISTER_MAX: '2' } });
  });
  afterAll(async () => {
    await ctx?.close();
    await server?.stop();
  });

  it('starts, refuses what needs Redis, and limits once Redis arrives', async () => {
    expect((await request(ctx.app).get('/health')).status).toBe(200);
    expect((await request(ctx.app).get('/health/ready')).status).toBe(503);
    expect503(
      await request(ctx.app)
        .post('/api/v1/auth/register')
        .send({ email: `${randomUUID()}@example.com`, password: TEST_PASSWORD }),
    );

    await server.start();
    await waitUntil(async () => (await request(ctx.app).get('/health/ready')).status === 200);
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      statuses.push(
        (
          await request(ctx.app)
            .post('/api/v1/auth/register')
            .send({ email: `${randomUUID()}@example.com`, password: TEST_PASSWORD })
        ).status,
      );
    }
    expect(statuses).toEqual([201, 201, 429]);
  });
});
