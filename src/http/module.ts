// Feature modules: every feature (auth, users, items, health, metrics, docs, diag) is a folder whose
// index exports one ModuleDefinition: a base path, a tag for the document, and its routes declared
// relative to that base from one context. app.ts mounts the list; nothing else knows a module.
import type { Express, RequestHandler, Router } from 'express';
import { Router as createRouter } from 'express';
import type { Config, RateLimitScope } from '../config';
import type { AccessTokens } from '../lib/access-tokens';
import type { ClusterMetrics } from '../lib/cluster-metrics';
import type { Database } from '../lib/db';
import type { Lifecycle } from '../lib/lifecycle';
import type { Logger } from '../lib/logger';
import type { Metrics } from '../lib/metrics';
import type { Probes } from '../lib/probes';
import type { Sessions } from '../lib/sessions';
import type { KeyValueStore } from '../lib/store/types';
import { opsAccess } from '../middleware/ops-access';
import type { LimiterOptions } from '../middleware/rate-limit';
import type { ResponseCache } from '../middleware/response-cache';
import { mountAt, rejectOtherMethods } from '../middleware/routing';
import { limitsOf, type AnyRoute, type RateLimit, type RouteInput } from './route';
import { compileValidator } from './validation';

/** Everything a module may use, built once per app. */
export interface ModuleContext {
  config: Config;
  logger: Logger;
  db: Database;
  /** Security state (sessions, revocation, limits): a Redis that must not evict. */
  store: KeyValueStore;
  cache: ResponseCache;
  metrics: Metrics;
  lifecycle: Lifecycle;
  probes: Probes;
  /** Host-wide metrics under PM2 cluster mode. */
  clusterMetrics?: ClusterMetrics;
  tokens: AccessTokens;
  sessions: Sessions;
  /** The bearer check routes with `access: 'bearer'` get; modules rarely need it directly. */
  authenticate: RequestHandler;
  /** A rate limiter of its own (own counters) for one of the configured scopes. */
  limiter: (name: string, scope: RateLimitScope, options?: LimiterExtras) => RateLimit;
  version: string;
  /** The OpenAPI document of what this app mounts (built after every module's routes). */
  document: () => Record<string, unknown>;
}

type LimiterExtras = Partial<Pick<LimiterOptions, 'key' | 'countFailuresOnly' | 'failureStatus' | 'failOpen'>> & { keyedBy?: string };

export interface ModuleDefinition {
  /** Lower-case, unique: names the module in logs and the document's tags. */
  name: string;
  /** Where its routes live: '/api/v1/items'; '' for paths at the root (the docs module). */
  base: string;
  /**
   * api (default): behind /api/v1's middleware (CORS, body parsing, query hardening, compression,
   * the general rate limit, access log). operations: answered before all of that and never rate
   * limited (health checks, metrics, the API description).
   */
  stage?: 'api' | 'operations';
  /**
   * An operations module that the operations listener (OPS_PORT) serves too: probes and scrapes
   * reach it there on a socket no client floods (health, metrics; not the API description).
   */
  opsListener?: boolean;
  /** Shown as the tag of its operations in the document. */
  tag: { name: string; description: string };
  /** Mounted only when this says so (diagnostic routes, the API description in production). */
  enabled?(config: Config): boolean;
  routes(ctx: ModuleContext): AnyRoute[];
}

/** Declares a module; the identity function, for types and one recognisable shape. */
export function defineModule(definition: ModuleDefinition): ModuleDefinition {
  return definition;
}

/** A route as mounted: what the document is built from. */
export interface MountedRoute {
  module: ModuleDefinition;
  route: AnyRoute;
  /** Express path template, base included: '/api/v1/items/:id' (also the metrics route label). */
  path: string;
}

function fullPath(base: string, path: string): string {
  if (!path.startsWith('/')) throw new Error(`route path must start with '/': ${path}`);
  if (base === '') return path;
  return path === '/' ? base : `${base}${path}`;
}

type Input = RouteInput<unknown, unknown, unknown, unknown>;
const NONE = Object.freeze({}) as Record<string, never>;

/** The handler's input: the validator's, or (routes without input) made once on first use. */
function inputOf(req: Parameters<RequestHandler>[0]): Input {
  return (req.validated ??= { params: NONE, query: NONE, body: NONE, auth: req.auth }) as Input;
}

/** Where a module's paths begin, up to their first parameter: what its router is mounted at. */
function prefixesOf(paths: readonly string[]): string[] {
  const heads = paths.map((p) => p.split('/:')[0]!.replace(/\/$/, '') || '/');
  return [...new Set(heads)].filter((h, _i, all) => !all.some((o) => o !== h && h.startsWith(`${o}/`)));
}

/** The middleware of one route, in the order the request meets them. */
function handlersFor(route: AnyRoute, ctx: ModuleContext): RequestHandler[] {
  const handlers: RequestHandler[] = [];
  // Limit first: a refused request costs no token check, validation or query.
  for (const limit of limitsOf(route)) handlers.push(limit.middleware);
  if (route.access === 'bearer') handlers.push(ctx.authenticate);
  if (route.access === 'ops') handlers.push(opsAccess(ctx.config));
  if (route.params || route.query || route.body) handlers.push(compileValidator(route).middleware);
  const cache = route.cache;
  if (cache) {
    handlers.push(
      ctx.cache.middleware({
        name: cache.name,
        ttlMs: cache.ttlMs,
        audience: cache.audience,
        namespace: (req) => cache.namespace(inputOf(req)),
        key: (req) => cache.key(inputOf(req)),
      }),
    );
  }
  handlers.push((req, res) => route.handler(inputOf(req), req, res));
  return handlers;
}

function declare(router: Router, module: ModuleDefinition, ctx: ModuleContext, mounted: MountedRoute[]): void {
  for (const route of module.routes(ctx)) {
    const path = fullPath(module.base, route.path);
    // Every path parameter is declared (and nothing else is): the document must describe each one,
    // and the validator's fast path relies on it.
    const inPath = [...path.matchAll(/:(\w+)/g)].map((m) => m[1]!).sort();
    const declared = Object.keys(route.params ?? {}).sort();
    if (inPath.join() !== declared.join()) {
      throw new Error(`${route.operationId}: path parameters ${inPath.join(', ') || '(none)'} but declared params ${declared.join(', ') || '(none)'}`);
    }
    router[route.method](path, ...handlersFor(route, ctx));
    mounted.push({ module, route, path });
  }
}

/**
 * Mounts the modules that are enabled, in order, and returns their routes.
 *
 * API modules get a router of their own that sees only requests under its base (mountAt): a
 * request walks only its module's routes, and Express's own mount (app.use(base, router)), which
 * rewrites and re-parses req.url on the way in and out, is avoided. Routes are registered with
 * their full paths, so req.route.path is the whole template. Operations modules with a base are
 * declared on the app's router itself: load balancers poll them several times a second.
 * Either way, a known path answers other methods with 405 and an Allow header.
 */
export function mountModules(app: Express, modules: readonly ModuleDefinition[], ctx: ModuleContext): MountedRoute[] {
  const mounted: MountedRoute[] = [];
  for (const module of modules) {
    if (module.enabled && !module.enabled(ctx.config)) continue;
    if (module.stage === 'operations' && module.base !== '') {
      const from = app.router.stack.length;
      declare(app.router, module, ctx, mounted);
      rejectOtherMethods(app.router, from);
    } else {
      // A module at the root (the API description) gets a router too, mounted at the prefixes of
      // its paths: an API request passes it with one test instead of one per route.
      const router = createRouter();
      const first = mounted.length;
      declare(router, module, ctx, mounted);
      const at = module.base === '' ? prefixesOf(mounted.slice(first).map((m) => m.path)) : module.base;
      app.use(mountAt(at, rejectOtherMethods(router)));
    }
  }
  return mounted;
}
