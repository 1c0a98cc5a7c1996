// ioredis client factory for request-path use. Defaults are wrong for a request path: commands
// sent while Redis is down queue and retry (about 74 s before failing on ioredis 6). Here a command
// either goes out on a live connection and answers within commandTimeout, or fails at once;
// reconnection goes on in the background and never holds a request.
import Redis from 'ioredis';
import type { Logger } from './logger';
import { redactString } from './redact';
import { withTimeout } from './timeout';

export interface RedisClientOptions {
  url: string;
  /** Shown in CLIENT LIST and logs: "security", "cache". */
  role: string;
  commandTimeoutMs: number;
  logger: Logger;
}

export function createRedisClient({ url, role, commandTimeoutMs, logger }: RedisClientOptions): Redis {
  const client = new Redis(url, {
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
    // Keep trying forever in the background, at most every 2 s.
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 2000),
    // A failover replica answers READONLY: reconnect to find the new primary.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  });

  // Log transitions, not every failed reconnect attempt (which would flood the log during an outage).
  let healthy: boolean | undefined;
  const where = redactString(url);
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
