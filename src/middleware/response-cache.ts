// Response cache for public GET routes, in the cache store (a Redis that may evict).
//
// Invalidation by versioned namespaces instead of key scans: each cached entry records the
// version of the namespace it was computed from (e.g. "item:42"); a write replaces the version of
// every namespace it touches ("items" and "item:42") with a fresh random value. A read fetches the
// current version and the entry in one MGET and serves the entry only when they match, so a write is
// seen by the next read on every worker. Versions are random, not counters, so an evicted version
// can never match an old entry. One namespace per read: its version and its entries share a hash
// tag (see key-layout.ts), so the MGET stays on one slot of a Redis Cluster.
//
// Stampede protection: concurrent misses for one key in this process compute once. Fail open: when
// the cache store is down or slow the request is served from the source with X-Cache: BYPASS;
// identical bypassed reads share one computation too, and at most `maxFallbacks` different ones run
// at once: past that, 503 with Retry-After. A cache that times out because the event loop is late
// must not turn every cached read into a database query (a stampede on a pool of ten connections).
//
// Audience: a public entry is shared by every client and is never stored from a request that
// carries credentials. A user entry (GET /users/me) belongs to the authenticated user: the verified
// user id is part of its key, it is looked up only after authentication (revocation included), and
// it always goes out as private, no-store.
import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { serviceUnavailable } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import { CACHE_KEYS, LEGACY_CACHE_KEYS, type LayoutTransition } from '../lib/key-layout';
import type { KeyValueStore } from '../lib/store/types';
import { sendJsonText } from './json-response';

const VERSION_TTL_MS = 7 * 86_400_000;
const SEPARATOR = '\n';

export interface CacheRouteOptions {
  /** Label for metrics and key space, e.g. "items:list". */
  name: string;
  ttlMs: number;
  /** The namespace this response depends on; a write to it makes the response stale. */
  namespace: (req: Request) => string;
  /** The request's identity within the route: normalised, validated parameters only. */
  key: (req: Request) => string;
  /** 'public' by default; 'user' for one entry per authenticated user (see above). */
  audience?: 'public' | 'user';
}

const PRIVATE = 'private, no-store';

export interface ResponseCacheOptions {
  /** Different reads served from the source at once while the cache is unavailable (default: no bound). */
  maxFallbacks?: number;
  /**
   * While active, versions are also read and written under the names of earlier releases, so that
   * a write handled by either release during a rolling upgrade makes the other's entries stale.
   */
  transition?: LayoutTransition;
}

export class ResponseCache {
  private readonly inflight = new Map<string, Promise<string | undefined>>();
  private fallbacks = 0;
  private readonly maxFallbacks: number;
  private readonly transition: LayoutTransition | undefined;

  constructor(
    private readonly store: KeyValueStore,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    options: ResponseCacheOptions = {},
  ) {
    this.maxFallbacks = options.maxFallbacks ?? Infinity;
    this.transition = options.transition;
    metrics.shed.inc({ reason: 'cache_fallback' }, 0); // present from the start, so a rate can be taken at once
  }

  /** Makes every entry depending on these namespaces stale, on every worker. */
  async invalidate(namespaces: readonly string[]): Promise<void> {
    try {
      const legacy = this.transition?.active === true;
      await Promise.all(
        namespaces.flatMap((ns) => {
          const version = randomUUID();
          const writes = [this.store.set(CACHE_KEYS.version(ns), version, VERSION_TTL_MS)];
          if (legacy) writes.push(this.store.set(LEGACY_CACHE_KEYS.version(ns), version, VERSION_TTL_MS));
          return writes;
        }),
      );
    } catch (err) {
      // The write itself succeeded; stale entries expire with their TTL. Loud, because reads may
      // be stale for up to that TTL.
      this.metrics.cacheEvents.inc({ route: 'invalidate', result: 'error' });
      this.logger.error('cache invalidation failed; cached reads may be stale until their TTL', { namespaces, error: (err as Error).message });
    }
  }

  middleware(options: CacheRouteOptions): RequestHandler {
    const count = (result: string) => this.metrics.cacheEvents.inc({ route: options.name, result });
    const perUser = options.audience === 'user';
    return async (req, res, next) => {
      let owner = '';
      if (perUser) {
        // A programming error (the route lacks authenticate), not a client's: fail, never share.
        if (!req.auth) throw new Error(`cache ${options.name}: user audience without an authenticated request`);
        owner = `${req.auth.sub}:`;
        res.setHeader('Cache-Control', PRIVATE);
      }
      const namespace = options.namespace(req);
      const entryKey = CACHE_KEYS.entry(namespace, `${options.name}:${owner}${options.key(req)}`);
      if (!this.store.isReady()) {
        count('bypass');
        return this.fromSource(entryKey, perUser, req, res, next);
      }
      const keys = this.transition?.active
        ? [CACHE_KEYS.version(namespace), LEGACY_CACHE_KEYS.version(namespace), entryKey]
        : [CACHE_KEYS.version(namespace), entryKey];
      let values: (string | null)[];
      try {
        values = await this.store.mget(keys);
      } catch (err) {
        count('bypass');
        this.logger.warn('cache unavailable; serving from the source', { route: options.name, error: (err as Error).message });
        return this.fromSource(entryKey, perUser, req, res, next);
      }
      const versions = values
        .slice(0, -1)
        .map((v) => v ?? '-')
        .join(',');
      const entry = values[values.length - 1];
      if (entry) {
        const cut = entry.indexOf(SEPARATOR);
        if (entry.slice(0, cut) === versions) {
          count('hit');
          return sendCached(res, 'HIT', entry.slice(cut + 1));
        }
      }
      count('miss');
      // Stampede protection: followers wait for the leader's body instead of computing again.
      const computeKey = `${entryKey}#${versions}`;
      const running = this.inflight.get(computeKey);
      if (running) {
        const body = await running;
        if (body !== undefined) return sendCached(res, 'MISS', body);
        res.setHeader('X-Cache', 'MISS');
        return next();
      }
      const done = this.lead(computeKey, res);
      captureJson(req, res, perUser, (body) => {
        done(body);
        this.store.set(entryKey, `${versions}${SEPARATOR}${body}`, options.ttlMs).catch((err: Error) => {
          count('error');
          this.logger.warn('cache store failed', { route: options.name, error: err.message });
        });
      });
      res.setHeader('X-Cache', 'MISS');
      next();
    };
  }

  /** Registers this response as the one computing `key`; returns what settles its followers. */
  private lead(key: string, res: Response): (body: string | undefined) => void {
    let settle!: (body: string | undefined) => void;
    const leader = new Promise<string | undefined>((resolve) => (settle = resolve));
    this.inflight.set(key, leader);
    const done = (body: string | undefined) => {
      if (this.inflight.get(key) === leader) this.inflight.delete(key);
      settle(body);
    };
    res.on('close', () => done(undefined)); // the leader failed or its client went away
    return done;
  }

  /** The cache is unavailable: serve from the source, sharing identical reads, bounded. */
  private async fromSource(entryKey: string, perUser: boolean, req: Request, res: Response, next: () => void): Promise<void> {
    res.setHeader('X-Cache', 'BYPASS');
    const shareKey = `${entryKey}#bypass`;
    const running = this.inflight.get(shareKey);
    if (running) {
      const body = await running;
      if (body !== undefined) return void sendJsonText(res, body);
    }
    if (this.fallbacks >= this.maxFallbacks) {
      this.metrics.shed.inc({ reason: 'cache_fallback' });
      throw serviceUnavailable(undefined, 1);
    }
    this.fallbacks += 1;
    res.once('close', () => (this.fallbacks -= 1));
    const done = this.lead(shareKey, res);
    // Shared with identical requests only, never stored; as with the cache, a public read is never
    // shared from a request with credentials, a user's only with the same user's.
    captureJson(req, res, perUser, done);
    next();
  }
}

function sendCached(res: Response, state: 'HIT' | 'MISS', body: string): void {
  res.setHeader('X-Cache', state);
  sendJsonText(res, body);
}

/**
 * Intercepts res.json for this response: a 200 answer is handed to `store` as the exact text sent.
 * Error answers are never stored, nor, for a public entry, anything sent to a request with
 * credentials or marked private.
 */
function captureJson(req: Request, res: Response, perUser: boolean, store: (body: string) => void): void {
  const original = res.json.bind(res);
  res.json = (value: unknown) => {
    const personal =
      !perUser &&
      (req.headers.authorization !== undefined || req.headers.cookie !== undefined || res.getHeader('Cache-Control')?.toString().includes('private'));
    if (res.statusCode !== 200 || personal) {
      return original(value);
    }
    const body = JSON.stringify(value);
    store(body);
    return sendJsonText(res, body);
  };
}
