// Application metrics (prom-client). One registry per app instance, so several apps in one test
// process never collide; the server entry also collects the default process and Node metrics.
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  cacheEvents: Counter<'route' | 'result'>;
  rateLimited: Counter<'limiter'>;
  rateLimitStoreErrors: Counter<'limiter'>;
  authFailures: Counter<'reason'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  return {
    registry,
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
  };
}
