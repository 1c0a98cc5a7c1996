// System tests: the built app under real PM2 in cluster mode (2 workers), with real PostgreSQL and
// a Redis of the test's own that it stops and restarts. Bounded in time; stops what it started.
import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { clusterEnv, fresh, Pm2App, workersReady } from '../helpers/pm2';
import { freePort, HAS_REDIS_SERVER, TestRedisServer } from '../helpers/redis-server';
import { DATABASE_URL } from '../helpers/services';
import { sample } from '../helpers/prometheus';

const CAN_RUN = Boolean(DATABASE_URL) && HAS_REDIS_SERVER;
const REASON = 'skipped: needs real PostgreSQL shared by the workers (DATABASE_URL) and redis-server';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(!CAN_RUN)(`PM2 cluster mode, 2 workers${CAN_RUN ? '' : ` [${REASON}]`}`, () => {
  let redis: TestRedisServer;
  let db: TestDatabase;
  let app: Pm2App;
  let port: number;
  let opsPort: number;

  const everyWorkerReady = () => workersReady(app, port);

  beforeAll(async () => {
    redis = await TestRedisServer.create();
    db = await createTestDatabase();
    port = await freePort();
    opsPort = await freePort();
    app = new Pm2App(`rampart-sys-${randomUUID().slice(0, 8)}`, clusterEnv(port, redis.url, db.url, { RATE_LIMIT_LOGIN_MAX: '5', OPS_PORT: String(opsPort) }));
    app.start();
    await waitFor('two ready workers', everyWorkerReady, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${app.logs()}`);
    });
  }, 180_000);

  afterAll(async () => {
    app?.kill();
    await redis?.stop();
    await db?.drop();
  }, 60_000);

  it('spreads fresh connections over both workers', async () => {
    const pids = new Set<number>();
    for (let i = 0; i < 12; i++) pids.add((await fresh(port, 'GET', '/api/v1/_diag/whoami')).json().pid);
    expect(pids.size).toBe(2);
    expect([...pids].sort()).toEqual(
      app
        .instances()
        .map((i) => i.pid)
        .sort(),
    );
  });

  it('starts every worker with the V8 heap settings of ecosystem.config.js', () => {
    // PM2 retitles its workers, so /proc/<pid>/cmdline does not show the flags; what PM2 passed
    // them is in its process list. A flag node did not know would have kept them from starting.
    for (const worker of app.instances()) {
      expect(worker.status).toBe('online');
      // Two workers (clusterEnv): each heap may take half of 75 % of the host's memory.
      expect(worker.nodeArgs).toEqual(['--max-old-space-size-percentage=37', '--heap-growing-percent=70']);
    }
  });

  it('holds a rate limit exactly across the workers', async () => {
    const email = `sys-${randomUUID()}@example.com`;
    expect((await fresh(port, 'POST', '/api/v1/auth/register', { email, password: 'system test password' })).status).toBe(201);
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await fresh(port, 'POST', '/api/v1/auth/login', { email, password: 'wrong password' })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
  });

  it('honours a logout on one worker in the other', async () => {
    const email = `sys-${randomUUID()}@example.com`;
    const reg = (await fresh(port, 'POST', '/api/v1/auth/register', { email, password: 'system test password' })).json();
    const bearer = { authorization: `Bearer ${reg.accessToken}` };
    const before = [];
    for (let i = 0; i < 4; i++) before.push((await fresh(port, 'GET', '/api/v1/users/me', undefined, bearer)).status);
    expect(before).toEqual([200, 200, 200, 200]);
    expect((await fresh(port, 'POST', '/api/v1/auth/logout', {}, bearer)).status).toBe(204);
    const after = [];
    for (let i = 0; i < 6; i++) after.push((await fresh(port, 'GET', '/api/v1/users/me', undefined, bearer)).status);
    expect(after).toEqual([401, 401, 401, 401, 401, 401]);
  });

  it('answers /metrics for the whole host, whichever worker is scraped', async () => {
    const sent = 24;
    for (let i = 0; i < sent; i++) expect((await fresh(port, 'GET', `/api/v1/items/${randomUUID()}`)).status).toBe(404);
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      const scrape = await fresh(port, 'GET', '/metrics');
      expect(scrape.status).toBe(200);
      seen.push(sample(scrape.body, 'http_request_duration_seconds_count', { route: '/api/v1/items/:id', status_code: '404' }) ?? 0);
    }
    expect(seen).toEqual(Array(6).fill(sent));
  });

  it('serves the operations listener from the workers, shared through the primary like the API port', async () => {
    // A worker that could not listen on OPS_PORT would have exited at start: both are online.
    expect(app.instances().every((i) => i.status === 'online')).toBe(true);
    for (let i = 0; i < 6; i++) expect((await fresh(opsPort, 'GET', '/health/live')).status).toBe(200);
    expect((await fresh(opsPort, 'GET', '/api/v1/_diag/whoami')).status).toBe(404);
    // Whichever worker takes the scrape answers for the host, as on the API port.
    const api = sample((await fresh(port, 'GET', '/metrics')).body, 'http_request_duration_seconds_count', { route: '/api/v1/items/:id', status_code: '404' });
    const ops = sample((await fresh(opsPort, 'GET', '/metrics')).body, 'http_request_duration_seconds_count', {
      route: '/api/v1/items/:id',
      status_code: '404',
    });
    expect(ops).toBe(api);
  });

  it('reloads under continuous load with zero failed requests', async () => {
    // Warm the cache so the load measures the server, not PostgreSQL.
    await fresh(port, 'GET', '/api/v1/items');
    const pidsBefore = app.instances().map((i) => i.pid);
    const load = autocannon({ url: `http://127.0.0.1:${port}/api/v1/items`, connections: 20, duration: 14 });
    await sleep(1500);
    const t0 = Date.now();
    app.reload();
    const reloadMs = Date.now() - t0;
    const result = await load;
    const pidsAfter = app.instances().map((i) => i.pid);
    console.log(
      `pm2 reload under load: ${result.requests.total} requests, ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx, reload took ${reloadMs} ms`,
    );
    expect(pidsAfter.some((p) => pidsBefore.includes(p))).toBe(false); // every worker was replaced
    expect(result.requests.total).toBeGreaterThan(1000);
    expect(result.errors).toBe(0);
    expect(result.timeouts).toBe(0);
    expect(result.non2xx).toBe(0);
  }, 60_000);

  it('lets a slow in-flight request finish after SIGTERM, then exits', async () => {
    await waitFor('two ready workers', everyWorkerReady, 60_000);
    const slow = fresh(port, 'GET', '/api/v1/_diag/slow?ms=3000');
    await sleep(300);
    const pids = app.instances().map((i) => i.pid);
    const t0 = Date.now();
    for (const pid of pids) process.kill(pid, 'SIGTERM'); // workers this test's PM2 started
    const reply = await slow;
    expect(reply.status).toBe(200);
    expect(reply.json()).toEqual({ sleptMs: 3000 });
    const exitMs: number[] = [];
    await waitFor(
      'workers to exit',
      () => {
        for (const pid of pids) {
          try {
            process.kill(pid, 0);
          } catch {
            if (exitMs.length < pids.length && !exitMs.includes(pid)) exitMs.push(pid);
          }
        }
        return exitMs.length === pids.length;
      },
      20_000,
    );
    const elapsed = Date.now() - t0;
    console.log(`SIGTERM to exit: ${elapsed} ms for both workers (drain 1000 ms, slowest request 3000 ms)`);
    expect(elapsed).toBeLessThan(11_000); // inside kill_timeout: they left by themselves
    await waitFor('PM2 to restart both workers', everyWorkerReady, 60_000);
  }, 90_000);

  it('with Redis stopped: 503 on authenticated routes, 200 on public reads; full recovery after', async () => {
    const email = `sys-${randomUUID()}@example.com`;
    const reg = (await fresh(port, 'POST', '/api/v1/auth/register', { email, password: 'system test password' })).json();
    const bearer = { authorization: `Bearer ${reg.accessToken}` };
    await fresh(port, 'GET', '/api/v1/items');

    await redis.stop();
    for (let i = 0; i < 4; i++) {
      const t0 = Date.now();
      const me = await fresh(port, 'GET', '/api/v1/users/me', undefined, bearer);
      expect(me.status).toBe(503);
      expect(me.headers['retry-after']).toBeDefined();
      expect(Date.now() - t0).toBeLessThan(2000);
      const items = await fresh(port, 'GET', '/api/v1/items');
      expect(items.status).toBe(200);
      expect(items.headers['x-cache']).toBe('BYPASS');
    }

    await redis.start();
    await waitFor('readiness after Redis returns', everyWorkerReady, 30_000);
    const again = (await fresh(port, 'POST', '/api/v1/auth/register', { email: `sys-${randomUUID()}@example.com`, password: 'system test password' })).json();
    for (let i = 0; i < 4; i++) {
      expect((await fresh(port, 'GET', '/api/v1/users/me', undefined, { authorization: `Bearer ${again.accessToken}` })).status).toBe(200);
    }
    expect((await fresh(port, 'GET', '/api/v1/items')).headers['x-cache']).toMatch(/HIT|MISS/);
  }, 90_000);
});
