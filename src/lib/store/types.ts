// The shared key-value store behind rate limits, token revocation and the response cache.
// Two implementations: Redis (shared by every process and host) and an in-process Map
// (development only: each process has its own, so nothing is shared across workers).

export interface WindowCount {
  /** Hits in the current window, including this one. */
  count: number;
  /** Milliseconds until the window resets. */
  resetInMs: number;
}

export interface KeyValueStore {
  readonly kind: 'redis' | 'memory';
  /** Prefix applied to every key this store touches (isolates apps, roles and tests). */
  readonly prefix: string;
  get(key: string): Promise<string | null>;
  /** Several keys in one round trip. */
  mget(keys: readonly string[]): Promise<(string | null)[]>;
  /** Sets a value that expires after ttlMs. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Sets only when absent; true when this call created the key. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /**
   * Replaces the value of an existing key and returns the old one, atomically; does nothing and
   * returns null when the key does not exist. Of concurrent callers, exactly one sees the original.
   */
  swapIfExists(key: string, value: string, ttlMs: number): Promise<string | null>;
  del(keys: readonly string[]): Promise<number>;
  /** Atomically counts a hit in a fixed window that starts with the first hit. */
  hit(key: string, windowMs: number): Promise<WindowCount>;
  /** Atomically increments a counter and (re)sets its expiry; returns the new value. */
  bump(key: string, ttlMs: number): Promise<number>;
  /** Adds members to a set and (re)sets the set's expiry, atomically. */
  addToSet(key: string, members: readonly string[], ttlMs: number): Promise<void>;
  /** The members of a set, in no particular order; none when it does not exist. */
  setMembers(key: string): Promise<string[]>;
  /** Removes members from a set (the set goes when its last member does). */
  removeFromSet(key: string, members: readonly string[]): Promise<void>;
  /** Undoes one hit (express-rate-limit's skipSuccessfulRequests and friends). */
  unhit(key: string): Promise<void>;
  /**
   * Runs writes that must survive a failover (revocations), then waits a bounded time for a
   * replica to acknowledge them. Resolves false when a replica should have and none did in time
   * (the writes stand on the primary all the same); true otherwise, at once where there are no
   * replicas to wait for. Rejects when a write fails.
   */
  durably(write: (store: KeyValueStore) => Promise<unknown>): Promise<boolean>;
  /** Round-trip time in ms; throws when the store cannot answer within its timeout. */
  ping(): Promise<number>;
  /** True when commands can be sent now (connected); false while down or reconnecting. */
  isReady(): boolean;
  close(): Promise<void>;
}
