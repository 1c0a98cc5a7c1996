// In-process stand-in for Redis, used when REDIS_URL is unset outside production.
// Single process only: under PM2 or behind a load balancer each worker would have its own counts
// and its own revocation list, which is why production refuses to start without Redis.
import type { KeyValueStore, WindowCount } from './types';

interface Entry {
  value: string;
  expiresAt: number;
  /** Present on sets (value is then unused), as Redis keeps sets and strings under one key space. */
  members?: Set<string>;
}

const SWEEP_INTERVAL_MS = 60_000;

export class MemoryStore implements KeyValueStore {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(readonly prefix = '') {
    // Expired entries are dropped lazily on read; the sweep bounds memory for keys never read again.
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  private live(key: string, now = Date.now()): Entry | undefined {
    const entry = this.entries.get(this.prefix + key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(this.prefix + key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }

  async get(key: string): Promise<string | null> {
    this.assertOpen();
    return this.live(key)?.value ?? null;
  }

  async mget(keys: readonly string[]): Promise<(string | null)[]> {
    this.assertOpen();
    const now = Date.now();
    return keys.map((key) => this.live(key, now)?.value ?? null);
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.assertOpen();
    this.entries.set(this.prefix + key, { value, expiresAt: Date.now() + ttlMs });
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    if (this.live(key)) return false;
    this.entries.set(this.prefix + key, { value, expiresAt: Date.now() + ttlMs });
    return true;
  }

  async swapIfExists(key: string, value: string, ttlMs: number): Promise<string | null> {
    this.assertOpen();
    const entry = this.live(key);
    if (!entry) return null;
    const old = entry.value;
    this.entries.set(this.prefix + key, { value, expiresAt: Date.now() + ttlMs });
    return old;
  }

  async del(keys: readonly string[]): Promise<number> {
    this.assertOpen();
    let removed = 0;
    for (const key of keys) if (this.live(key) && this.entries.delete(this.prefix + key)) removed++;
    return removed;
  }

  async hit(key: string, windowMs: number): Promise<WindowCount> {
    this.assertOpen();
    const now = Date.now();
    const entry = this.live(key, now);
    if (!entry) {
      this.entries.set(this.prefix + key, { value: '1', expiresAt: now + windowMs });
      return { count: 1, resetInMs: windowMs };
    }
    entry.value = String(Number(entry.value) + 1);
    return { count: Number(entry.value), resetInMs: entry.expiresAt - now };
  }

  async bump(key: string, ttlMs: number): Promise<number> {
    this.assertOpen();
    const next = Number(this.live(key)?.value ?? 0) + 1;
    this.entries.set(this.prefix + key, { value: String(next), expiresAt: Date.now() + ttlMs });
    return next;
  }

  async addToSet(key: string, members: readonly string[], ttlMs: number): Promise<void> {
    this.assertOpen();
    if (members.length === 0) return;
    const set = this.live(key)?.members ?? new Set<string>();
    for (const member of members) set.add(member);
    this.entries.set(this.prefix + key, { value: '', members: set, expiresAt: Date.now() + ttlMs });
  }

  async setMembers(key: string): Promise<string[]> {
    this.assertOpen();
    return [...(this.live(key)?.members ?? [])];
  }

  async removeFromSet(key: string, members: readonly string[]): Promise<void> {
    this.assertOpen();
    const set = this.live(key)?.members;
    if (!set) return;
    for (const member of members) set.delete(member);
    if (set.size === 0) this.entries.delete(this.prefix + key);
  }

  async unhit(key: string): Promise<void> {
    this.assertOpen();
    const entry = this.live(key);
    if (entry) entry.value = String(Math.max(0, Number(entry.value) - 1));
  }

  /** One process, no replicas: nothing to wait for. */
  async durably(write: (store: KeyValueStore) => Promise<unknown>): Promise<boolean> {
    await write(this);
    return true;
  }

  async ping(): Promise<number> {
    this.assertOpen();
    return 0;
  }

  isReady(): boolean {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.entries.clear();
  }
}
