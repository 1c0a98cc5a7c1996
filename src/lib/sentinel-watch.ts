// Keeps a Sentinel client on the master the sentinels name. ioredis finds the master by asking
// the sentinels one after the other and taking the first answer, starting with the one it used
// last; after a failover it asks again at the first +switch-master. A sentinel that has not
// switched yet names the old master, and an old master that is still alive (a failover because
// the sentinels lost sight of it, not because it died) accepts the connection: the client then
// writes to a master that is no longer the group's until the sentinels turn it into a replica,
// about ten seconds later, and what it wrote there is lost. Seen after a second, spurious
// failover on a loaded machine: one worker on the demoted master for 10 s while the other was
// on the new one.
//
// So once a second the watch asks every sentinel which master it names (by run id, which does
// not depend on how an address is written) and, when a majority names another server than the
// one the client is connected to, reconnects the client, asking a sentinel of that majority
// first.
import Redis, { type RedisOptions } from 'ioredis';
import type { RedisEndpoint } from '../config/redis-url';
import type { Logger } from './logger';

const SENTINEL_WATCH_INTERVAL_MS = 1000;

export interface SentinelWatchOptions {
  name: string;
  sentinels: readonly RedisEndpoint[];
  /** Connection options for the sentinels: credentials, TLS, command bound. */
  sentinelOptions: RedisOptions;
  role: string;
  /** Where the client connects, for the log: the sentinels and the master's name, no secrets. */
  where: string;
  logger: Logger;
  intervalMs?: number;
}

/** The field `field` of a reply made of alternating names and values (SENTINEL MASTER). */
function fieldOf(reply: unknown, field: string): string | undefined {
  if (!Array.isArray(reply)) return undefined;
  for (let i = 0; i + 1 < reply.length; i += 2) if (reply[i] === field) return String(reply[i + 1]);
  return undefined;
}

/** run_id from INFO server. */
function runIdOf(info: string): string | undefined {
  return /^run_id:([0-9a-f]+)\r?$/m.exec(info)?.[1];
}

/** The part of ioredis' Sentinel connector the watch reorders (see preferSentinel). */
interface SentinelConnectorState {
  sentinelIterator?: { sentinels?: { host?: string; port?: number }[] };
}

/**
 * Puts `endpoint` first in the order ioredis asks the sentinels in, so that the reconnection
 * asks a sentinel of the majority and not again the one that named the wrong master. Left as it
 * is when the connector does not look as expected (another ioredis major): the watch then
 * reconnects once a second until ioredis happens to ask a sentinel of the majority.
 */
function preferSentinel(client: Redis, endpoint: RedisEndpoint): void {
  const sentinels = (client as unknown as { connector?: SentinelConnectorState }).connector?.sentinelIterator?.sentinels;
  if (!Array.isArray(sentinels)) return;
  const at = sentinels.findIndex((s) => s.host === endpoint.host && s.port === endpoint.port);
  if (at > 0) sentinels.unshift(...sentinels.splice(at, 1));
}

/** Starts watching; stops by itself when the client ends for good. */
export function watchSentinelMaster(client: Redis, options: SentinelWatchOptions): void {
  const { name, role, where, logger } = options;
  const sentinels = options.sentinels.map((endpoint) => {
    const connection = new Redis({ ...options.sentinelOptions, host: endpoint.host, port: endpoint.port });
    connection.on('error', () => undefined); // a sentinel that cannot be reached simply has no vote
    return { endpoint, connection };
  });
  let checking = false;

  const check = async (): Promise<void> => {
    if (client.status !== 'ready') return;
    const named = await Promise.all(
      sentinels.map(({ connection }) =>
        connection.call('SENTINEL', 'MASTER', name).then(
          (reply) => fieldOf(reply, 'runid'),
          () => undefined,
        ),
      ),
    );
    const votes = new Map<string, number>();
    for (const runId of named) if (runId) votes.set(runId, (votes.get(runId) ?? 0) + 1);
    const [majority] = [...votes.entries()].find(([, n]) => n * 2 > sentinels.length) ?? [];
    if (majority === undefined) return; // the sentinels do not agree (yet): nothing to go by
    const own = await client.info('server').then(runIdOf, () => undefined);
    if (own === undefined || own === majority || client.status !== 'ready') return;
    logger.warn('redis connected to a master the sentinels no longer name; reconnecting', { role, url: where });
    preferSentinel(client, sentinels[named.indexOf(majority)]!.endpoint);
    client.disconnect(true);
  };

  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void check().finally(() => (checking = false));
  }, options.intervalMs ?? SENTINEL_WATCH_INTERVAL_MS);
  timer.unref();
  client.once('end', () => {
    clearInterval(timer);
    for (const { connection } of sentinels) connection.disconnect();
  });
}
