// Module routers, 404 for unknown paths and 405 (with Allow) for known paths with an unsupported
// method.
import type { Request, RequestHandler } from 'express';
import { Router } from 'express';
import { AppError } from '../lib/errors';

declare module 'express-serve-static-core' {
  interface Request {
    /** The mount path of the module router that matched (see moduleRouter). */
    routeBase?: string;
  }
}

const recordRouteBase: RequestHandler = (req, _res, next) => {
  req.routeBase = req.baseUrl;
  next();
};

/**
 * A router for one module, to be mounted at its base path (app.use('/api/v1/items', router)) with
 * routes relative to it. Mounting by prefix means a request walks only its own module's routes;
 * Express pays per layer visited (path match, params objects, a closure). The first layer records
 * the mount path: req.baseUrl is rewound when an error unwinds to the app-level handler, and the
 * metrics label needs the full template after that.
 */
export function moduleRouter(): Router {
  const router = Router();
  router.use(recordRouteBase);
  return router;
}

/** The matched route's full template (/api/v1/items/:id), never the raw path; undefined if none matched. */
export function routeTemplate(req: Request): string | undefined {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof path !== 'string') return undefined;
  const base = req.routeBase ?? '';
  if (path === '/') return base === '' ? '/' : base;
  return base + path;
}

interface LayerLike {
  route?: { path: string; methods: Record<string, boolean> };
}

/**
 * Call after a router's routes are declared: each path answers methods it does not support with
 * 405 and an Allow header listing those it does (HEAD comes with GET; OPTIONS is CORS's). A path
 * may be declared by several routes (GET and PATCH separately), so methods are gathered per path
 * and the 405 handler goes after all of them. `fromLayer` limits this to the routes declared from
 * that position of the stack on (routes added straight to the app's router among other layers).
 */
export function rejectOtherMethods(router: Router, fromLayer = 0): Router {
  const byPath = new Map<string, Set<string>>();
  for (const layer of (router.stack as LayerLike[]).slice(fromLayer)) {
    if (!layer.route) continue;
    const methods = byPath.get(layer.route.path) ?? new Set<string>();
    for (const m of Object.keys(layer.route.methods)) if (m !== '_all') methods.add(m.toUpperCase());
    byPath.set(layer.route.path, methods);
  }
  for (const [path, methods] of byPath) {
    if (methods.has('GET')) methods.add('HEAD');
    const allow = [...methods].join(', ');
    router.all(path, (_req, _res, next) => next(new AppError('method_not_allowed', { headers: { Allow: allow } })));
  }
  return router;
}

export function notFound(): RequestHandler {
  return (_req, _res, next) => next(new AppError('not_found'));
}
