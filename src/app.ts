// createApp: the middleware order and the routers; nothing here listens or connects.
// Order follows the request path in DESIGN.md: cheapest rejection first, health before the heavy
// middleware, the error handler last.
import express, { type Express } from 'express';
import type { RateLimitScope } from './config';
import type { Dependencies } from './deps';
import { AccessTokens } from './lib/access-tokens';
import { Lifecycle } from './lib/lifecycle';
import { countFailures, createMetrics, type Metrics } from './lib/metrics';
import { accessLog } from './middleware/access-log';
import { jsonBody } from './middleware/body';
import { responseCompression } from './middleware/compression';
import { memoizeClientAddress } from './middleware/client-address';
import { corsPolicy } from './middleware/cors';
import { errorHandler } from './middleware/error-handler';
import { httpMetrics } from './middleware/http-metrics';
import { leanJsonResponses } from './middleware/json-response';
import { authenticate, startRevocationCheck } from './middleware/authenticate';
import { queryHardening } from './middleware/query';
import { clientAndEmailKey, rateLimiter, userOrClientKey, type LimiterOptions } from './middleware/rate-limit';
import { closeConnectionsWhileDraining, requestStart } from './middleware/request-start';
import { ResponseCache } from './middleware/response-cache';
import { mountAt, notFound } from './middleware/routing';
import { series } from './middleware/series';
import { authRouter } from './modules/auth/routes';
import { Sessions } from './modules/auth/sessions';
import { diagRouter } from './modules/diag/routes';
import { createProbes, type Probes } from './modules/health/probes';
import { healthRoutes } from './modules/health/routes';
import { itemsRouter } from './modules/items/routes';
import type { ClusterMetrics } from './modules/metrics/cluster';
import { metricsRoutes } from './modules/metrics/routes';
import { usersRouter } from './modules/users/routes';
import { VERSION } from './version';

export interface AppOptions {
  lifecycle?: Lifecycle;
  probes?: Probes;
  /** The process's metrics; a fresh registry per app by default (tests build several apps). */
  metrics?: Metrics;
  /** Host-wide metrics under PM2 cluster mode. */
  clusterMetrics?: ClusterMetrics;
}

export function createApp(rawDeps: Dependencies, options: AppOptions = {}): Express {
  const { config, logger } = rawDeps;
  const lifecycle = options.lifecycle ?? new Lifecycle();
  const metrics = options.metrics ?? createMetrics();
  const failed = (dependency: string) => () => metrics.dependencyErrors.inc({ dependency });
  const deps: Dependencies = {
    ...rawDeps,
    store: countFailures(rawDeps.store, failed('redis')),
    cache: countFailures(rawDeps.cache, failed('redis_cache')),
    db: countFailures(rawDeps.db, failed('database')),
  };
  const app = express();

  app.disable('x-powered-by');
  app.disable('etag'); // API responses are not conditional; avoids hashing every body
  // A hop count or address list, never `true` (config refuses it): X-Forwarded-For is believed
  // only as far as trusted proxies wrote it, so a client cannot pick its own rate-limit key.
  app.set('trust proxy', config.trustProxy);
  app.set('query parser', 'simple');

  closeConnectionsWhileDraining(app, lifecycle);
  memoizeClientAddress(app);
  leanJsonResponses(app);

  // Module routers only see requests under their own path (mountAt), so a request visits only its
  // own module's routes; the operations endpoints are routes on the app itself (see healthRoutes).
  app.use(requestStart());
  // Operations endpoints: answered before logging, metrics and the API middleware (load balancers
  // poll them constantly; they are never rate limited).
  healthRoutes(app, { config, lifecycle, probes: options.probes ?? createProbes(rawDeps), version: VERSION });
  metricsRoutes(app, { config, metrics, logger, cluster: options.clusterMetrics });
  app.use(series(accessLog(logger), httpMetrics(metrics)));

  const tokens = new AccessTokens(config.jwt);
  const sessions = new Sessions(deps.store, config.jwt);
  const auth = authenticate({ tokens, sessions, logger, onFailure: (reason) => metrics.authFailures.inc({ reason }) });
  const limiter = (name: string, scope: RateLimitScope, extra: Partial<LimiterOptions> = {}) =>
    rateLimiter({
      name,
      rule: config.rateLimits[scope],
      store: deps.store,
      logger,
      failOpen: false,
      onLimited: (limiterName) => metrics.rateLimited.inc({ limiter: limiterName }),
      onStoreError: (limiterName) => metrics.rateLimitStoreErrors.inc({ limiter: limiterName }),
      ...extra,
    });

  // Everything under /api/v1 goes through the API middleware, run as one layer.
  const API = '/api/v1';
  app.use(
    mountAt(
      API,
      series(
        corsPolicy(config.corsOrigins),
        jsonBody(config.bodyLimitBytes),
        queryHardening(logger),
        responseCompression(),
        // Same tick as the limiter below: its revocation read shares the limiter's round trip.
        startRevocationCheck({ tokens, sessions }),
        // The general limit fails open (availability of reads); the auth limits below fail closed.
        limiter('api', 'API', { failOpen: true }),
      ),
    ),
  );
  const AUTH = `${API}/auth`;
  app.use(
    mountAt(
      AUTH,
      authRouter({
        base: AUTH,
        db: deps.db,
        tokens,
        sessions,
        logger,
        authenticate: auth,
        limits: {
          login: limiter('login', 'LOGIN', { key: clientAndEmailKey, countFailuresOnly: true }),
          register: limiter('register', 'REGISTER'),
          refresh: limiter('refresh', 'REFRESH'),
          // Guessing the current password through this route is a login attempt: same limit.
          password: limiter('password', 'LOGIN', { key: userOrClientKey, countFailuresOnly: true }),
        },
      }),
    ),
  );
  const cache = new ResponseCache(deps.cache, logger, metrics);
  const USERS = `${API}/users`;
  app.use(mountAt(USERS, usersRouter(USERS, deps.db, cache, auth)));
  const ITEMS = `${API}/items`;
  app.use(mountAt(ITEMS, itemsRouter(ITEMS, deps.db, cache, auth)));
  if (config.enableDiagnosticRoutes) {
    const DIAG = `${API}/_diag`;
    app.use(mountAt(DIAG, diagRouter(DIAG)));
  }

  app.use(notFound());
  app.use(errorHandler(logger));
  return app;
}
