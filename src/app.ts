// createApp: the middleware order and the routers; nothing here listens or connects.
// Order follows the request path in docs/design.md: cheapest rejection first, health before the heavy
// middleware, the error handler last.
import express, { type Express } from 'express';
import type { Dependencies } from './deps';
import { buildDocument } from './http/openapi';
import { mountModules, type ModuleContext, type ModuleDefinition, type MountedRoute } from './http/module';
import { AccessTokens } from './lib/access-tokens';
import type { ClusterMetrics } from './lib/cluster-metrics';
import { Lifecycle } from './lib/lifecycle';
import { LoadMonitor, SHED_REASONS } from './lib/load-monitor';
import { countFailures, createMetrics, type Metrics } from './lib/metrics';
import { createProbes, type Probes } from './lib/probes';
import { REVOCATIONS, Sessions } from './lib/sessions';
import { securityLog } from './lib/security-log';
import { accessLog } from './middleware/access-log';
import { admission } from './middleware/admission';
import { jsonBody } from './middleware/body';
import { responseCompression } from './middleware/compression';
import { memoizeClientAddress } from './middleware/client-address';
import { corsPolicy } from './middleware/cors';
import { errorHandler } from './middleware/error-handler';
import { httpMetrics } from './middleware/http-metrics';
import { leanJsonResponses } from './middleware/json-response';
import { authenticate, startRevocationCheck } from './middleware/authenticate';
import { queryHardening } from './middleware/query';
import { clientKey, rateLimiter } from './middleware/rate-limit';
import { closeConnectionsWhileDraining, requestStart } from './middleware/request-start';
import { ResponseCache } from './middleware/response-cache';
import { mountAt, notFound } from './middleware/routing';
import { series } from './middleware/series';
import { modules as allModules } from './modules';
import { VERSION } from './version';

export interface AppOptions {
  lifecycle?: Lifecycle;
  probes?: Probes;
  /** The process's metrics; a fresh registry per app by default (tests build several apps). */
  metrics?: Metrics;
  /** Host-wide metrics under PM2 cluster mode. */
  clusterMetrics?: ClusterMetrics;
  /** How busy the process is, for admission control (one per app by default). */
  load?: LoadMonitor;
  /** The feature modules to mount (src/modules/index.ts by default). */
  modules?: readonly ModuleDefinition[];
}

/** The routes an app mounted, in order: what its OpenAPI document describes. */
const MOUNTED = Symbol('mounted routes');

export function mountedRoutes(app: Express): readonly MountedRoute[] {
  return (app as unknown as { [MOUNTED]: MountedRoute[] })[MOUNTED];
}

/** The behaviour every response shares, on either listener; request id and security headers first. */
function baseApp(lifecycle: Lifecycle): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag'); // API responses are not conditional; avoids hashing every body
  app.set('query parser', 'simple');
  closeConnectionsWhileDraining(app, lifecycle);
  memoizeClientAddress(app);
  leanJsonResponses(app);
  app.use(requestStart());
  return app;
}

/** The app of the API port, and the app of the operations listener (OPS_PORT) beside it. */
export interface Apps {
  app: Express;
  /**
   * Only the operations endpoints that probes and scrapers use (/health*, /metrics), with the same
   * access rules, sharing the process's lifecycle, probes and metrics; every other path is 404.
   */
  operations: Express;
}

export function createApp(rawDeps: Dependencies, options: AppOptions = {}): Express {
  return createApps(rawDeps, options).app;
}

export function createApps(rawDeps: Dependencies, options: AppOptions = {}): Apps {
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
  const app = baseApp(lifecycle);
  // A hop count or address list, never `true` (config refuses it): X-Forwarded-For is believed
  // only as far as trusted proxies wrote it, so a client cannot pick its own rate-limit key.
  app.set('trust proxy', config.trustProxy);

  const probes = options.probes ?? createProbes(rawDeps);
  metrics.watchDependencies(probes);
  const tokens = new AccessTokens(config.jwt);
  for (const revocation of REVOCATIONS) metrics.revocationUnreplicated.inc({ revocation }, 0);
  const sessions = new Sessions(deps.store, config.jwt, {
    transition: deps.layout,
    onUnreplicated: (revocation) => {
      metrics.revocationUnreplicated.inc({ revocation });
      logger.warn('revocation not acknowledged by a replica in time; it stands on the primary, a failover now could lose it', {
        revocation,
        waitMs: config.redisReplicaWaitMs,
      });
    },
  });
  const mounted: MountedRoute[] = [];
  let document: Record<string, unknown> | undefined;
  const ctx: ModuleContext = {
    config,
    logger,
    db: deps.db,
    store: deps.store,
    // With the cache unavailable, at most twice the pool's connections of different cached reads go
    // to the database at once (identical ones share a query): past that, 503 rather than a queue.
    cache: new ResponseCache(deps.cache, logger, metrics, { maxFallbacks: config.dbPoolMax * 2, transition: deps.layout }),
    metrics,
    lifecycle,
    probes,
    clusterMetrics: options.clusterMetrics,
    tokens,
    sessions,
    authenticate: authenticate({
      tokens,
      sessions,
      onFailure: (reason) => metrics.authFailures.inc({ reason }),
      onStoreError: () => metrics.revocationCheckFailures.inc(),
    }),
    limiter: (name, scope, { keyedBy = 'client IP', key = clientKey, failOpen = false, countFailuresOnly = false, failureStatus } = {}) => {
      const rule = config.rateLimits[scope];
      metrics.rateLimited.inc({ limiter: name }, 0); // present from the start (see createMetrics)
      // What the document says of the limit and what the limiter does come from the same values.
      return {
        name,
        scope,
        rule,
        failOpen,
        keyedBy,
        countsFailuresOnly: countFailuresOnly,
        middleware: rateLimiter({
          name,
          rule,
          store: deps.store,
          logger,
          failOpen,
          key,
          countFailuresOnly,
          failureStatus,
          onLimited: (limiterName) => metrics.rateLimited.inc({ limiter: limiterName }),
          onStoreError: (limiterName) => metrics.rateLimitStoreErrors.inc({ limiter: limiterName }),
        }),
      };
    },
    version: VERSION,
    document: () => (document ??= buildDocument(mounted, { config, version: VERSION })),
  };
  const modules = options.modules ?? allModules;

  // Operations endpoints (health, metrics, the API description): routes on the app itself, answered
  // before logging, metrics and the API middleware (load balancers poll them constantly; they are
  // never rate limited).
  mounted.push(
    ...mountModules(
      app,
      modules.filter((m) => m.stage === 'operations'),
      ctx,
    ),
  );
  // Admission control first: a request refused for overload costs as little as possible.
  const load = options.load ?? new LoadMonitor(config.shed);
  for (const reason of SHED_REASONS) metrics.shed.inc({ reason }, 0); // present from the start, so a rate can be taken at once
  metrics.countInFlight(() => load.inFlight);
  app.use(series(admission({ load, logger, onShed: (reason) => metrics.shed.inc({ reason }) }), accessLog(logger), httpMetrics(metrics)));

  // Everything under /api/v1 goes through the API middleware, run as one layer.
  app.use(
    mountAt(
      '/api/v1',
      series(
        corsPolicy(config.corsOrigins),
        jsonBody(config.bodyLimitBytes),
        queryHardening(logger),
        responseCompression(),
        // Same tick as the limiter below: its revocation read shares the limiter's round trip.
        startRevocationCheck({ tokens, sessions }),
        // The general limit fails open (availability of reads); the auth limits fail closed.
        ctx.limiter('api', 'API', { failOpen: true }).middleware,
      ),
    ),
  );
  // Each API module's router sees only the requests under its base.
  mounted.push(
    ...mountModules(
      app,
      modules.filter((m) => m.stage !== 'operations'),
      ctx,
    ),
  );

  const writeSecurityEvent = securityLog(logger);
  const handleErrors = errorHandler(logger, (event) => {
    // Counted before the log's budget, so a flood shows in full on the dashboards.
    metrics.securityEvents.inc({ event: event.event });
    writeSecurityEvent(event);
  });
  app.use(notFound(), handleErrors);
  Object.defineProperty(app, MOUNTED, { value: mounted });

  // The operations listener is reached directly (probes, Prometheus), never through the proxy:
  // X-Forwarded-For is not believed there, so the allow-list of /metrics and /health/detailed
  // sees the connection's own address.
  const operations = baseApp(lifecycle);
  operations.set('trust proxy', false);
  mountModules(
    operations,
    modules.filter((m) => m.stage === 'operations' && m.opsListener === true),
    ctx,
  );
  operations.use(notFound(), handleErrors);
  return { app, operations };
}
