// The process's dependencies: the stores and the database, built from config. createApp receives
// them, so tests can hand in their own (a separate Redis prefix, a fresh database).
import type { Config, RedisTarget } from './config';
import { createDatabase, type Database } from './lib/db';
import { LayoutTransition } from './lib/key-layout';
import type { Logger } from './lib/logger';
import { closeRedis, connectRedis, createRedisClient, type RedisClient } from './lib/redis';
import { MemoryStore } from './lib/store/memory-store';
import { RedisStore, type Replication } from './lib/store/redis-store';
import type { KeyValueStore } from './lib/store/types';

export interface Dependencies {
  config: Config;
  logger: Logger;
  /** Security state: rate limits, revocation, sessions. Must not be evicted. */
  store: KeyValueStore;
  /** Response cache: may be a separate, evicting Redis. */
  cache: KeyValueStore;
  db: Database;
  /** Whether the key layout of earlier releases is still in use (see key-layout.ts); none when absent. */
  layout?: LayoutTransition;
  /** Closes every connection this object opened. */
  close(): Promise<void>;
}

/** How long the first start of this key layout may look for keys of the old one (see key-layout.ts). */
const OLD_LAYOUT_SCAN_BUDGET_MS = 3000;

/** How long start-up waits for Redis before going on without it (readiness reports it). */
const REDIS_CONNECT_WAIT_MS = 3000;

export interface DependencyOptions {
  /** Key prefix for both stores (tests isolate themselves with it). */
  keyPrefix?: string;
}

/**
 * Where the security Redis has replicas (a Sentinel group, a Cluster), revocations wait for one of
 * them on a connection of their own (see Replication): on a Cluster, a client of its own with one
 * connection per master. One server has none to wait for.
 */
async function replicationFor(
  config: Config,
  redisFor: (target: RedisTarget, role: string, commandTimeoutMs: number) => Promise<RedisClient>,
): Promise<Replication | undefined> {
  if (config.redisTarget === undefined || config.redisTarget.kind === 'server' || config.redisReplicaWaitMs === 0) return undefined;
  // The WAIT itself may take its whole bound: the command timeout comes on top of it.
  const client = await redisFor(config.redisTarget, 'revocation', config.redisCommandTimeoutMs + config.redisReplicaWaitMs);
  return { client, waitMs: config.redisReplicaWaitMs };
}

export async function createDependencies(config: Config, logger: Logger, options: DependencyOptions = {}): Promise<Dependencies> {
  const prefix = options.keyPrefix ?? config.redisKeyPrefix;
  const clients: RedisClient[] = [];

  const redisFor = async (target: RedisTarget, role: string, commandTimeoutMs = config.redisCommandTimeoutMs): Promise<RedisClient> => {
    const client = createRedisClient({ target, tlsCa: config.redisTlsCa, natMap: config.redisClusterNatMap, role, commandTimeoutMs, logger });
    clients.push(client);
    if (!(await connectRedis(client, REDIS_CONNECT_WAIT_MS))) {
      logger.warn('redis not reachable at start-up; continuing and reconnecting in the background', { role });
    }
    return client;
  };

  let security: RedisClient | undefined;
  let store: KeyValueStore;
  if (config.redisTarget) {
    security = await redisFor(config.redisTarget, 'security');
    store = new RedisStore(security, prefix, await replicationFor(config, redisFor));
  } else {
    store = new MemoryStore(prefix);
  }
  // The cache may live in its own (evicting) Redis; with the same URL it shares the connection.
  let cache: KeyValueStore;
  if (config.cacheRedisTarget) {
    const cacheClient = security && config.cacheRedisUrl === config.redisUrl ? security : await redisFor(config.cacheRedisTarget, 'cache');
    cache = new RedisStore(cacheClient, `${prefix}cache:`);
  } else {
    cache = new MemoryStore(`${prefix}cache:`);
  }

  // A Cluster never held the untagged layout: releases before it refused one.
  const layout =
    store instanceof RedisStore && config.redisTarget?.kind !== 'cluster'
      ? await LayoutTransition.start(store, config.jwt.sessionMaxAgeMs, {
          // An untagged session key starts with its id's hex digits, a tagged one with a brace.
          findOldLayout: () => store.anyKeyMatching('sess:[0-9a-f]*', OLD_LAYOUT_SCAN_BUDGET_MS),
        })
      : LayoutTransition.none();

  let db: Database;
  try {
    db = await createDatabase(config, logger);
  } catch (err) {
    layout.stop();
    await Promise.all(clients.map((c) => closeRedis(c)));
    throw err;
  }

  return {
    config,
    logger,
    store,
    cache,
    db,
    layout,
    async close() {
      layout.stop();
      await Promise.allSettled([store.close(), cache.close(), ...clients.map((c) => closeRedis(c)), db.close()]);
    },
  };
}
