// The database down at start-up: the process starts anyway, live and not ready; database routes
// answer 503 with Retry-After at once; cached public reads are served; when the database appears
// the migrations run, and only then does readiness turn 200 (and PM2 hear `ready`). Saturation of
// the pool answers 503 too. "Down" is a port where nothing listens, which a proxy to the shared
// PostgreSQL then opens; the shared server itself is never touched.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Env } from '../../src/config';
import { start, type RunningServer } from '../../src/server';
import { createTestContext, deleteRedisPrefix, type TestContext } from '../helpers/app';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { captureLogger, type CapturedLogger } from '../helpers/log-capture';
import { DATABASE_URL, NO_DATABASE_REASON, NO_REDIS_REASON, REDIS_URL, uniqueSuffix } from '../helpers/services';
import { TcpProxy } from '../helpers/tcp-proxy';

const ROOT = path.resolve(__dirname, '../..');

/** A 503 must come back well within this; the policy says "fast". Generous for a loaded machine. */
const FAST_MS = 1500;

/** The URL of db, but through the proxy. */
function viaProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}

function upstreamOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 5432) };
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe.skipIf(!DATABASE_URL)(`the database down at start-up${DATABASE_URL ? '' : ` [${NO_DATABASE_REASON}]`}`, () => {
  let testDb: TestDatabase;
  let proxy: TcpProxy;
  let running: RunningServer;
  let log: CapturedLogger;
  let seeded: TestContext | undefined;
  const keyPrefix = `rampart:test:${uniqueSuffix()}:`;
  let startMs = 0;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    proxy = await TcpProxy.create(upstreamOf(testDb.url));
    if (REDIS_URL) {
      // Another process, earlier, with the database up: it cached the first page of items.
      seeded = await createTestContext({ databaseUrl: testDb.url, keyPrefix });
      expect((await request(seeded.app).get('/api/v1/items')).headers['x-cache']).toBe('MISS');
    }
    const env: Env = { NODE_ENV: 'test', PORT: '0', REDIS_URL, DATABASE_URL: viaProxy(testDb.url, proxy), SHUTDOWN_DRAIN_MS: '0' };
    log = captureLogger('debug');
    const t0 = Date.now();
    running = await start(loadConfig(env), log.logger, { keyPrefix });
    startMs = Date.now() - t0;
  });
  afterAll(async () => {
    await running?.shutdown('test end').catch(() => undefined);
    await seeded?.close();
    await proxy?.stop();
    if (REDIS_URL) await deleteRedisPrefix(REDIS_URL, keyPrefix);
    await testDb?.drop();
  });

  const app = () => `http://127.0.0.1:${running.port}`;

  it('starts and listens: live, not ready', async () => {
    expect(startMs).toBeLessThan(5000);
    expect((await request(app()).get('/health')).status).toBe(200);
    expect((await request(app()).get('/health/live')).status).toBe(200);
    const ready = await request(app()).get('/health/ready');
    expect([ready.status, ready.body.checks?.database]).toEqual([503, false]);
    expect(log.lines.some((l) => l.includes('database unreachable at start-up'))).toBe(true);
    await expect(running.deps.db.ping()).rejects.toThrow(); // what waits for PM2's `ready`
  });

  it('answers 503 service_unavailable with Retry-After, fast, on routes that need the database', async () => {
    const email = `u-${uniqueSuffix()}@example.com`;
    const password = 'correct horse battery staple';
    for (const [name, send] of [
      ['an uncached list', () => request(app()).get('/api/v1/items?page=2')],
      ['a registration', () => request(app()).post('/api/v1/auth/register').send({ email, password, name: 'X' })],
      ['a login', () => request(app()).post('/api/v1/auth/login').send({ email, password })],
    ] as const) {
      const t0 = Date.now();
      const res = await send();
      const elapsed = Date.now() - t0;
      expect([res.status, res.body.error?.code, res.headers['retry-after']], name).toEqual([503, 'service_unavailable', '5']);
      expect(elapsed, name).toBeLessThan(FAST_MS);
    }
    // Logged as a warning, not an error with a stack.
    const lines = log.lines.map((l) => JSON.parse(l) as { level: string; message: string });
    expect(lines.filter((l) => l.message === 'request failed')).toEqual([]);
    expect(lines.some((l) => l.level === 'warn' && l.message === 'request refused: dependency unavailable')).toBe(true);
  });

  it.skipIf(!REDIS_URL)(`serves cached public reads${REDIS_URL ? '' : ` [${NO_REDIS_REASON}]`}`, async () => {
    const res = await request(app()).get('/api/v1/items');
    expect([res.status, res.headers['x-cache']]).toEqual([200, 'HIT']);
  });

  it('migrates once the database appears, and only then turns ready and serves', async () => {
    await proxy.start();
    const t0 = Date.now();
    expect(await until(async () => (await request(app()).get('/health/ready')).status === 200, 10_000)).toBe(true);
    const readyAfterMs = Date.now() - t0;
    const { rows } = await running.deps.db.query<{ n: number }>('SELECT count(*) AS n FROM schema_migrations');
    expect(rows[0]!.n).toBeGreaterThan(0);
    const registered = await request(app())
      .post('/api/v1/auth/register')
      .send({ email: `u-${uniqueSuffix()}@example.com`, password: 'correct horse battery staple', name: 'X' });
    expect(registered.status).toBe(201);
    expect((await request(app()).get('/api/v1/items?page=2')).status).toBe(200);
    expect(readyAfterMs).toBeLessThan(5000); // retries at most every 2 s
  });
});

describe.skipIf(!DATABASE_URL)(`the process under PM2 with the database down at start-up${DATABASE_URL ? '' : ` [${NO_DATABASE_REASON}]`}`, () => {
  let testDb: TestDatabase;
  let proxy: TcpProxy;
  let child: ChildProcess | undefined;
  const keyPrefix = `rampart:test:${uniqueSuffix()}:`;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    proxy = await TcpProxy.create(upstreamOf(testDb.url));
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    await proxy?.stop();
    if (REDIS_URL) await deleteRedisPrefix(REDIS_URL, keyPrefix);
    await testDb?.drop();
  });

  it('stays up and sends `ready` only once the database has appeared and the migrations are applied', async () => {
    const messages: { at: number; msg: unknown }[] = [];
    child = fork(path.join(ROOT, 'dist/server.js'), [], {
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'test',
        PORT: '0',
        REDIS_URL,
        REDIS_KEY_PREFIX: keyPrefix,
        DATABASE_URL: viaProxy(testDb.url, proxy),
        SHUTDOWN_DRAIN_MS: '0',
      },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    child.on('message', (msg) => messages.push({ at: Date.now(), msg }));
    await new Promise((r) => setTimeout(r, 3000));
    expect(child.exitCode).toBeNull();
    expect(messages).toEqual([]);
    const appearedAt = Date.now();
    await proxy.start();
    expect(await until(() => Promise.resolve(messages.length > 0), 10_000)).toBe(true);
    expect(messages[0]!.msg).toBe('ready');
    expect(messages[0]!.at).toBeGreaterThanOrEqual(appearedAt);
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      expect((await client.query<{ n: string }>('SELECT count(*) AS n FROM schema_migrations')).rows[0]!.n).not.toBe('0');
    } finally {
      await client.end();
    }
  });
});

describe.skipIf(!DATABASE_URL)(`a saturated pool${DATABASE_URL ? '' : ` [${NO_DATABASE_REASON}]`}`, () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext({ env: { DB_POOL_MAX: '1' } });
  });
  afterAll(async () => ctx?.close());

  it('answers 503 with Retry-After within the pool wait while a slow query holds the only connection', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holder = ctx.deps.db.transaction(async (tx) => {
      await tx.query('SELECT pg_sleep(0.2)');
      await held;
    });
    try {
      await new Promise((r) => setTimeout(r, 50));
      const t0 = Date.now();
      const res = await request(ctx.app).get('/api/v1/items?page=4'); // uncached
      const elapsed = Date.now() - t0;
      expect([res.status, res.body.error?.code, res.headers['retry-after'], res.headers['cache-control']]).toEqual([
        503,
        'service_unavailable',
        '5',
        'no-store',
      ]);
      expect(elapsed).toBeLessThan(FAST_MS); // the wait is DB_STATEMENT_TIMEOUT_MS, 800 ms
      const warning = ctx.log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.message === 'request refused: dependency unavailable');
      expect(warning).toMatchObject({ level: 'warn', reason: 'timeout exceeded when trying to connect' });
    } finally {
      release();
      await holder;
    }
    expect((await request(ctx.app).get('/api/v1/items?page=4')).status).toBe(200);
  });
});
