// Admission control over the real app: an overloaded process refuses API requests with a fast 503
// (Retry-After, Connection: close, the envelope), counts them by reason, logs at most once a
// second, and never refuses its operations endpoints.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app';
import { LoadMonitor, type ShedReason } from '../../src/lib/load-monitor';
import { createMetrics } from '../../src/lib/metrics';
import { createTestContext, type TestContext } from '../helpers/app';
import { register } from '../helpers/auth';
import { freePort } from '../helpers/redis-server';

/** A monitor the test can switch: refuses with `forced` when set, else measures as usual. */
class SwitchableMonitor extends LoadMonitor {
  forced: ShedReason | undefined;
  override overloaded(): ShedReason | undefined {
    return this.forced ?? super.overloaded();
  }
}

const shedCount = async (app: TestContext['app'], reason: string): Promise<number> => {
  const text = (await request(app).get('/metrics')).text;
  return Number(new RegExp(`^rampart_shed_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
};

describe('admission control', () => {
  let ctx: TestContext;
  const load = new SwitchableMonitor({ maxEventLoopDelayMs: 0, maxInFlight: 2, maxHeapUsedPercent: 0 });
  beforeAll(async () => {
    ctx = await createTestContext({ app: { load } });
  });
  afterAll(async () => {
    load.stop();
    await ctx?.close();
  });

  it('refuses an API request while overloaded: 503 service_unavailable, Retry-After, Connection: close, no-store, the request id', async () => {
    load.forced = 'event_loop_delay';
    try {
      const res = await request(ctx.app).get('/api/v1/items').set('X-Request-Id', 'shed-me-1');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: { code: 'service_unavailable', message: expect.stringMatching(/overloaded/), requestId: 'shed-me-1' } });
      expect(res.headers['retry-after']).toBe('1');
      expect(res.headers.connection).toBe('close');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-content-type-options']).toBe('nosniff'); // security headers come first
      // A write is refused before its body is read or anything is stored.
      const post = await request(ctx.app).post('/api/v1/auth/register').send({ email: 'shed@example.com', password: 'a long enough password 1' });
      expect(post.status).toBe(503);
    } finally {
      load.forced = undefined;
    }
    const after = await request(ctx.app).post('/api/v1/auth/login').send({ email: 'shed@example.com', password: 'a long enough password 1' });
    expect(after.status).toBe(401); // the refused registration created nothing
  });

  it('never refuses the operations endpoints, and leaves no access-log line for a refused request', async () => {
    load.forced = 'heap';
    try {
      for (const path of ['/health', '/health/live', '/health/ready', '/health/detailed', '/metrics']) {
        const res = await request(ctx.app).get(path);
        expect(res.status, path).toBe(200);
      }
      const refused = await request(ctx.app).get('/api/v1/items').set('X-Request-Id', 'shed-me-2');
      expect(refused.status).toBe(503);
    } finally {
      load.forced = undefined;
    }
    const logged = ctx.log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.requestId === 'shed-me-2');
    expect(logged.filter((l) => l.message === 'request completed')).toEqual([]);
    expect(logged.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('counts each refusal by reason in rampart_shed_total, every reason present from the start', async () => {
    const before = {
      delay: await shedCount(ctx.app, 'event_loop_delay'),
      heap: await shedCount(ctx.app, 'heap'),
      inFlight: await shedCount(ctx.app, 'in_flight'),
    };
    expect(Number.isInteger(before.inFlight)).toBe(true);
    load.forced = 'heap';
    try {
      await request(ctx.app).get('/api/v1/items');
      await request(ctx.app).get('/api/v1/items');
    } finally {
      load.forced = undefined;
    }
    expect(await shedCount(ctx.app, 'heap')).toBe(before.heap + 2);
    expect(await shedCount(ctx.app, 'event_loop_delay')).toBe(before.delay);
    expect(await shedCount(ctx.app, 'in_flight')).toBe(before.inFlight);
  });

  it('logs refusals at most once a second, with the count since the last line', async () => {
    const lines = () => ctx.log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message === 'overloaded: refusing requests');
    await new Promise((r) => setTimeout(r, 1100)); // the earlier tests' line is over a second old
    const start = lines().length;
    load.forced = 'event_loop_delay';
    try {
      for (let i = 0; i < 5; i++) await request(ctx.app).get('/api/v1/items');
    } finally {
      load.forced = undefined;
    }
    const logged = lines().slice(start);
    // Five refusals well within a second: one line, for the first (the 1 s window may just roll over once on a slow machine).
    expect(logged.length).toBeGreaterThanOrEqual(1);
    expect(logged.length).toBeLessThanOrEqual(2);
    expect(logged[0]).toMatchObject({ level: 'warn', reason: 'event_loop_delay', refused: expect.any(Number), inFlight: expect.any(Number) });
  });

  it('counts requests in flight for real: at the limit the next one is refused, and admitted again once they finish', async () => {
    const before = await shedCount(ctx.app, 'in_flight');
    const server = ctx.app.listen(0);
    try {
      const port = (server.address() as { port: number }).port;
      const slow = [1, 2].map(() => fetch(`http://127.0.0.1:${port}/api/v1/_diag/slow?ms=1500`));
      await new Promise((r) => setTimeout(r, 500)); // both are in the handler by now
      // The gauge is read from the same count when scraped.
      expect((await request(ctx.app).get('/metrics')).text).toMatch(/^http_requests_in_flight 2$/m);
      const third = await fetch(`http://127.0.0.1:${port}/api/v1/items`);
      expect(third.status).toBe(503);
      expect(((await third.json()) as { error: { code: string } }).error.code).toBe('service_unavailable');
      expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200]);
      expect(load.inFlight).toBe(0);
      const fourth = await fetch(`http://127.0.0.1:${port}/api/v1/items`);
      expect(fourth.status).toBe(200);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    expect(await shedCount(ctx.app, 'in_flight')).toBe(before + 1);
  });

  it('releases the in-flight count of a request whose client went away', async () => {
    const server = ctx.app.listen(0);
    try {
      const port = (server.address() as { port: number }).port;
      const controller = new AbortController();
      const pending = fetch(`http://127.0.0.1:${port}/api/v1/_diag/slow?ms=3000`, { signal: controller.signal }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      expect(load.inFlight).toBe(1);
      controller.abort();
      await pending;
      await waitUntil(() => load.inFlight === 0);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('cached reads while the cache is unavailable', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    // DB_POOL_MAX=1: at most two different reads go to the database at once.
    ctx = await createTestContext({ env: { CACHE_REDIS_URL: `redis://127.0.0.1:${await freePort()}`, DB_POOL_MAX: '1' }, app: { metrics: createMetrics() } });
  });
  afterAll(async () => ctx?.close());

  it('share one query per identical read, serve at most twice the pool of different ones, and refuse the rest with 503 + Retry-After', async () => {
    const owner = await register(ctx.app);
    const ids: string[] = [];
    for (const name of ['a', 'b', 'c']) {
      const res = await request(ctx.app).post('/api/v1/items').set('Authorization', `Bearer ${owner.accessToken}`).send({ name, price: 1 });
      expect(res.status).toBe(201);
      ids.push(res.body.item.id as string);
    }
    // The same app over a database whose queries wait until the test opens the gate.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let queries = 0;
    const db = ctx.deps.db;
    const query = (async (...args: Parameters<typeof db.query>) => {
      queries += 1;
      await gate;
      return db.query(...args);
    }) as typeof db.query;
    const metrics = createMetrics();
    const app = ctx.checked(createApp({ ...ctx.deps, db: { ...db, query } }, { metrics }));
    const server = app.listen(0);
    try {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/v1/items/`;
      const sameA = [1, 2, 3, 4].map(() => fetch(base + ids[0]));
      const onB = fetch(base + ids[1]);
      await waitUntil(() => queries === 2); // a and b are at the database; the other a's wait for the first
      const refused = await fetch(base + ids[2]);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('service_unavailable');
      open();
      const answers = await Promise.all([...sameA, onB]);
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect(answers.map((r) => r.headers.get('x-cache'))).toEqual(['BYPASS', 'BYPASS', 'BYPASS', 'BYPASS', 'BYPASS']);
      const bodies = await Promise.all(answers.map((r) => r.json() as Promise<{ item: { id: string } }>));
      expect(bodies.map((b) => b.item.id)).toEqual([ids[0], ids[0], ids[0], ids[0], ids[1]]);
      expect(queries).toBe(2); // four identical reads, one query
      // Once they are done, a different read is served again.
      const later = await fetch(base + ids[2]);
      expect(later.status).toBe(200);
    } finally {
      open();
      server.closeAllConnections();
      server.close();
    }
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^rampart_shed_total\{reason="cache_fallback"\} 1$/m);
  });
});
