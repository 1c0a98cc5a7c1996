// A real app over real dependencies for supertest: its own Redis key prefix and its own
// PostgreSQL database when the services are configured, the embedded defaults otherwise.
import type { Express } from 'express';
import request from 'supertest';
import type { Cluster, Redis } from 'ioredis';
import { createApp, mountedRoutes, type AppOptions } from '../../src/app';
import { loadConfig, type Config, type Env } from '../../src/config';
import { createDependencies, type Dependencies } from '../../src/deps';
import { migrate } from '../../src/lib/db/migrate';
import { parseRedisUrl } from '../../src/config/redis-url';
import { newRedis } from '../../src/lib/redis';
import { withTimeout } from '../../src/lib/timeout';
import { buildDocument } from '../../src/http/openapi';
import { createMetrics } from '../../src/lib/metrics';
import { VERSION } from '../../src/version';
import { checkedApp, contractChecker, type ContractChecker } from './contract';
import { createTestDatabase, type TestDatabase } from './database';
import { captureLogger, type CapturedLogger } from './log-capture';
import { freePort } from './redis-server';
import { DATABASE_URL, DB_TRANSACTION_POOLING, REDIS_URL, uniqueSuffix } from './services';

type Exchange = Parameters<ContractChecker['check']>[0];

export interface TestContext {
  app: Express;
  deps: Dependencies;
  config: Config;
  log: CapturedLogger;
  keyPrefix: string;
  /** Every response of `app` (and of apps passed to `checked`) is held to the OpenAPI document. */
  contract: ContractChecker;
  /** Another app over these dependencies (a second worker, other settings), checked like `app`. */
  checked(app: Express): Express;
  close(): Promise<void>;
}

export interface TestContextOptions {
  env?: Env;
  app?: AppOptions;
  /** Share a database with another context (two app instances, one database). */
  databaseUrl?: string;
  keyPrefix?: string;
}

/**
 * Deletes every key under a prefix (test clean-up), on one server, a Sentinel group's master or
 * every master of a Cluster (keys one by one there: one command may not span slots).
 */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<void> {
  const parsed = parseRedisUrl(url);
  if (!parsed.ok) return;
  const client = newRedis(
    parsed.target,
    {},
    { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, sentinelRetryStrategy: () => null },
    { slotsRefreshInterval: 0 },
  );
  client.on('error', () => undefined); // a test may point at a Redis that is down on purpose
  client.on('node error', () => undefined);
  try {
    try {
      await withTimeout(client.connect(), 5000, 'redis connect');
    } catch {
      return; // nothing can have been written there
    }
    for (const node of client.isCluster ? (client as Cluster).nodes('master') : [client as Redis]) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        if (keys.length > 0) await (client.isCluster ? Promise.all(keys.map((key) => node.unlink(key))) : node.del(...keys));
        cursor = next;
      } while (cursor !== '0');
    }
  } finally {
    client.disconnect();
  }
}

export async function createTestContext(options: TestContextOptions = {}): Promise<TestContext> {
  let database: TestDatabase | undefined;
  let databaseUrl = options.databaseUrl;
  if (!databaseUrl && DATABASE_URL) {
    database = await createTestDatabase();
    databaseUrl = database.url;
  }
  const env: Env = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'debug',
    ENABLE_DIAGNOSTIC_ROUTES: 'true',
    // Tests send many requests from one address; rate-limit tests set their own limits.
    RATE_LIMIT_API_MAX: '100000',
    RATE_LIMIT_LOGIN_MAX: '100000',
    RATE_LIMIT_LOGIN_ACCOUNT_MAX: '100000',
    RATE_LIMIT_REGISTER_MAX: '100000',
    RATE_LIMIT_REFRESH_MAX: '100000',
    REDIS_URL,
    DATABASE_URL: databaseUrl,
    DB_TRANSACTION_POOLING: String(DB_TRANSACTION_POOLING),
    ...options.env,
  };
  const config = loadConfig(env);
  const log = captureLogger(config.logLevel);
  const keyPrefix = options.keyPrefix ?? `rampart:test:${uniqueSuffix()}:`;
  const deps = await createDependencies(config, log.logger, { keyPrefix });
  await migrate(deps.db);
  const raw = createApp(deps, options.app);
  const contract = await contractChecker(buildDocument(mountedRoutes(raw), { config, version: VERSION }));
  // Other apps a test builds may mount other modules (diagnostic routes off, API_DOCS off): each is
  // held to its own document, built from what it mounts, once the test file is done with it.
  const others: { app: Express; exchanges: Exchange[] }[] = [];
  const checkOthers = async () => {
    for (const { app, exchanges } of others) {
      const own = await contractChecker(buildDocument(mountedRoutes(app), { config, version: VERSION }));
      for (const exchange of exchanges) own.check(exchange);
      contract.violations.push(...own.violations);
    }
  };
  return {
    app: checkedApp(raw, contract),
    deps,
    config,
    log,
    keyPrefix,
    contract,
    checked: (app) => {
      const exchanges: Exchange[] = [];
      others.push({ app, exchanges });
      return checkedApp(app, { violations: [], checked: 0, check: (exchange) => exchanges.push(exchange) });
    },
    async close() {
      await deps.close();
      if (config.redisUrl) await deleteRedisPrefix(config.redisUrl, keyPrefix);
      await database?.drop();
      await checkOthers();
      if (contract.violations.length > 0) {
        throw new Error(`${contract.violations.length} response(s) left the OpenAPI document:\n  ${contract.violations.join('\n  ')}`);
      }
    },
  };
}

/** A context whose cache store points at a port nobody listens on: every cached read is a BYPASS. */
export async function createCacheDownContext(): Promise<TestContext> {
  return createTestContext({ env: { CACHE_REDIS_URL: `redis://127.0.0.1:${await freePort()}` }, app: { metrics: createMetrics() } });
}

/** The same database, counting the queries sent through it (to prove a cache hit sends none). */
export function countingDatabase(db: Dependencies['db']): { db: Dependencies['db']; queries: () => number } {
  let queries = 0;
  const query = ((...args: Parameters<typeof db.query>) => {
    queries++;
    return db.query(...args);
  }) as typeof db.query;
  return { db: { ...db, query }, queries: () => queries };
}

/** The statuses of `count` reads of the item list from one address, sent to `a` and `b` in turn. */
export async function alternatingStatuses(a: Express, b: Express, ip: string, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++)
    statuses.push(
      (
        await request(i % 2 ? a : b)
          .get('/api/v1/items')
          .set('X-Forwarded-For', ip)
      ).status,
    );
  return statuses;
}
