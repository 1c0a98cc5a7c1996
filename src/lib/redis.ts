// ioredis client factory for request-path use. Defaults are wrong for a request path: commands
// sent while Redis is down queue and retry (about 74 s before failing on ioredis 6). Here a command
// either goes out on a live connection and answers within commandTimeout, or fails at once;
// reconnection goes on in the background and never holds a request.
import Redis, { type RedisOptions } from 'ioredis';
import { describeRedisTarget, type RedisTarget } from '../config/redis-url';
import type { Logger } from './logger';
import { withTimeout } from './timeout';

export interface RedisClientOptions {
  target: RedisTarget;
  /** PEM CAs the server's certificate must chain to, when the target uses TLS (else Node's own). */
  tlsCa?: string | undefined;
  /** Shown in CLIENT LIST and logs: "security", "cache". */
  role: string;
  commandTimeoutMs: number;
  logger: Logger;
}

/** Reconnect forever in the background, at most every 2 s. */
const retryStrategy = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 6), 2000);

export function createRedisClient({ target, tlsCa, role, commandTimeoutMs, logger }: RedisClientOptions): Redis {
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
  const client = newRedis(target, tlsCa, common);

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
  return client;
}

/**
 * An ioredis client for the target (one server or a Sentinel group), with TLS verified against
 * tlsCa when given. `options` come last, so a caller may override the Sentinel defaults below.
 */
export function newRedis(target: RedisTarget, tlsCa: string | undefined, options: RedisOptions): Redis {
  const tls = tlsCa === undefined ? {} : { ca: tlsCa };
  // The configuration refuses a Cluster (see src/config/index.ts); this guards other callers.
  if (target.kind === 'cluster') throw new Error('a Redis Cluster is not supported yet');
  if (target.kind === 'server') return new Redis(target.url, { ...options, ...(target.tls ? { tls } : {}) });
  return new Redis({ ...sentinelOptions(target, tls, options.commandTimeout ?? 1000), ...options });
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
export async function connectRedis(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return true;
  const connected = client.status === 'wait' ? client.connect().then(() => true) : waitForReady(client);
  return withTimeout(connected, timeoutMs, 'redis connect').catch(() => false);
}

function waitForReady(client: Redis): Promise<true> {
  return new Promise((resolve) => client.once('ready', () => resolve(true)));
}

/** QUIT politely, but never wait on a dead server longer than a moment. */
export async function closeRedis(client: Redis, timeoutMs = 1000): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    await withTimeout(client.quit(), timeoutMs, 'redis quit').catch(() => undefined);
  }
  client.disconnect();
}
