// KeyValueStore over a shared ioredis client. Scripts go through ioredis' defineCommand, which
// sends EVALSHA and falls back to EVAL on NOSCRIPT: after a Redis restart (scripts flushed) or when
// Redis was down at start-up, the next call works again without any reload step.
import type { Cluster } from 'ioredis';
import keySlot from 'cluster-key-slot';
import type { RedisClient } from '../redis';
import type { KeyValueStore, WindowCount } from './types';
import { measureMs } from '../timeout';

// INCR, and start the window's expiry on the first hit. Returns {count, ms until reset}.
const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}`;

// DECR only a live counter: never create a key without expiry, never go below zero.
const UNHIT_SCRIPT = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return 0`;

// SADD the members and set the expiry in one atomic step: the set never exists without its expiry.
// A script rather than MULTI, which ioredis sends as a pipeline (see createRedisClient's Cluster
// options for why the request path sends none).
const ADD_TO_SET_SCRIPT = `
for i = 2, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0`;

// INCR and always reset the expiry (a generation counter must outlive what it revokes).
const BUMP_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n`;

interface Scripts {
  rampartAddToSet(key: string, ttlMs: number, ...members: string[]): Promise<number>;
  rampartBump(key: string, ttlMs: number): Promise<number>;
  rampartHit(key: string, windowMs: number): Promise<[number, number]>;
  rampartUnhit(key: string): Promise<number>;
}
type ScriptedRedis = RedisClient & Scripts;

/**
 * Where revocations wait for a replica: WAIT blocks the connection it is sent on and counts only
 * that connection's writes, so durable writes and their WAIT go over a connection of their own,
 * never holding up the request path's shared one.
 */
export interface Replication {
  /**
   * A Sentinel group's master, or a Cluster: there the writes go to the masters of their keys'
   * slots, and WAIT goes to each of those masters on the connection that wrote to it.
   */
  client: RedisClient;
  /** WAIT 1 <waitMs>: how long a revocation waits for one replica's acknowledgement. */
  waitMs: number;
}

export class RedisStore implements KeyValueStore {
  readonly kind = 'redis' as const;
  private readonly redis: ScriptedRedis;
  /** On a Cluster a multi-key command must stay within one hash slot (else CROSSSLOT). */
  private readonly cluster: boolean;
  private readonly durable: { store: RedisStore; replication: Replication } | undefined;

  constructor(
    client: RedisClient,
    readonly prefix = '',
    replication?: Replication,
  ) {
    // defineCommand is idempotent per name on a client, so several stores can share one client.
    if (!('rampartHit' in client)) {
      client.defineCommand('rampartHit', { numberOfKeys: 1, lua: HIT_SCRIPT });
      client.defineCommand('rampartUnhit', { numberOfKeys: 1, lua: UNHIT_SCRIPT });
      client.defineCommand('rampartBump', { numberOfKeys: 1, lua: BUMP_SCRIPT });
      client.defineCommand('rampartAddToSet', { numberOfKeys: 1, lua: ADD_TO_SET_SCRIPT });
    }
    this.redis = client as ScriptedRedis;
    this.cluster = client.isCluster;
    this.durable = replication && { store: new RedisStore(replication.client, prefix), replication };
  }

  get client(): RedisClient {
    return this.redis;
  }

  // The methods on the request path hand back ioredis' own promise (or one .then of it) instead
  // of wrapping it in an async function: every promise costs an allocation and, while the request
  // context (AsyncLocalStorage) is active, an async hook call.

  get(key: string): Promise<string | null> {
    return this.redis.get(this.prefix + key);
  }

  mget(keys: readonly string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return Promise.resolve([]);
    const full = keys.map((k) => this.prefix + k);
    return this.cluster ? this.mgetBySlot(full) : this.redis.mget(full);
  }

  /** One MGET per hash slot, sent together; the values come back in the order of `keys`. */
  private async mgetBySlot(keys: string[]): Promise<(string | null)[]> {
    const groups = groupBySlot(keys);
    if (groups.length === 1) return this.redis.mget(keys);
    const values: (string | null)[] = new Array<string | null>(keys.length).fill(null);
    await Promise.all(
      groups.map(async (indexes) => {
        const got = await this.redis.mget(indexes.map((i) => keys[i]!));
        indexes.forEach((at, j) => (values[at] = got[j] ?? null));
      }),
    );
    return values;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.prefix + key, value, 'PX', Math.max(1, Math.ceil(ttlMs)));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const result = await this.redis.set(this.prefix + key, value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
    return result === 'OK';
  }

  async swapIfExists(key: string, value: string, ttlMs: number): Promise<string | null> {
    // SET ... XX GET (Redis 6.2+): one atomic command, so concurrent callers serialise on it.
    const result = await this.redis.set(this.prefix + key, value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'XX', 'GET');
    return result;
  }

  async del(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const full = keys.map((k) => this.prefix + k);
    if (!this.cluster) return this.redis.del(...full);
    const counts = await Promise.all(groupBySlot(full).map((indexes) => this.redis.del(...indexes.map((i) => full[i]!))));
    return counts.reduce((sum, n) => sum + n, 0);
  }

  hit(key: string, windowMs: number): Promise<WindowCount> {
    return this.redis.rampartHit(this.prefix + key, Math.ceil(windowMs)).then(([count, ttl]) => ({ count: Number(count), resetInMs: Number(ttl) }));
  }

  async bump(key: string, ttlMs: number): Promise<number> {
    return Number(await this.redis.rampartBump(this.prefix + key, Math.ceil(ttlMs)));
  }

  async addToSet(key: string, members: readonly string[], ttlMs: number): Promise<void> {
    if (members.length === 0) return;
    await this.redis.rampartAddToSet(this.prefix + key, Math.max(1, Math.ceil(ttlMs)), ...members);
  }

  setMembers(key: string): Promise<string[]> {
    return this.redis.smembers(this.prefix + key);
  }

  async removeFromSet(key: string, members: readonly string[]): Promise<void> {
    if (members.length === 0) return;
    await this.redis.srem(this.prefix + key, ...members);
  }

  async unhit(key: string): Promise<void> {
    await this.redis.rampartUnhit(this.prefix + key);
  }

  async durably(write: (store: KeyValueStore) => Promise<unknown>): Promise<boolean> {
    if (!this.durable) {
      await write(this);
      return true;
    }
    const { store, replication } = this.durable;
    if (replication.client.isCluster) {
      const slots = new Set<number>();
      await write(recordingSlots(store, slots));
      return mastersReplicated(replication.client as Cluster, slots, replication.waitMs);
    }
    await write(store);
    // The writes are done on the primary: a WAIT that fails or times out leaves them standing there.
    const acknowledged = await replication.client.wait(1, replication.waitMs).catch(() => 0);
    return acknowledged >= 1;
  }

  /**
   * Whether any key matches the glob (after the prefix): SCAN, so Redis never blocks on it. Undefined
   * when the keyspace could not be walked within budgetMs. One server or a Sentinel master only: on
   * a Cluster SCAN walks one node (and a Cluster never holds the keys this looks for).
   */
  async anyKeyMatching(pattern: string, budgetMs: number): Promise<boolean | undefined> {
    const deadline = Date.now() + budgetMs;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', this.prefix + pattern, 'COUNT', 1000);
      if (keys.length > 0) return true;
      cursor = next;
    } while (cursor !== '0' && Date.now() < deadline);
    return cursor === '0' ? false : undefined;
  }

  ping(): Promise<number> {
    return measureMs(() => this.redis.ping());
  }

  isReady(): boolean {
    return this.redis.status === 'ready';
  }

  /** The client is shared and owned by whoever created it; closing a store does not close it. */
  async close(): Promise<void> {}
}

/** Indexes of `keys` grouped by hash slot, in order of first appearance. */
function groupBySlot(keys: readonly string[]): number[][] {
  const groups = new Map<number, number[]>();
  keys.forEach((key, i) => {
    const slot = keySlot(key);
    const group = groups.get(slot);
    if (group) group.push(i);
    else groups.set(slot, [i]);
  });
  return [...groups.values()];
}

/**
 * The store, noting the hash slot of every key its methods are called with (a key or a list of
 * keys comes first in each of them): where a durable write went.
 */
function recordingSlots(store: RedisStore, slots: Set<number>): KeyValueStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const first = args[0];
        for (const key of typeof first === 'string' ? [first] : Array.isArray(first) ? first : []) {
          if (typeof key === 'string') slots.add(keySlot(target.prefix + key));
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/**
 * WAIT 1 on each master that took one of the writes, in parallel, on the connection the writes
 * went over (WAIT counts only that connection's writes). True when every one of them has a
 * replica's acknowledgement in time; a master the slot map no longer knows counts as not.
 */
async function mastersReplicated(cluster: Cluster, slots: ReadonlySet<number>, waitMs: number): Promise<boolean> {
  const masters = new Set<string>();
  for (const slot of slots) masters.add(cluster.slots[slot]?.[0] ?? '');
  const byKey = new Map(cluster.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
  const acknowledged = await Promise.all(
    [...masters].map((key) => {
      const node = byKey.get(key);
      return node
        ? node.wait(1, waitMs).then(
            (n) => n >= 1,
            () => false,
          )
        : Promise.resolve(false);
    }),
  );
  return acknowledged.every(Boolean);
}
