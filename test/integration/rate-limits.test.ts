// Per-route rate limits: the 429 contract, keys, exactness across app instances sharing a store.
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { MemoryStore } from '../../src/lib/store/memory-store';
import { RedisStore } from '../../src/lib/store/redis-store';
import type { KeyValueStore } from '../../src/lib/store/types';
import { alternatingStatuses, createTestContext, type TestContext } from '../helpers/app';
import { register, TEST_PASSWORD } from '../helpers/auth';

// Fixed, so that sibling apps accept the tokens ctx.app issues.
const SECRETS = { JWT_ACCESS_SECRET: 'rate-limit-test-access-secret-0123456789', JWT_REFRESH_SECRET: 'rate-limit-test-refresh-secret-0123456789' };
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ env: { ...SECRETS, RATE_LIMIT_LOGIN_MAX: '5' } });
});
afterAll(async () => ctx?.close());

/** Another app over the same store and database, with other limits. */
function sibling(env: Record<string, string>, store = ctx.deps.store) {
  return ctx.checked(createApp({ ...ctx.deps, store, config: loadConfig({ NODE_ENV: 'test', ...SECRETS, RATE_LIMIT_API_MAX: '100000', ...env }) }));
}

/** A store of the same kind with fresh keys, for tests that count the loopback peer itself. */
function freshStore(): KeyValueStore {
  const prefix = `${ctx.keyPrefix}fresh-${randomUUID()}:`;
  const store = ctx.deps.store;
  return store instanceof RedisStore ? new RedisStore(store.client, prefix) : new MemoryStore(prefix);
}

function expect429(res: request.Response): void {
  expect(res.status).toBe(429);
  expect(res.body.error.code).toBe('rate_limited');
  expect(res.body.error.requestId).toBe(res.headers['x-request-id']);
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  expect(res.headers.ratelimit).toMatch(/r=0/);
  expect(res.headers['ratelimit-policy']).toMatch(/q=\d+; w=\d+/);
  expect(res.headers['cache-control']).toBe('no-store');
}

describe('login', () => {
  it('the sixth failed login gets 429 with Retry-After and RateLimit headers', async () => {
    const account = await register(ctx.app);
    for (let i = 0; i < 5; i++) {
      const res = await request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: 'wrong password' });
      expect(res.status).toBe(401);
      expect(res.headers['ratelimit-policy']).toMatch(/"login"; q=5; w=900/);
    }
    const sixth = await request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: 'wrong password' });
    expect429(sixth);
    expect(Number(sixth.headers['retry-after'])).toBeLessThanOrEqual(900);
    // Even the right password waits now.
    expect429(await request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: TEST_PASSWORD }));
    // The key is IP + email: the same address may still log in to another account.
    const other = await register(ctx.app);
    expect((await request(ctx.app).post('/api/v1/auth/login').send({ email: other.email, password: TEST_PASSWORD })).status).toBe(200);
  });

  it('counts the email case-insensitively', async () => {
    const account = await register(ctx.app);
    for (let i = 0; i < 5; i++) {
      const email = i % 2 ? account.email.toUpperCase() : ` ${account.email}`;
      expect((await request(ctx.app).post('/api/v1/auth/login').send({ email, password: 'nope nope' })).status).toBe(401);
    }
    expect429(await request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: 'nope nope' }));
  });

  it('does not count successful logins', async () => {
    const account = await register(ctx.app);
    for (let i = 0; i < 8; i++) {
      expect((await request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: TEST_PASSWORD })).status).toBe(200);
    }
  });
});

describe('per-user limits', () => {
  it('keys password changes by the authenticated user, whatever address they come from', async () => {
    const app = sibling({ RATE_LIMIT_LOGIN_MAX: '2' });
    const account = await register(ctx.app);
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const res = await request(app)
        .post('/api/v1/auth/password')
        .set('Authorization', `Bearer ${account.accessToken}`)
        .set('X-Forwarded-For', `198.18.0.${i + 1}`)
        .send({ currentPassword: 'not the password', newPassword: 'whatever passphrase' });
      statuses.push(res.status);
      if (res.status === 401) expect(res.body.error.code).toBe('invalid_credentials');
    }
    expect(statuses).toEqual([401, 401, 429]);
  });
});

describe('register and the general limit', () => {
  it('limits registrations per client IP', async () => {
    const app = sibling({ RATE_LIMIT_REGISTER_MAX: '2' });
    const ip = `198.51.100.${Math.floor(Math.random() * 250) + 1}`; // trusted: supertest comes from loopback
    for (let i = 0; i < 2; i++) {
      expect(
        (
          await request(app)
            .post('/api/v1/auth/register')
            .set('X-Forwarded-For', ip)
            .send({ email: `${randomUUID()}@example.com`, password: TEST_PASSWORD })
        ).status,
      ).toBe(201);
    }
    expect429(
      await request(app)
        .post('/api/v1/auth/register')
        .set('X-Forwarded-For', ip)
        .send({ email: `${randomUUID()}@example.com`, password: TEST_PASSWORD }),
    );
  });

  it('limits everything under /api/v1, never /health', async () => {
    const app = sibling({ RATE_LIMIT_API_MAX: '3' });
    const ip = `203.0.113.${Math.floor(Math.random() * 250) + 1}`;
    for (let i = 0; i < 3; i++) expect((await request(app).get('/api/v1/items').set('X-Forwarded-For', ip)).status).toBe(200);
    expect429(await request(app).get('/api/v1/items').set('X-Forwarded-For', ip));
    expect429(await request(app).get('/api/v1/nothing').set('X-Forwarded-For', ip));
    for (let i = 0; i < 5; i++) expect((await request(app).get('/health').set('X-Forwarded-For', ip)).status).toBe(200);
  });

  it('is exact across two app instances sharing the store', async () => {
    const a = sibling({ RATE_LIMIT_API_MAX: '6' });
    const b = sibling({ RATE_LIMIT_API_MAX: '6' });
    const ip = `192.0.2.${Math.floor(Math.random() * 250) + 1}`;
    const statuses = await alternatingStatuses(a, b, ip, 12);
    expect(statuses.filter((s) => s === 200)).toHaveLength(6);
    expect(statuses.slice(6).every((s) => s === 429)).toBe(true);
  });

  it('is exact under concurrency', async () => {
    const app = sibling({ RATE_LIMIT_API_MAX: '10' });
    const ip = `192.0.2.${Math.floor(Math.random() * 250) + 1}`;
    const results = await Promise.all(Array.from({ length: 25 }, () => request(app).get('/api/v1/items').set('X-Forwarded-For', ip)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(10);
  });
});

describe('client identity', () => {
  it('ignores X-Forwarded-For from an untrusted peer', async () => {
    const app = sibling({ RATE_LIMIT_API_MAX: '2', TRUST_PROXY: 'false' }, freshStore());
    const results = [];
    for (let i = 0; i < 4; i++) results.push((await request(app).get('/api/v1/_diag/whoami').set('X-Forwarded-For', `10.9.8.${i}`)).status);
    expect(results).toEqual([404, 404, 429, 429]); // diag is off here: 404, but counted per real peer
  });

  it('believes only the hops it trusts: a client cannot pick its own address', async () => {
    const app = ctx.checked(
      createApp({
        ...ctx.deps,
        config: loadConfig({ NODE_ENV: 'test', TRUST_PROXY: '1', ENABLE_DIAGNOSTIC_ROUTES: 'true', RATE_LIMIT_API_MAX: '3' }),
      }),
    );
    const real = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;
    const seen = await request(app).get('/api/v1/_diag/whoami').set('X-Forwarded-For', `6.6.6.6, ${real}`);
    expect(seen.body.ip).toBe(real);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(app).get('/api/v1/_diag/whoami').set('X-Forwarded-For', `1.2.3.${i}, ${real}`)).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it('groups IPv6 clients by /56', async () => {
    const app = sibling({ RATE_LIMIT_API_MAX: '2', TRUST_PROXY: '1' });
    const prefix = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:1`;
    const statuses = [];
    for (let i = 1; i <= 3; i++) statuses.push((await request(app).get('/api/v1/items').set('X-Forwarded-For', `${prefix}${i}::${i}`)).status);
    expect(statuses).toEqual([200, 200, 429]);
  });
});
