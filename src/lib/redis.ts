// ioredis client factory for request-path use. Defaults are wrong for a request path: commands
// sent while Redis is down queue and retry (about 74 s before failing on ioredis 6). Here a command
// either goes out on a live connection and answers within commandTimeout, or fails at once;
// reconnection goes on in the background and never holds a request.
import Redis, { Cluster, type ClusterOptions, type RedisOptions } from 'ioredis';
import { describeRedisTarget, type RedisNatMap, type RedisTarget } from '../config/redis-url';
import type { Logger } from './logger';
import { watchSentinelMaster } from './sentinel-watch';
import { withTimeout } from './timeout';

/** One server or a Sentinel group (a Redis), or a Cluster: the request path takes either. */
export type RedisClient = Redis | Cluster;

/** How to reach the servers beyond the URL itself. */
export interface RedisAccess {
  /** PEM CAs the server's certificate must chain to, when the target uses TLS (else Node's own). */
  tlsCa?: string | undefined;
  /** A Cluster's announced node addresses mapped to reachable ones (REDIS_CLUSTER_NAT_MAP). */
  natMap?: RedisNatMap | undefined;
}

export interface RedisClientOptions extends RedisAccess {
  target: RedisTarget;
  /** Shown in CLIENT LIST and logs: "security", "cache". */
  role: string;
  commandTimeoutMs: number;
  logger: Logger;
}

/** Reconnect forever in the background, at most every 2 s. */
const retryStrategy = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 6), 2000);

export function createRedisClient({ target, tlsCa, natMap, role, commandTimeoutMs, logger }: RedisClientOptions): RedisClient {
  const common: RedisOptions = {
    lazyConnect: true,
    connectionName: `rampart-${role}-${process.pid}`,
    // Fail fast while disconnected instead of queueing behind a reconnect loop.
    enableOfflineQueue: false,
    // Commands issued in the same tick (e.g. by concurrent requests) share one write and one
    // round trip.
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1000, commandTimeoutMs * 4),
    retryStrategy,
    // A failover replica answers READONLY: reconnect to find the new primary.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  };
  const client = newRedis(target, { tlsCa, natMap }, common);

  // Log transitions, not every failed reconnect attempt (which would flood the log during an outage).
  let healthy: boolean | undefined;
  const where = describeRedisTarget(target);
  client.on('ready', () => {
    if (healthy !== true) logger.info('redis connected', { role, url: where });
    healthy = true;
  });
  client.on('error', (err: Error) => {
    if (healthy !== false) logger.error('redis unavailable', { role, url: where, error: err.message });
    healthy = false;
  });
  client.on('close', () => {
    if (healthy !== true) return;
    logger.warn('redis connection closed; reconnecting', { role, url: where });
    healthy = false;
  });
  if (client.isCluster) {
    logClusterNodes(client as Cluster, role, logger);
    connectMastersAtOnce(client as Cluster);
  }
  if (target.kind === 'sentinel') {
    watchSentinelMaster(client as Redis, {
      name: target.name,
      sentinels: target.sentinels,
      sentinelOptions: {
        ...(target.sentinelUsername === undefined ? {} : { username: target.sentinelUsername }),
        ...(target.sentinelPassword === undefined ? {} : { password: target.sentinelPassword }),
        ...(target.tls ? { tls: tlsCa === undefined ? {} : { ca: tlsCa } } : {}),
        enableReadyCheck: false,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: commandTimeoutMs,
        connectTimeout: common.connectTimeout,
        retryStrategy,
      },
      role,
      where,
      logger,
    });
  }
  return client;
}

/**
 * ioredis opens a Cluster node's connection on its first command, and with the offline queue off
 * it refuses every other command sent to that node until the connection is ready: the first
 * burst of requests to a master (after start-up, the first revocation on the durable client)
 * would fail but for one. So once the Cluster is ready every master's connection opens at once,
 * and so does a master's that the slot map names later. Not before: ioredis checks the Cluster
 * (CLUSTER INFO to a node) before it is ready, and that check, too, would be refused by a node
 * still connecting, and the Cluster would start over, again and again.
 */
function connectMastersAtOnce(cluster: Cluster): void {
  const connect = (node: Redis) => {
    if (!node.options.readOnly && node.status === 'wait') node.connect().catch(() => undefined); // errors reach 'node error'
  };
  cluster.on('ready', () => cluster.nodes('master').forEach(connect));
  cluster.on('+node', (node: Redis) => {
    if (cluster.status === 'ready') connect(node);
  });
}

/**
 * A Cluster stays ready while one node is lost (its slots fail, the others are served): log each
 * node's loss once, and its return, by address.
 */
function logClusterNodes(cluster: Cluster, role: string, logger: Logger): void {
  const down = new Set<string>();
  cluster.on('node error', (err: Error, node: string) => {
    if (down.has(node)) return;
    down.add(node);
    logger.error('redis cluster node unavailable', { role, node, error: err.message });
  });
  cluster.on('+node', (redis: Redis) => {
    const node = `${redis.options.host}:${redis.options.port}`;
    redis.once('ready', () => {
      if (down.delete(node)) logger.info('redis cluster node reachable again', { role, node });
    });
  });
}

/**
 * An ioredis client for the target (one server, a Sentinel group or a Cluster), with TLS verified
 * against access.tlsCa when given. `options` come last, so a caller may override the Sentinel
 * defaults below; `clusterOverrides` likewise for a Cluster's own settings.
 */
export function newRedis(target: RedisTarget, access: RedisAccess, options: RedisOptions, clusterOverrides: ClusterOptions = {}): RedisClient {
  const tls = access.tlsCa === undefined ? {} : { ca: access.tlsCa };
  if (target.kind === 'server') return new Redis(target.url, { ...options, ...(target.tls ? { tls } : {}) });
  if (target.kind === 'cluster') return new Cluster(target.nodes, { ...clusterOptions(target, tls, access.natMap, options), ...clusterOverrides });
  return new Redis({ ...sentinelOptions(target, tls, options.commandTimeout ?? 1000), ...options });
}

/**
 * A Cluster: one connection per node, each with the request-path options (command bound, no
 * retries, credentials and TLS for every node). The Cluster itself fails a command at once where
 * ioredis would hold it: no offline queue, no retry after a closed connection or CLUSTERDOWN (the
 * command fails and the caller's policy applies: closed for security state, open for the cache).
 * MOVED redirections are still followed at once, and the slot map is refreshed every second, so
 * a promoted replica serves its slots without a restart. Reads go to masters only: security state
 * must read its own writes, which a replica may not have yet.
 */
function clusterOptions(
  target: Extract<RedisTarget, { kind: 'cluster' }>,
  tls: { ca?: string },
  natMap: RedisNatMap | undefined,
  options: RedisOptions,
): ClusterOptions {
  // Options that belong to the Cluster rather than to its node connections.
  const { lazyConnect, enableOfflineQueue, enableAutoPipelining, retryStrategy, reconnectOnError, ...node } = options;
  void reconnectOnError; // a node answering READONLY is a stale slot map, which MOVED and the refresh fix
  // No pipelines on a Cluster, automatic or explicit: ioredis 6 routes each command of a pipeline
  // on its own but writes them all in one go once every one has been written, so a command
  // refused on the way (its node connecting, with the offline queue off) leaves the others
  // waiting for replies on a node they were never sent to. Every later reply on that connection
  // then goes to the command before it: values of other keys, for as long as the connection
  // lives. Seen in a failover (refreshes timing out and a session read returning another key's
  // value for 16 s on one worker), reproduced in test/integration/redis-cluster.test.ts.
  void enableAutoPipelining;
  return {
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    enableAutoPipelining: false,
    ...(retryStrategy === undefined ? {} : { clusterRetryStrategy: retryStrategy }),
    scaleReads: 'master',
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    retryDelayOnTryAgain: 50,
    maxRedirections: 6,
    slotsRefreshTimeout: node.commandTimeout ?? 1000,
    slotsRefreshInterval: 1000,
    ...(natMap === undefined ? {} : { natMap }),
    redisOptions: {
      ...node,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls } : {}),
    },
  };
}

/**
 * A Sentinel group: the client asks the sentinels for the master, and reconnects (asking them
 * again) when it is lost. The request-path options above hold for the master connection; the
 * sentinel connections get the same command bound and reconnect schedule.
 */
function sentinelOptions(target: Extract<RedisTarget, { kind: 'sentinel' }>, tls: { ca?: string }, commandTimeoutMs: number): RedisOptions {
  return {
    sentinels: target.sentinels,
    name: target.name,
    role: 'master',
    db: target.db,
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.sentinelUsername === undefined ? {} : { sentinelUsername: target.sentinelUsername }),
    ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
    sentinelCommandTimeout: commandTimeoutMs,
    sentinelRetryStrategy: retryStrategy,
    // Subscribes to +switch-master and reconnects at once on a failover, instead of waiting for
    // the old master's connection to fail.
    failoverDetector: true,
    ...(target.tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
  };
}

/**
 * Connects, waiting at most timeoutMs. Resolves true when ready; false when Redis is not there yet
 * (the client keeps reconnecting in the background, and readiness reports it).
 */
export async function connectRedis(client: RedisClient, timeoutMs: number): Promise<boolean> {
  const ready =
    client.status === 'ready' ? Promise.resolve(true as const) : client.status === 'wait' ? client.connect().then(() => true as const) : waitForReady(client);
  // A Cluster is ready once it has the slot map; its masters' connections open right after.
  const connected = client.isCluster ? ready.then(() => mastersReady(client as Cluster)) : ready;
  return withTimeout(connected, timeoutMs, 'redis connect').catch(() => false);
}

async function mastersReady(cluster: Cluster): Promise<true> {
  await Promise.all(cluster.nodes('master').map((node) => (node.status === 'ready' ? Promise.resolve(true) : waitForReady(node))));
  return true;
}

function waitForReady(client: RedisClient): Promise<true> {
  return new Promise((resolve) => client.once('ready', () => resolve(true)));
}

/** QUIT politely, but never wait on a dead server longer than a moment. */
export async function closeRedis(client: RedisClient, timeoutMs = 1000): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    await withTimeout(client.quit(), timeoutMs, 'redis quit').catch(() => undefined);
  }
  client.disconnect();
}
