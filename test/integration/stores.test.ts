// The KeyValueStore contract, run against the in-process store and real Redis, and the Redis
// client's failure behaviour: down, hanging, restarted.
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedis, connectRedis, createRedisClient } from '../../src/lib/redis';
import { MemoryStore } from '../../src/lib/store/memory-store';
import { RedisStore } from '../../src/lib/store/redis-store';
import type { KeyValueStore } from '../../src/lib/store/types';
import { deleteRedisPrefix } from '../helpers/app';
import { captureLogger } from '../helpers/log-capture';
import { blackHole, freePort, HAS_REDIS_SERVER, NO_REDIS_SERVER_REASON, serverTarget, TestRedisServer } from '../helpers/redis-server';
import { NO_REDIS_REASON, REDIS_URL, uniqueSuffix } from '../helpers/services';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const { logger } = captureLogger();

function storeContract(name: string, make: () => Promise<{ store: KeyValueStore; other: KeyValueStore; cleanup: () => Promise<void> }>) {
  describe(name, () => {
    let store: KeyValueStore;
    let other: KeyValueStore;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ store, other, cleanup } = await make());
    });
    afterAll(async () => cleanup?.());

    it('gets, sets and deletes', async () => {
      expect(await store.get('k1')).toBeNull();
      await store.set('k1', 'v1', 10_000);
      expect(await store.get('k1')).toBe('v1');
      expect(await store.del(['k1', 'missing'])).toBe(1);
      expect(await store.get('k1')).toBeNull();
    });

    it('expires values after their TTL', async () => {
      await store.set('short', 'x', 60);
      expect(await store.get('short')).toBe('x');
      await sleep(120);
      expect(await store.get('short')).toBeNull();
    });

    it('reads several keys in one call, in order', async () => {
      await store.set('m1', 'a', 10_000);
      await store.set('m3', 'c', 10_000);
      expect(await store.mget(['m1', 'm2', 'm3'])).toEqual(['a', null, 'c']);
      expect(await store.mget([])).toEqual([]);
    });

    it('sets only when absent', async () => {
      expect(await store.setIfAbsent('once', '1', 10_000)).toBe(true);
      expect(await store.setIfAbsent('once', '2', 10_000)).toBe(false);
      expect(await store.get('once')).toBe('1');
    });

    it('swaps only existing keys, and exactly one of concurrent swappers sees the original', async () => {
      expect(await store.swapIfExists('absent', 'x', 10_000)).toBeNull();
      expect(await store.get('absent')).toBeNull();
      await store.set('token', 'active', 10_000);
      const olds = await Promise.all(Array.from({ length: 20 }, (_, i) => store.swapIfExists('token', `used-${i}`, 10_000)));
      expect(olds.filter((o) => o === 'active')).toHaveLength(1);
      expect(olds.filter((o) => o?.startsWith('used-'))).toHaveLength(19);
    });

    it('counts hits in a fixed window that resets', async () => {
      const first = await store.hit('window', 150);
      expect(first.count).toBe(1);
      expect(first.resetInMs).toBeGreaterThan(0);
      expect(first.resetInMs).toBeLessThanOrEqual(150);
      expect((await store.hit('window', 150)).count).toBe(2);
      await store.unhit('window');
      expect((await store.hit('window', 150)).count).toBe(2);
      await sleep(200);
      expect((await store.hit('window', 150)).count).toBe(1);
    });

    it('bumps a counter and renews its expiry each time', async () => {
      expect(await store.bump('gen', 100)).toBe(1);
      await sleep(60);
      expect(await store.bump('gen', 100)).toBe(2);
      await sleep(60);
      expect(await store.get('gen')).toBe('2'); // still there: the second bump renewed it
      await sleep(100);
      expect(await store.get('gen')).toBeNull();
    });

    it('never lets unhit create a key or go below zero', async () => {
      await store.unhit('never-hit');
      expect(await store.get('never-hit')).toBeNull();
      await store.hit('floor', 10_000);
      await store.unhit('floor');
      await store.unhit('floor');
      expect((await store.hit('floor', 10_000)).count).toBe(1);
    });

    it('counts concurrent hits exactly', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, () => store.hit('burst', 10_000)));
      expect(results.map((r) => r.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it('keeps sets: adds, lists, removes, renews the expiry on every add, and drops an emptied set', async () => {
      expect(await store.setMembers('index')).toEqual([]);
      await store.addToSet('index', ['a', 'b'], 150);
      await store.addToSet('index', ['b', 'c'], 10_000);
      expect((await store.setMembers('index')).sort()).toEqual(['a', 'b', 'c']);
      await new Promise((r) => setTimeout(r, 250));
      expect((await store.setMembers('index')).sort()).toEqual(['a', 'b', 'c']);
      await store.removeFromSet('index', ['a', 'c', 'never-there']);
      expect(await store.setMembers('index')).toEqual(['b']);
      await store.removeFromSet('index', ['b']);
      expect(await store.setMembers('index')).toEqual([]);
      await store.addToSet('index', [], 10_000);
      expect(await store.setMembers('index')).toEqual([]);
      await store.addToSet('short', ['x'], 100);
      await new Promise((r) => setTimeout(r, 200));
      expect(await store.setMembers('short')).toEqual([]);
      await store.removeFromSet('absent', ['x']);
    });

    it('keeps prefixes apart', async () => {
      await store.set('shared-name', 'mine', 10_000);
      expect(await other.get('shared-name')).toBeNull();
    });

    it('answers ping and reports ready', async () => {
      expect(await store.ping()).toBeGreaterThanOrEqual(0);
      expect(store.isReady()).toBe(true);
    });
  });
}

storeContract('MemoryStore', async () => {
  const store = new MemoryStore('a:');
  const other = new MemoryStore('b:');
  return { store, other, cleanup: async () => void (await Promise.all([store.close(), other.close()])) };
});

describe.skipIf(!REDIS_URL)(`RedisStore on REDIS_URL${REDIS_URL ? '' : ` [${NO_REDIS_REASON}]`}`, () => {
  storeContract('contract', async () => {
    const client = createRedisClient({ target: serverTarget(REDIS_URL!), role: 'test', commandTimeoutMs: 500, logger });
    expect(await connectRedis(client, 2000)).toBe(true);
    const prefix = `rampart:test:${uniqueSuffix()}:`;
    const store = new RedisStore(client, `${prefix}a:`);
    const other = new RedisStore(client, `${prefix}b:`);
    return {
      store,
      other,
      cleanup: async () => {
        await closeRedis(client);
        await deleteRedisPrefix(REDIS_URL!, prefix);
      },
    };
  });

  it('gives every counter an expiry (nothing lingers forever)', async () => {
    const client = createRedisClient({ target: serverTarget(REDIS_URL!), role: 'test', commandTimeoutMs: 500, logger });
    await connectRedis(client, 2000);
    const prefix = `rampart:test:${uniqueSuffix()}:`;
    const store = new RedisStore(client, prefix);
    await store.hit('ttl', 60_000);
    const raw = new Redis(REDIS_URL!);
    const ttl = await raw.pttl(`${prefix}ttl`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    raw.disconnect();
    await closeRedis(client);
    await deleteRedisPrefix(REDIS_URL!, prefix);
  });

  it('tells whether any key under its prefix matches a pattern, walking the keyspace with SCAN', async () => {
    const client = createRedisClient({ target: serverTarget(REDIS_URL!), role: 'test', commandTimeoutMs: 500, logger });
    await connectRedis(client, 2000);
    const prefix = `rampart:test:${uniqueSuffix()}:`;
    const store = new RedisStore(client, `${prefix}a:`);
    const neighbour = new RedisStore(client, `${prefix}b:`);
    await store.set('sess:{s:1}', 'x', 60_000);
    await neighbour.set('sess:0abc', 'x', 60_000);
    expect(await store.anyKeyMatching('sess:[0-9a-f]*', 5000)).toBe(false);
    await store.set('sess:0abc', 'x', 60_000);
    expect(await store.anyKeyMatching('sess:[0-9a-f]*', 5000)).toBe(true);
    // Out of time after one batch: false only if that batch ended the walk, else it cannot tell.
    expect([false, undefined]).toContain(await store.anyKeyMatching('nothing:*', -1));
    await closeRedis(client);
    await deleteRedisPrefix(REDIS_URL!, prefix);
  });
});

describe('Redis failure behaviour', () => {
  it('fails fast when Redis is down at start-up, and start-up goes on', async () => {
    const port = await freePort(); // nothing listens there
    const client = createRedisClient({ target: serverTarget(`redis://127.0.0.1:${port}`), role: 'test', commandTimeoutMs: 200, logger });
    const started = Date.now();
    expect(await connectRedis(client, 300)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
    const store = new RedisStore(client, 'x:');
    const t0 = Date.now();
    await expect(store.get('k')).rejects.toThrow();
    await expect(store.hit('k', 1000)).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(500); // no offline queue, no retry loop
    expect(store.isReady()).toBe(false);
    await closeRedis(client);
  });

  it('bounds a command sent to a Redis that hangs by commandTimeout', async () => {
    const hole = await blackHole();
    const client = createRedisClient({ target: serverTarget(`redis://127.0.0.1:${hole.port}`), role: 'test', commandTimeoutMs: 150, logger });
    // The TCP connect succeeds but the ready check never answers: the client never becomes ready.
    expect(await connectRedis(client, 300)).toBe(false);
    const store = new RedisStore(client, 'x:');
    const t0 = Date.now();
    await expect(store.ping()).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(1000);
    await closeRedis(client);
    await hole.close();
  });

  describe.skipIf(!HAS_REDIS_SERVER)(`with a Redis that restarts${HAS_REDIS_SERVER ? '' : ` [${NO_REDIS_SERVER_REASON}]`}`, () => {
    let server: TestRedisServer;
    beforeAll(async () => {
      server = await TestRedisServer.create();
    });
    afterAll(async () => server?.stop());

    it('fails fast while down and works again after it returns (scripts reloaded)', async () => {
      const client = createRedisClient({ target: serverTarget(server.url), role: 'test', commandTimeoutMs: 200, logger });
      expect(await connectRedis(client, 2000)).toBe(true);
      const store = new RedisStore(client, 'restart:');
      expect((await store.hit('n', 60_000)).count).toBe(1);

      await server.stop();
      const t0 = Date.now();
      await expect(store.hit('n', 60_000)).rejects.toThrow();
      expect(Date.now() - t0).toBeLessThan(500);

      await server.start(); // a fresh server: data and script cache are empty
      for (let i = 0; i < 100 && !store.isReady(); i++) await sleep(50);
      expect(store.isReady()).toBe(true);
      expect((await store.hit('n', 60_000)).count).toBe(1); // EVALSHA fell back to EVAL
      expect((await store.hit('n', 60_000)).count).toBe(2);
      await closeRedis(client);
    });

    it('recovers when Redis was down at start-up', async () => {
      await server.stop();
      const client = createRedisClient({ target: serverTarget(server.url), role: 'test', commandTimeoutMs: 200, logger });
      expect(await connectRedis(client, 200)).toBe(false);
      const store = new RedisStore(client, 'late:');
      await expect(store.hit('n', 60_000)).rejects.toThrow();
      await server.start();
      for (let i = 0; i < 100 && !store.isReady(); i++) await sleep(50);
      expect((await store.hit('n', 60_000)).count).toBe(1);
      await closeRedis(client);
    });
  });
});
