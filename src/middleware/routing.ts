// 404 for unknown paths and 405 (with Allow) for known paths with an unsupported method.
import type { RequestHandler, Router } from 'express';
import { AppError } from '../lib/errors';

interface LayerLike {
  route?: { path: string; methods: Record<string, boolean> };
}

/**
 * Call after a router's routes are declared: each path answers methods it does not support with
 * 405 and an Allow header listing those it does (HEAD comes with GET; OPTIONS is CORS's). A path
 * may be declared by several routes (GET and PATCH separately), so methods are gathered per path
 * and the 405 handler goes after all of them.
 */
export function rejectOtherMethods(router: Router): Router {
  const byPath = new Map<string, Set<string>>();
  for (const layer of router.stack as LayerLike[]) {
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
