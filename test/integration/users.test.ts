// GET /users/me is served from a per-user entry in the cache store: the database is not asked on a
// hit, a change is seen at once on every worker, nobody gets another user's entry, revocation
// still applies, and a cache store that is down only costs the database query.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app';
import { createMetrics } from '../../src/lib/metrics';
import { countingDatabase, createCacheDownContext, createTestContext, type TestContext } from '../helpers/app';
import { me, register } from '../helpers/auth';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => ctx?.close());

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('the account read cache', () => {
  it('MISS then HIT with the same body, private and no-store either way, without a database query on the hit', async () => {
    const account = await register(ctx.app);
    const { db, queries } = countingDatabase(ctx.deps.db);
    const app = ctx.checked(createApp({ ...ctx.deps, db }, { metrics: createMetrics() }));

    const first = await me(app, account.accessToken);
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['cache-control']).toBe('private, no-store');
    expect(queries()).toBe(1);
    const second = await me(app, account.accessToken);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.headers['cache-control']).toBe('private, no-store');
    expect(second.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(second.body).toEqual(first.body);
    expect(second.body.user).toMatchObject({ id: account.userId, email: account.email });
    expect(queries()).toBe(1);
  });

  it('keeps one entry per user', async () => {
    const [a, b] = await Promise.all([register(ctx.app), register(ctx.app)]);
    for (let i = 0; i < 2; i++) {
      expect((await me(ctx.app, a.accessToken)).body.user.id).toBe(a.userId);
      expect((await me(ctx.app, b.accessToken)).body.user.id).toBe(b.userId);
    }
    expect((await me(ctx.app, b.accessToken)).headers['x-cache']).toBe('HIT');
  });

  it('shows a change at once, on another app instance too', async () => {
    const account = await register(ctx.app);
    const other = ctx.checked(createApp(ctx.deps, { metrics: createMetrics() })); // another worker
    await me(other, account.accessToken);
    expect((await me(other, account.accessToken)).body.user.name).toBe('Test User');

    const patched = await request(ctx.app).patch('/api/v1/users/me').set(bearer(account.accessToken)).send({ name: 'Renamed' });
    expect(patched.status).toBe(200);
    const after = await me(other, account.accessToken);
    expect(after.headers['x-cache']).toBe('MISS');
    expect(after.body.user.name).toBe('Renamed');
    expect((await me(other, account.accessToken)).headers['x-cache']).toBe('HIT');
  });

  it('still refuses a revoked token whose profile is cached', async () => {
    const account = await register(ctx.app);
    await me(ctx.app, account.accessToken);
    expect((await me(ctx.app, account.accessToken)).headers['x-cache']).toBe('HIT');
    expect((await request(ctx.app).post('/api/v1/auth/logout').set(bearer(account.accessToken)).send({})).status).toBe(204);
    const refused = await me(ctx.app, account.accessToken);
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('token_revoked');
    expect(refused.headers['x-cache']).toBeUndefined();
  });
});

describe('the account read with the cache Redis down', () => {
  let down: TestContext;
  beforeAll(async () => {
    down = await createCacheDownContext();
  });
  afterAll(async () => down?.close());

  it('answers from the database with X-Cache: BYPASS', async () => {
    const account = await register(down.app);
    for (let i = 0; i < 2; i++) {
      const res = await me(down.app, account.accessToken);
      expect(res.status).toBe(200);
      expect(res.headers['x-cache']).toBe('BYPASS');
      expect(res.headers['cache-control']).toBe('private, no-store');
      expect(res.body.user.id).toBe(account.userId);
    }
  });
});
