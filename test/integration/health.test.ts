// Health endpoints: what load balancers and orchestrators see, with dependencies up and down.
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { errorHandler } from '../../src/middleware/error-handler';
import { createProbes } from '../../src/lib/probes';
import { opsAccess } from '../../src/middleware/ops-access';
import { createTestContext, type TestContext } from '../helpers/app';
import { captureLogger } from '../helpers/log-capture';
import { freePort } from '../helpers/redis-server';

describe('with dependencies up', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => ctx?.close());

  it('/health passes without touching a dependency, and is not cacheable', async () => {
    const res = await request(ctx.app).get('/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'pass' });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('/health/live and /health/ready pass', async () => {
    expect((await request(ctx.app).get('/health/live')).body).toEqual({ status: 'pass' });
    const ready = await request(ctx.app).get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.headers['cache-control']).toBe('no-store');
  });

  it('/health/detailed reports redis and database in the health+json shape', async () => {
    const res = await request(ctx.app).get('/health/detailed');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/health\+json/);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = JSON.parse(res.text);
    // Up and serving: pass, or warn when this shared machine is busy enough to cross a round-trip
    // or event-loop threshold (the thresholds themselves are tested below with slowed
    // dependencies). Never fail.
    expect(['pass', 'warn']).toContain(body.status);
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
    for (const name of ['redis', 'database']) {
      expect(['pass', 'warn']).toContain(body.checks[name][0].status);
      expect(body.checks[name][0]).toMatchObject({ observedUnit: 'ms' });
      expect(typeof body.checks[name][0].observedValue).toBe('number');
    }
  });

  it('reports event-loop lag, heap, RSS and uptime with units', async () => {
    const body = JSON.parse((await request(ctx.app).get('/health/detailed')).text);
    expect(body.checks['eventloop:lag'][0]).toMatchObject({ observedUnit: 'ms' });
    expect(['pass', 'warn']).toContain(body.checks['eventloop:lag'][0].status);
    expect(body.checks['memory:heapUsed'][0]).toMatchObject({ observedUnit: 'bytes' });
    expect(body.checks['memory:rss'][0].observedValue).toBeGreaterThan(0);
    expect(body.checks.uptime[0].observedUnit).toBe('s');
  });

  it('is not rate limited, logged or compressed like the API', async () => {
    const res = await request(ctx.app).get('/health').set('Accept-Encoding', 'gzip');
    expect(res.headers.ratelimit).toBeUndefined();
    expect(res.headers['content-encoding']).toBeUndefined();
  });
});

describe('with Redis down', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    const port = await freePort();
    ctx = await createTestContext({ env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
  });
  afterAll(async () => ctx?.close());

  it('/health and /health/live still pass (a restart cannot fix Redis)', async () => {
    expect((await request(ctx.app).get('/health')).status).toBe(200);
    expect((await request(ctx.app).get('/health/live')).status).toBe(200);
  });

  it('/health/ready and /health/detailed fail fast with 503', async () => {
    const t0 = Date.now();
    const ready = await request(ctx.app).get('/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'fail', checks: { redis: false, database: true } });
    const detailed = await request(ctx.app).get('/health/detailed');
    expect(detailed.status).toBe(503);
    const body = JSON.parse(detailed.text);
    expect(body.status).toBe('fail');
    expect(body.checks.redis[0].status).toBe('fail');
    expect(body.checks.database[0].status).toBe('pass');
    expect(detailed.text).not.toMatch(/127\.0\.0\.1|redis:\/\//);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('public reads that need no Redis still work', async () => {
    expect((await request(ctx.app).get('/api/v1/items')).status).toBe(200);
  });
});

describe('with slow dependencies', () => {
  it('reports warn (still 200) above the round-trip thresholds, and computes probes at most once a second', async () => {
    let calls = 0;
    const slow = async () => {
      calls++;
      return { ok: true, latencyMs: 180, time: new Date().toISOString() };
    };
    const ctx = await createTestContext({
      app: { probes: { redis: slow, database: async () => ({ ok: true, latencyMs: 3, time: new Date().toISOString() }) } },
    });
    try {
      const res = await request(ctx.app).get('/health/detailed');
      expect(res.status).toBe(200);
      const body = JSON.parse(res.text);
      expect(body.status).toBe('warn');
      expect(body.checks.redis[0]).toMatchObject({ status: 'warn', observedValue: 180, output: 'slower than 50 ms' });
      expect(body.checks.database[0].status).toBe('pass');
      expect((await request(ctx.app).get('/health/ready')).status).toBe(200);
    } finally {
      await ctx.close();
    }
    // The real probes are cached: many polls, one probe.
    let pings = 0;
    const probes = createProbes({ store: { ping: async () => (pings++, 1) } as never, db: { ping: async () => 1 } as never });
    await Promise.all(Array.from({ length: 20 }, () => probes.redis()));
    expect(pings).toBe(1);
    expect(calls).toBeGreaterThan(0);
  });
});

describe('ops access in production', () => {
  const PRODUCTION = {
    NODE_ENV: 'production',
    REDIS_URL: 'redis://127.0.0.1:6379',
    DATABASE_URL: 'postgres://postgres@127.0.0.1/test',
    JWT_ACCESS_SECRET: 'a'.repeat(32),
    JWT_REFRESH_SECRET: 'b'.repeat(32),
    CORS_ORIGINS: '',
    TRUST_PROXY: 'loopback',
    OPS_TOKEN: 'ops-token-0123456789-0123456789-xyz',
  };
  const config = loadConfig(PRODUCTION);
  const app = express();
  app.set('trust proxy', config.trustProxy);
  app.get('/ops', opsAccess(config), (_req, res) => void res.json({ ok: true }));
  app.use(errorHandler(captureLogger().logger));

  it('lets loopback callers in', async () => {
    expect((await request(app).get('/ops')).status).toBe(200);
  });

  it('refuses other addresses without the token, and with a wrong one', async () => {
    const res = await request(app).get('/ops').set('X-Forwarded-For', '203.0.113.9');
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
    expect((await request(app).get('/ops').set('X-Forwarded-For', '203.0.113.9').set('Authorization', 'Bearer nope')).status).toBe(403);
  });

  it('lets in the addresses OPS_ALLOWED_ADDRESSES lists', async () => {
    const open = loadConfig({ ...PRODUCTION, OPS_ALLOWED_ADDRESSES: 'loopback, 10.0.0.0/8' });
    const app2 = express();
    app2.set('trust proxy', open.trustProxy);
    app2.get('/ops', opsAccess(open), (_req, res) => void res.json({ ok: true }));
    app2.use(errorHandler(captureLogger().logger));
    expect((await request(app2).get('/ops').set('X-Forwarded-For', '10.1.2.3')).status).toBe(200);
    expect((await request(app2).get('/ops').set('X-Forwarded-For', '11.1.2.3')).status).toBe(403);
  });

  it('lets the ops bearer token in from anywhere', async () => {
    const res = await request(app).get('/ops').set('X-Forwarded-For', '203.0.113.9').set('Authorization', `Bearer ${config.opsToken}`);
    expect(res.status).toBe(200);
  });
});
