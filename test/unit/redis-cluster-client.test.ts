// The Cluster client keeps the request path's failure policy on every node: the options ioredis
// is given, read back from a client that never connects (the behaviour itself is proven against a
// real Cluster in test/integration/redis-cluster.test.ts and test/system/cluster-failover.test.ts).
import type { Cluster } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { closeRedis, createRedisClient } from '../../src/lib/redis';
import { captureLogger } from '../helpers/log-capture';

function clusterClient(env: Record<string, string>, tlsCa?: string): Cluster {
  const config = loadConfig({ REDIS_URL: 'redis-cluster://app:s3cret@n1:7000,n2:7001', ...env });
  const client = createRedisClient({
    target: config.redisTarget!,
    tlsCa,
    natMap: config.redisClusterNatMap,
    role: 'security',
    commandTimeoutMs: 250,
    logger: captureLogger().logger,
  });
  expect(client.isCluster).toBe(true);
  return client as Cluster;
}

describe('a Cluster client', () => {
  it('fails fast: no offline queue, no retry after a closed connection or CLUSTERDOWN, bounded commands on every node', async () => {
    const client = clusterClient({});
    try {
      expect(client.status).toBe('wait'); // lazy: nothing connects until start-up asks
      expect(client.options).toMatchObject({ enableOfflineQueue: false, retryDelayOnFailover: 0, retryDelayOnClusterDown: 0, scaleReads: 'master' });
      expect(client.options.redisOptions).toMatchObject({ commandTimeout: 250, maxRetriesPerRequest: 0, username: 'app', password: 's3cret' });
      expect(typeof client.options.clusterRetryStrategy).toBe('function');
      expect(client.options.clusterRetryStrategy!(100)).toBe(2000); // background reconnect, at most every 2 s
      expect(client.options.redisOptions).not.toHaveProperty('tls');
      expect(client.options.natMap).toBeUndefined();
    } finally {
      await closeRedis(client);
    }
  });

  it('uses TLS with the configured CA on every node, and the NAT mapping', async () => {
    const client = clusterClient({ REDIS_URL: 'redis-cluster://app:s3cret@n1:7000?tls=true', REDIS_CLUSTER_NAT_MAP: '10.0.0.5:6379=127.0.0.1:7001' }, 'PEM CA');
    try {
      expect(client.options.redisOptions).toMatchObject({ tls: { ca: 'PEM CA' } });
      expect(client.options.natMap).toEqual({ '10.0.0.5:6379': { host: '127.0.0.1', port: 7001 } });
    } finally {
      await closeRedis(client);
    }
  });
});
