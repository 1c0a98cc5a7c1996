// Application metrics (prom-client). One registry per app instance, so several apps in one test
// process never collide; the server entry also collects the default process and Node metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Probes } from './probes';

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  inFlight: Gauge;
  /** Where http_requests_in_flight is read at each scrape: admission control's own count. */
  countInFlight(source: () => number): void;
  dependencyErrors: Counter<'dependency'>;
  cacheEvents: Counter<'route' | 'result'>;
  rateLimited: Counter<'limiter'>;
  rateLimitStoreErrors: Counter<'limiter'>;
  authFailures: Counter<'reason'>;
  shed: Counter<'reason'>;
  securityEvents: Counter<'event'>;
  revocationCheckFailures: Counter;
  /** Reports Redis and the database as reachable or not, and their round-trip time, at each scrape. */
  watchDependencies(probes: Probes): void;
  revocationUnreplicated: Counter<'revocation'>;
}

const DEPENDENCIES = ['redis', 'database'] as const;
/** The security events monitoring/ alerts on (the error handler names them). */
const ALERTED_SECURITY_EVENTS = ['login_failed', 'refresh_reuse', 'auth_rejected', 'rate_limited', 'access_denied'];

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics) {
    collectDefaultMetrics({ register: registry });
    // Gauges named *_total break Prometheus naming rules (promtool check metrics rejects them);
    // each is the sum of its per-type twin (nodejs_active_handles{type=...}), which stays.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      registry.removeSingleMetric(name);
    }
    // process_start_time_seconds is dropped when PM2 workers' metrics are merged; this one is kept
    // as the newest start, so each restart of any worker changes it (the restart alerts).
    new Gauge({
      name: 'rampart_instance_start_time_seconds',
      help: 'Start time of the process in seconds since the epoch; under PM2, of the most recently started worker',
      registers: [registry],
      aggregator: 'max',
    }).set(Date.now() / 1000 - process.uptime());
  }
  // Read at scrape time, not on the request path: the probes' results are reused for a second, so a
  // scrape costs at most one PING and one SELECT 1 whatever the traffic.
  let probes: Probes | undefined;
  const probeAll = () => (probes ? Promise.all(DEPENDENCIES.map(async (name) => ({ name, result: await probes![name]() }))) : Promise.resolve([]));
  new Gauge({
    name: 'rampart_dependency_up',
    help: 'Whether Redis (security state) and the database answered their probe at this scrape (1) or not (0)',
    labelNames: ['dependency'],
    registers: [registry],
    aggregator: 'min', // under PM2: down when any instance cannot reach it
    async collect() {
      for (const { name, result } of await probeAll()) this.set({ dependency: name }, result.ok ? 1 : 0);
    },
  });
  new Gauge({
    name: 'rampart_dependency_ping_seconds',
    help: "Round-trip time of this scrape's probe of Redis and the database (absent while unreachable)",
    labelNames: ['dependency'],
    registers: [registry],
    aggregator: 'max', // under PM2: the slowest instance's view
    async collect() {
      this.reset();
      for (const { name, result } of await probeAll()) if (result.latencyMs !== undefined) this.set({ dependency: name }, result.latencyMs / 1000);
    },
  });
  let inFlightNow = () => 0;
  const metrics: Metrics = {
    registry,
    watchDependencies: (source) => {
      probes = source;
    },
    countInFlight: (source) => {
      inFlightNow = source;
    },
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Duration of HTTP requests, by method, route template and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    // Read when scraped instead of counted per request: admission control already counts them.
    inFlight: new Gauge({
      name: 'http_requests_in_flight',
      help: 'HTTP requests being served now',
      registers: [registry],
      collect() {
        this.set(inFlightNow());
      },
    }),
    dependencyErrors: new Counter({
      name: 'rampart_dependency_errors_total',
      help: 'Failed calls to Redis or the database seen by request handling',
      labelNames: ['dependency'],
      registers: [registry],
    }),
    cacheEvents: new Counter({
      name: 'rampart_cache_events_total',
      help: 'Response cache lookups by result (hit, miss, bypass) and store errors (error)',
      labelNames: ['route', 'result'],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'rampart_rate_limited_total',
      help: 'Requests refused with 429, by limiter',
      labelNames: ['limiter'],
      registers: [registry],
    }),
    rateLimitStoreErrors: new Counter({
      name: 'rampart_rate_limit_store_errors_total',
      help: 'Rate-limit store failures, by limiter (the request was refused or let through per policy)',
      labelNames: ['limiter'],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'rampart_auth_failures_total',
      help: 'Rejected authentications, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    shed: new Counter({
      name: 'rampart_shed_total',
      help: 'Work refused to keep the process serving, by reason (max_connections: connections closed at MAX_CONNECTIONS; event_loop_delay, in_flight, heap: requests refused with 503 by admission control; cache_fallback: cached reads refused with 503 while the cache is unavailable and too many are served from the source)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    securityEvents: new Counter({
      name: 'rampart_security_events_total',
      help: 'Refused requests by security event (login_failed, refresh_reuse, auth_rejected, rate_limited, access_denied, ...), counted before the log budget',
      labelNames: ['event'],
      registers: [registry],
    }),
    revocationCheckFailures: new Counter({
      name: 'rampart_revocation_check_failures_total',
      help: 'Authenticated requests refused with 503 because the revocation store (Redis) could not answer',
      registers: [registry],
    }),
    revocationUnreplicated: new Counter({
      name: 'rampart_revocation_unreplicated_total',
      help: 'Revocations answered as done that no replica acknowledged within REDIS_REPLICA_WAIT_MS (they stand on the primary; a failover now could lose them), by revocation',
      labelNames: ['revocation'],
      registers: [registry],
    }),
  };
  // Present from the start: the alerts take increase() and rate(), which miss the first event of a
  // series that appears with it.
  for (const dependency of ['redis', 'redis_cache', 'database']) metrics.dependencyErrors.inc({ dependency }, 0);
  for (const event of ALERTED_SECURITY_EVENTS) metrics.securityEvents.inc({ event }, 0);
  return metrics;
}

/**
 * Wraps an object so that every rejected promise one of its methods returns is counted (the
 * caller still sees the rejection). Used on the stores and the database to count dependency errors.
 */
export function countFailures<T extends object>(target: T, onFailure: () => void): T {
  // Wrappers are made once per method (this sits on the request path), not on every call.
  const wrapped = new Map<PropertyKey, (...args: unknown[]) => unknown>();
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value: unknown = Reflect.get(obj, prop, receiver);
      if (typeof value !== 'function') return value;
      let wrapper = wrapped.get(prop);
      if (!wrapper) {
        const method = value as (...a: unknown[]) => unknown;
        wrapper = (...args: unknown[]) => {
          const result: unknown = method.apply(obj, args);
          if (result instanceof Promise) result.catch(onFailure);
          return result;
        };
        wrapped.set(prop, wrapper);
      }
      return wrapper;
    },
  });
}
