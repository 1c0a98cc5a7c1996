// Per-route rate limits on express-rate-limit, counting in the shared KeyValueStore so that limits
// hold across workers and hosts. Each limiter has its own store object and key prefix.
// On a store failure a limiter either fails closed (503, auth routes: brute force must not get
// through an outage) or open (the general limit: reads stay available), as the failure policy in docs/design.md says.
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit, type IncrementResponse, type Options, type Store } from 'express-rate-limit';
import type { RateLimitRule } from '../config';
import { AppError, serviceUnavailable } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { KeyValueStore } from '../lib/store/types';

/** express-rate-limit Store over KeyValueStore.hit: one atomic round trip per request. */
class SharedRateLimitStore implements Store {
  // Stryker disable next-line BooleanLiteral: read only by express-rate-limit's start-up validations, for their wording
  readonly localKeys = false;
  private windowMs = 60_000;

  constructor(
    private readonly kv: KeyValueStore,
    readonly prefix: string,
    private readonly onDecrementError: (err: Error) => void,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  increment(key: string): Promise<IncrementResponse> {
    // .then rather than async/await: one promise fewer on every API request.
    return this.kv.hit(this.prefix + key, this.windowMs).then(({ count, resetInMs }) => ({ totalHits: count, resetTime: new Date(Date.now() + resetInMs) }));
  }

  // A success that cannot take its hit back (the store went down meanwhile) still counts against
  // the limit: the cautious direction. Handled here, so it reaches the app's log and not
  // express-rate-limit's console.error with a stack.
  async decrement(key: string): Promise<void> {
    await this.kv.unhit(this.prefix + key).catch(this.onDecrementError);
  }

  // Required of a store; express-rate-limit calls it only from limiter.resetKey(), which the app never calls.
  // Stryker disable all: unreachable from the app
  async resetKey(key: string): Promise<void> {
    await this.kv.del([this.prefix + key]);
  }
}
// Stryker restore all

/** Client IP as resolved through `trust proxy`, IPv6 grouped by /56 (one subscriber's block). */
export function clientKey(req: Request): string {
  const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
  // IPv4 (also IPv4-mapped IPv6) is its own key; only real IPv6 needs the subnet grouping, whose
  // address parsing is comparatively expensive.
  if (isIPv4(address)) return address;
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return address.slice(7);
  return ipKeyGenerator(address, 56);
}

/**
 * The user when the request carries a valid access token (verified before the limiter runs, see
 * startRevocationCheck), else the client IP: a user's limit follows them across addresses.
 */
export function userOrClientKey(req: Request): string {
  const sub = req.earlyRevocationCheck?.claims.sub;
  return sub !== undefined ? `user:${sub}` : clientKey(req);
}

/**
 * Client IP plus the submitted email (hashed: no addresses in Redis), so that one attacker cannot
 * lock a victim out from everywhere and one address cannot try many passwords on one account.
 */
export function clientAndEmailKey(req: Request): string {
  return `${clientKey(req)}|${emailKey(submittedEmail(req) ?? '')}`;
}

/** The email of a request body as the login compares it (trimmed, lower-cased), if one was sent. */
export function submittedEmail(req: Request): string | undefined {
  const email = (req.body as { email?: unknown } | undefined)?.email;
  return typeof email === 'string' ? email.trim().toLowerCase() : undefined;
}

/** An email as a limiter key: hashed, so that no address is stored in Redis. */
export function emailKey(normalisedEmail: string): string {
  return createHash('sha256').update(normalisedEmail).digest('base64url').slice(0, 22);
}

export interface LimiterOptions {
  /** Names the limiter in keys, headers, logs and metrics: "login", "api". */
  name: string;
  rule: RateLimitRule;
  store: KeyValueStore;
  logger: Logger;
  /** true: let requests through when the store is down (logged); false: 503. */
  failOpen: boolean;
  /** Key for this request; the client IP by default. */
  key?: (req: Request) => string | Promise<string>;
  /** Count only failed requests (status >= 400): e.g. login, where successes must not lock anyone out. */
  countFailuresOnly?: boolean;
  /**
   * With countFailuresOnly: the one status that is a failure (401 for a wrong password), so that
   * other refusals (a 422 for a weak new password) count for nothing.
   */
  failureStatus?: number;
  /** Called for every request refused with 429 (metrics). */
  onLimited?: (name: string) => void;
  /** Called when the store failed (metrics). */
  onStoreError?: (name: string) => void;
}

export function rateLimiter(options: LimiterOptions): RequestHandler {
  const { name, rule, logger, failOpen } = options;
  const store = new SharedRateLimitStore(options.store, `rl:${name}:`, (err) =>
    logger.warn('rate limit store unavailable; a success still counts against the limit', { limiter: name, error: err.message }),
  );
  const limiter = rateLimit({
    windowMs: rule.windowMs,
    limit: rule.max,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    identifier: name,
    store,
    keyGenerator: options.key ?? clientKey,
    skipSuccessfulRequests: options.countFailuresOnly ?? false,
    ...(options.failureStatus !== undefined && { requestWasSuccessful: (_req, res) => res.statusCode !== options.failureStatus }),
    // Errors are handled below, so that the failure policy is ours and every error is an envelope.
    passOnStoreError: false,
    handler: (_req, res, next) => {
      options.onLimited?.(name);
      res.setHeader('Cache-Control', 'no-store');
      next(new AppError('rate_limited', { security: { reason: `limiter ${name}` } }));
    },
  });
  return (req, res, next) => {
    limiter(req, res, (err?: unknown) => {
      if (err === undefined || err instanceof AppError) {
        next(err);
        return;
      }
      options.onStoreError?.(name);
      if (failOpen) {
        logger.warn('rate limit store unavailable; allowing request', { limiter: name, error: (err as Error).message });
        next();
        return;
      }
      logger.error('rate limit store unavailable; refusing request', { limiter: name, error: (err as Error).message });
      next(serviceUnavailable(err));
    });
  };
}
